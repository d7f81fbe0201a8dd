package bounce

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/herald-dev/herald"
)

// MailboxOptions configure a Mailbox poller.
type MailboxOptions struct {
	// URL names the mailbox: imaps://user@host[:993]/INBOX (TLS),
	// imap://user@host[:143]/INBOX (STARTTLS), or imap+insecure:// (plain
	// text, loopback hosts only: a test server). The user may be
	// percent-encoded ("bounces%40blog.example.org").
	URL      string
	Password string
	// MoveTo is the folder handled reports are moved to (default
	// "herald-processed"); it is created if missing.
	MoveTo string
	// Interval between polls (default 5m).
	Interval time.Duration
	// Timeout bounds one poll (default 2m).
	Timeout time.Duration
	// Batch is the most messages read in one poll (default 200).
	Batch     int
	TLSConfig *tls.Config
	// VERP and Sent map a report back to its reader; either may be nil.
	VERP *VERP
	Sent interface {
		SentTo(ctx context.Context, messageID string) (string, error)
	}
	// Subscriptions applies the reports.
	Subscriptions herald.SubscriptionService
	Logger        *slog.Logger
}

// Mailbox polls an IMAP mailbox for bounces: each DSN is mapped back to
// its reader by the VERP address it was sent to or by the original
// Message-ID, applied, and moved to MoveTo. A report for a message herald
// cannot place, or a message that is no report, is logged and left where
// it is, marked read so the next poll passes over it.
type Mailbox struct {
	opt MailboxOptions
	log *slog.Logger
	mailboxAddr
}

// PollResult counts what one poll did.
type PollResult struct {
	Read    int // messages fetched
	Applied int // reports applied to a reader (moved)
	Unknown int // reports for a reader herald no longer has (moved)
	Left    int // left in the mailbox: no report, or no reader found
}

// mailboxAddr is where a mailbox URL points.
type mailboxAddr struct {
	addr, user, path string
	mode             string // "tls", "starttls", "plain"
}

// CheckMailboxURL says what is wrong with a mailbox URL, if anything.
func CheckMailboxURL(raw string) error {
	_, err := parseMailboxURL(raw)
	return err
}

func parseMailboxURL(raw string) (mailboxAddr, error) {
	var m mailboxAddr
	u, err := url.Parse(raw)
	if err != nil {
		return m, fmt.Errorf("bounce: mailbox URL: %w", err)
	}
	port := ""
	switch u.Scheme {
	case "imaps":
		m.mode, port = "tls", "993"
	case "imap":
		m.mode, port = "starttls", "143"
	case "imap+insecure":
		m.mode, port = "plain", "143"
	default:
		return m, fmt.Errorf("bounce: mailbox URL %q: want imaps://user@host/INBOX (or imap:// for STARTTLS)", u.Redacted())
	}
	if u.Hostname() == "" || u.User == nil || u.User.Username() == "" {
		return m, fmt.Errorf("bounce: mailbox URL %q: want a user and a host (imaps://user@host/INBOX)", u.Redacted())
	}
	if _, set := u.User.Password(); set {
		return m, fmt.Errorf("bounce: mailbox URL: put the password in HERALD_BOUNCE_PASSWORD, not in the URL")
	}
	if m.mode == "plain" {
		ip := net.ParseIP(u.Hostname())
		if u.Hostname() != "localhost" && (ip == nil || !ip.IsLoopback()) {
			return m, fmt.Errorf("bounce: mailbox URL: imap+insecure is for a server on this machine only")
		}
	}
	if u.Port() != "" {
		port = u.Port()
	}
	m.addr = net.JoinHostPort(u.Hostname(), port)
	m.user = u.User.Username()
	m.path = strings.Trim(u.Path, "/")
	if m.path == "" {
		m.path = "INBOX"
	}
	return m, nil
}

// NewMailbox checks the options.
func NewMailbox(opt MailboxOptions) (*Mailbox, error) {
	a, err := parseMailboxURL(opt.URL)
	if err != nil {
		return nil, err
	}
	m := &Mailbox{opt: opt, mailboxAddr: a}
	if m.opt.MoveTo == "" {
		m.opt.MoveTo = "herald-processed"
	}
	if m.opt.Interval <= 0 {
		m.opt.Interval = 5 * time.Minute
	}
	if m.opt.Timeout <= 0 {
		m.opt.Timeout = 2 * time.Minute
	}
	if m.opt.Batch <= 0 {
		m.opt.Batch = 200
	}
	if m.opt.Subscriptions == nil {
		return nil, errors.New("bounce: mailbox without a subscription service")
	}
	if m.opt.Logger == nil {
		m.opt.Logger = slog.New(slog.DiscardHandler)
	}
	m.log = m.opt.Logger.With("component", "bounce-mailbox", "mailbox", m.user+"@"+m.addr+"/"+m.path)
	return m, nil
}

// Run polls until ctx ends.
func (m *Mailbox) Run(ctx context.Context) error {
	for {
		res, err := m.Poll(ctx)
		if err != nil && ctx.Err() == nil {
			m.log.Warn("polling the bounce mailbox", "err", err)
		} else if res.Read > 0 {
			m.log.Info("bounce mailbox polled", "read", res.Read, "applied", res.Applied, "unknown", res.Unknown, "left", res.Left)
		}
		t := time.NewTimer(m.opt.Interval)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

// Poll reads the unread messages once.
func (m *Mailbox) Poll(ctx context.Context) (PollResult, error) {
	var res PollResult
	ctx, cancel := context.WithTimeout(ctx, m.opt.Timeout)
	defer cancel()
	c, err := m.dial(ctx)
	if err != nil {
		return res, err
	}
	// Closing the connection when ctx ends unblocks every command.
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	defer c.Close()
	if err := c.Login(m.user, m.opt.Password).Wait(); err != nil {
		return res, fmt.Errorf("bounce: IMAP login as %s: %w", m.user, err)
	}
	_ = c.Create(m.opt.MoveTo, nil).Wait() // exists already, most times
	if _, err := c.Select(m.path, nil).Wait(); err != nil {
		return res, fmt.Errorf("bounce: select %s: %w", m.path, err)
	}
	sd, err := c.UIDSearch(&imap.SearchCriteria{NotFlag: []imap.Flag{imap.FlagSeen}}, nil).Wait()
	if err != nil {
		return res, fmt.Errorf("bounce: search %s: %w", m.path, err)
	}
	uids := sd.AllUIDs()
	if len(uids) > m.opt.Batch {
		uids = uids[:m.opt.Batch]
	}
	if len(uids) == 0 {
		_ = c.Logout().Wait()
		return res, nil
	}
	section := &imap.FetchItemBodySection{Peek: true}
	msgs, err := c.Fetch(imap.UIDSetNum(uids...), &imap.FetchOptions{UID: true, BodySection: []*imap.FetchItemBodySection{section}}).Collect()
	if err != nil {
		return res, fmt.Errorf("bounce: fetch: %w", err)
	}
	var handled, left imap.UIDSet
	for _, msg := range msgs {
		res.Read++
		outcome, err := m.handle(ctx, msg.FindBodySection(section))
		if err != nil {
			// The reader could not be updated: try again next poll.
			m.log.Warn("applying a bounce", "uid", msg.UID, "err", err)
			continue
		}
		switch outcome {
		case outcomeApplied:
			res.Applied++
			handled.AddNum(msg.UID)
		case outcomeUnknown:
			res.Unknown++
			handled.AddNum(msg.UID)
		default:
			res.Left++
			left.AddNum(msg.UID)
		}
	}
	if len(left) > 0 {
		if err := c.Store(left, &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagSeen}}, nil).Close(); err != nil {
			m.log.Warn("marking messages read", "err", err)
		}
	}
	if len(handled) > 0 {
		if _, err := c.Move(handled, m.opt.MoveTo).Wait(); err != nil {
			return res, fmt.Errorf("bounce: move handled reports to %s: %w", m.opt.MoveTo, err)
		}
	}
	_ = c.Logout().Wait()
	return res, nil
}

func (m *Mailbox) dial(ctx context.Context) (*imapclient.Client, error) {
	d := net.Dialer{Timeout: 30 * time.Second}
	conn, err := d.DialContext(ctx, "tcp", m.addr)
	if err != nil {
		return nil, fmt.Errorf("bounce: dial %s: %w", m.addr, err)
	}
	tlsCfg := m.opt.TLSConfig
	if tlsCfg == nil {
		host, _, _ := net.SplitHostPort(m.addr)
		tlsCfg = &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}
	}
	opts := &imapclient.Options{TLSConfig: tlsCfg}
	var c *imapclient.Client
	switch m.mode {
	case "tls":
		tc := tls.Client(conn, tlsCfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			conn.Close()
			return nil, fmt.Errorf("bounce: TLS with %s: %w", m.addr, err)
		}
		c = imapclient.New(tc, opts)
	case "starttls":
		c, err = imapclient.NewStartTLS(conn, opts)
		if err != nil {
			conn.Close()
			return nil, fmt.Errorf("bounce: STARTTLS with %s: %w", m.addr, err)
		}
	default:
		c = imapclient.New(conn, opts)
	}
	if err := c.WaitGreeting(); err != nil {
		c.Close()
		return nil, fmt.Errorf("bounce: IMAP greeting from %s: %w", m.addr, err)
	}
	return c, nil
}

type outcome int

const (
	outcomeLeft outcome = iota
	outcomeApplied
	outcomeUnknown
)

// handle reads one message and applies the bounce it reports.
func (m *Mailbox) handle(ctx context.Context, raw []byte) (outcome, error) {
	d, err := ParseDSN(raw)
	if err != nil {
		m.log.Info("bounce mailbox: not a delivery report; left", "err", err)
		return outcomeLeft, nil
	}
	var kind herald.BounceKind
	var why string
	for _, r := range d.Recipients {
		if k, ok := r.Kind(); ok && kind != herald.BounceHard {
			kind, why = k, strings.TrimSpace(r.Status+" "+r.Diagnostic)
		}
	}
	if kind == "" {
		m.log.Info("bounce mailbox: a report of delivery, not of failure; left", "recipients", len(d.Recipients))
		return outcomeLeft, nil
	}
	reader, how := m.reader(ctx, d)
	if reader == "" {
		m.log.Warn("bounce mailbox: a report for a message herald did not send (no VERP address, unknown Message-ID); left",
			"message_id", d.OriginalMessageID, "to", d.To, "recipient", d.Recipients[0].Final)
		return outcomeLeft, nil
	}
	known, err := apply(ctx, m.opt.Subscriptions, m.log, herald.Bounce{Email: reader, Kind: kind, Source: "mailbox/" + how, Reason: why})
	if err != nil {
		return outcomeLeft, err
	}
	if !known {
		return outcomeUnknown, nil
	}
	return outcomeApplied, nil
}

// reader finds whom the bounced message was for: by the VERP address the
// report was sent to, else by its original Message-ID.
func (m *Mailbox) reader(ctx context.Context, d *DSN) (email, how string) {
	if m.opt.VERP != nil {
		for _, to := range d.To {
			if r, ok := m.opt.VERP.Recipient(to); ok {
				return r, "verp"
			}
		}
	}
	if m.opt.Sent != nil && d.OriginalMessageID != "" {
		to, err := m.opt.Sent.SentTo(ctx, d.OriginalMessageID)
		if err != nil {
			m.log.Warn("looking up a Message-ID", "message_id", d.OriginalMessageID, "err", err)
		}
		if to != "" {
			return to, "message-id"
		}
	}
	return "", ""
}
