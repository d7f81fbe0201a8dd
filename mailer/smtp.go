package mailer

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
	"golang.org/x/time/rate"

	"github.com/herald-dev/herald"
)

// SMTPConfig configures an SMTPTransport. Zero values take the defaults
// noted on each field.
type SMTPConfig struct {
	Host               string
	Port               int // default 587, or 465 with TLS = "tls"
	Username, Password string
	TLS                string  // "starttls" (default) | "tls" | "none"
	Connections        int     // pool size, default 4
	Rate               float64 // messages per second, 0 = unlimited
	Timeout            time.Duration
	// IdleTimeout retires connections unused this long (default 30s), well
	// before relays hang up on idle clients (often 60–300s).
	IdleTimeout time.Duration
	HelloName   string      // EHLO name, default "localhost"
	TLSConfig   *tls.Config // optional override (tests, private CAs)
}

// TLS modes.
const (
	TLSStartTLS = "starttls"
	TLSImplicit = "tls"
	TLSNone     = "none"
)

const (
	defaultTimeout     = 30 * time.Second
	defaultIdleTimeout = 30 * time.Second
	defaultConnections = 4
)

// ErrClosed is returned by Send after Close.
var ErrClosed = errors.New("mailer: transport closed")

// errNoSMTPUTF8: an address with non-ASCII characters needs the relay's
// SMTPUTF8 extension; without it the message can never go.
var errNoSMTPUTF8 = errors.New("mailer: relay does not support SMTPUTF8, needed for a non-ASCII address")

// SMTPTransport delivers through one relay over a small pool of
// connections. Unlike jordan-wright/email's Pool it dials with a timeout,
// bounds every command with a deadline, and retires idle connections
// before the relay drops them.
type SMTPTransport struct {
	cfg     SMTPConfig
	log     *slog.Logger
	addr    string
	limiter *rate.Limiter // nil: unlimited
	slots   chan struct{} // one token per connection that may exist
	now     func() time.Time

	mu      sync.Mutex
	idle    []*pooledConn // most recently used last
	closed  bool
	janitor *time.Timer // pending sweep of idle connections, nil if none
}

type pooledConn struct {
	c        *smtp.Client
	raw      net.Conn // under TLS, if any: closing it unblocks everything
	lastUsed time.Time
	reused   bool
	broken   bool // cut by a cancelled context
}

// NewSMTPTransport returns a transport for cfg. It dials lazily, on the first Send.
func NewSMTPTransport(cfg SMTPConfig, logger *slog.Logger) *SMTPTransport {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	cfg.TLS = strings.ToLower(cfg.TLS)
	if cfg.TLS == "" {
		cfg.TLS = TLSStartTLS
	}
	if cfg.Port == 0 {
		cfg.Port = 587
		if cfg.TLS == TLSImplicit {
			cfg.Port = 465
		}
	}
	if cfg.Connections <= 0 {
		cfg.Connections = defaultConnections
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = defaultTimeout
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = defaultIdleTimeout
	}
	if cfg.HelloName == "" {
		cfg.HelloName = "localhost"
	}
	t := &SMTPTransport{
		cfg:   cfg,
		log:   logger.With("component", "smtp", "relay", net.JoinHostPort(cfg.Host, strconv.Itoa(cfg.Port))),
		addr:  net.JoinHostPort(cfg.Host, strconv.Itoa(cfg.Port)),
		slots: make(chan struct{}, cfg.Connections),
		now:   time.Now,
	}
	if cfg.Rate > 0 {
		// Burst 1: the relay's limit is a rate, not a bucket we may empty at once.
		t.limiter = rate.NewLimiter(rate.Limit(cfg.Rate), 1)
	}
	return t
}

// Send delivers m. It waits for the rate limit and for a free connection
// until ctx is done. Errors are *herald.SendError: 4xx replies and
// connection trouble are temporary, 5xx replies to RCPT or DATA are
// permanent with their code (see classify).
func (t *SMTPTransport) Send(ctx context.Context, m *herald.Message) error {
	if err := checkEnvelope(m); err != nil {
		return &herald.SendError{Err: err}
	}
	if t.limiter != nil {
		if err := t.limiter.Wait(ctx); err != nil {
			return &herald.SendError{Temporary: true, Err: fmt.Errorf("mailer: waiting for the send rate: %w", err)}
		}
	}
	select {
	case t.slots <- struct{}{}:
	case <-ctx.Done():
		return &herald.SendError{Temporary: true, Err: fmt.Errorf("mailer: waiting for a connection: %w", ctx.Err())}
	}
	defer func() { <-t.slots }()

	// A pooled connection the relay closed while idle fails before any
	// mail was accepted: then one fresh connection gets the message.
	for attempt := 0; ; attempt++ {
		pc, err := t.checkout(ctx)
		if err != nil {
			return err
		}
		phase, err := t.deliver(ctx, pc, m)
		if err == nil {
			t.checkin(pc)
			return nil
		}
		pc.close()
		if attempt == 0 && pc.reused && phase == "mail" && staleConn(err) && ctx.Err() == nil {
			// The relay probably restarted or timed us out: the other idle
			// connections are as dead as this one.
			t.log.Debug("pooled connection was dead, redialling", "err", err)
			t.flushIdle()
			continue
		}
		return classify(phase, err)
	}
}

// checkEnvelope refuses what no relay could accept: better a permanent
// error now than a retry loop.
func checkEnvelope(m *herald.Message) error {
	switch {
	case m.From == "" || m.To == "":
		return errors.New("mailer: message without envelope sender or recipient")
	case strings.ContainsAny(m.From+m.To, "\r\n<> "):
		return errors.New("mailer: envelope address with a line break, space or angle bracket")
	case len(m.Raw) == 0:
		return errors.New("mailer: empty message")
	}
	return nil
}

// checkout returns an idle connection or dials a new one. The caller holds a slot.
func (t *SMTPTransport) checkout(ctx context.Context) (*pooledConn, error) {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil, &herald.SendError{Temporary: true, Err: ErrClosed}
	}
	now := t.now()
	var stale []*pooledConn
	var pc *pooledConn
	for len(t.idle) > 0 {
		last := t.idle[len(t.idle)-1]
		t.idle = t.idle[:len(t.idle)-1]
		if now.Sub(last.lastUsed) >= t.cfg.IdleTimeout {
			stale = append(stale, last)
			continue
		}
		pc = last
		break
	}
	t.mu.Unlock()
	for _, s := range stale {
		go s.quit()
	}
	if pc != nil {
		pc.reused = true
		return pc, nil
	}
	pc, err := t.dial(ctx)
	if err != nil {
		return nil, classify("connect", err)
	}
	return pc, nil
}

// checkin puts a healthy connection back and schedules its retirement.
func (t *SMTPTransport) checkin(pc *pooledConn) {
	if pc.broken {
		pc.close()
		return
	}
	pc.lastUsed = t.now()
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		go pc.quit()
		return
	}
	t.idle = append(t.idle, pc)
	if t.janitor == nil {
		t.janitor = time.AfterFunc(t.cfg.IdleTimeout, t.sweep)
	}
	t.mu.Unlock()
}

// sweep closes connections idle past IdleTimeout and reschedules itself
// while any idle ones remain, so no goroutine lingers for an empty pool.
func (t *SMTPTransport) sweep() {
	t.mu.Lock()
	now := t.now()
	keep := t.idle[:0]
	var stale []*pooledConn
	var oldest time.Time
	for _, pc := range t.idle {
		if now.Sub(pc.lastUsed) >= t.cfg.IdleTimeout {
			stale = append(stale, pc)
			continue
		}
		if oldest.IsZero() || pc.lastUsed.Before(oldest) {
			oldest = pc.lastUsed
		}
		keep = append(keep, pc)
	}
	clear(t.idle[len(keep):])
	t.idle = keep
	t.janitor = nil
	if len(keep) > 0 && !t.closed {
		t.janitor = time.AfterFunc(oldest.Add(t.cfg.IdleTimeout).Sub(now), t.sweep)
	}
	t.mu.Unlock()
	for _, pc := range stale {
		pc.quit()
	}
	if len(stale) > 0 {
		t.log.Debug("retired idle connections", "count", len(stale))
	}
}

// flushIdle closes every idle connection.
func (t *SMTPTransport) flushIdle() {
	t.mu.Lock()
	idle := t.idle
	t.idle = nil
	t.mu.Unlock()
	for _, pc := range idle {
		pc.close()
	}
}

// IdleConnections is how many connections wait in the pool.
func (t *SMTPTransport) IdleConnections() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.idle)
}

// Close sends QUIT on every idle connection and closes it; connections in
// use close when their Send ends. Later Sends fail with ErrClosed.
func (t *SMTPTransport) Close() error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil
	}
	t.closed = true
	idle := t.idle
	t.idle = nil
	if t.janitor != nil {
		t.janitor.Stop()
		t.janitor = nil
	}
	t.mu.Unlock()
	var wg sync.WaitGroup
	for _, pc := range idle {
		wg.Go(pc.quit)
	}
	wg.Wait()
	return nil
}

func (t *SMTPTransport) tlsConfig() *tls.Config {
	var cfg *tls.Config
	if t.cfg.TLSConfig != nil {
		cfg = t.cfg.TLSConfig.Clone()
	} else {
		cfg = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	if cfg.ServerName == "" {
		cfg.ServerName = t.cfg.Host
	}
	return cfg
}

// dial connects, says EHLO, upgrades to TLS and authenticates, all within
// Timeout (and ctx).
func (t *SMTPTransport) dial(ctx context.Context) (_ *pooledConn, err error) {
	ctx, cancel := context.WithTimeout(ctx, t.cfg.Timeout)
	defer cancel()
	d := net.Dialer{Timeout: t.cfg.Timeout, KeepAlive: 30 * time.Second}
	raw, err := d.DialContext(ctx, "tcp", t.addr)
	if err != nil {
		return nil, fmt.Errorf("mailer: dial %s: %w", t.addr, err)
	}
	// go-smtp sets its own (5 minute) deadlines on each command; closing
	// the socket when ctx ends bounds the whole handshake whatever they are.
	stop := context.AfterFunc(ctx, func() { raw.Close() })
	defer func() {
		if !stop() && err == nil {
			err = fmt.Errorf("mailer: connect to %s: %w", t.addr, ctx.Err())
		}
		if err != nil {
			raw.Close()
		}
	}()
	conn := net.Conn(&deadlineConn{Conn: raw, max: t.cfg.Timeout})

	var c *smtp.Client
	switch t.cfg.TLS {
	case TLSImplicit:
		tc := tls.Client(conn, t.tlsConfig())
		if err := tc.HandshakeContext(ctx); err != nil {
			return nil, fmt.Errorf("mailer: TLS handshake with %s: %w", t.addr, err)
		}
		c = smtp.NewClient(tc)
	case TLSStartTLS:
		// NewClientStartTLS says EHLO as "localhost" before the upgrade; our
		// HelloName follows inside TLS. go-smtp offers no way to set it earlier.
		c, err = smtp.NewClientStartTLS(conn, t.tlsConfig())
		if err != nil {
			return nil, fmt.Errorf("mailer: STARTTLS with %s: %w", t.addr, err)
		}
	case TLSNone:
		c = smtp.NewClient(conn)
	default:
		return nil, fmt.Errorf("mailer: unknown smtp tls mode %q (want starttls, tls or none)", t.cfg.TLS)
	}
	c.CommandTimeout = t.cfg.Timeout
	c.SubmissionTimeout = t.cfg.Timeout
	if err := c.Hello(t.cfg.HelloName); err != nil {
		c.Close()
		return nil, fmt.Errorf("mailer: EHLO to %s: %w", t.addr, err) // includes the STARTTLS handshake
	}
	if t.cfg.Username != "" {
		if ok, _ := c.Extension("AUTH"); !ok {
			c.Close()
			return nil, fmt.Errorf("mailer: %s does not offer AUTH (username is set)", t.addr)
		}
		if err := c.Auth(sasl.NewPlainClient("", t.cfg.Username, t.cfg.Password)); err != nil {
			c.Close()
			return nil, fmt.Errorf("mailer: AUTH PLAIN to %s: %w", t.addr, err)
		}
	}
	return &pooledConn{c: c, raw: raw, lastUsed: t.now()}, nil
}

// deliver runs one mail transaction. It returns the phase that failed.
func (t *SMTPTransport) deliver(ctx context.Context, pc *pooledConn, m *herald.Message) (string, error) {
	// Commands have their own deadlines; ctx ending cuts the connection.
	stop := context.AfterFunc(ctx, func() { pc.raw.Close() })
	phase, err := t.transaction(pc.c, m)
	if !stop() {
		// ctx ended mid-transaction: the connection is gone whatever the
		// result, but a 250 that came first still counts as delivered.
		pc.broken = true
		if err != nil {
			err = fmt.Errorf("%w (%w)", err, ctx.Err())
		}
	}
	return phase, err
}

func (t *SMTPTransport) transaction(c *smtp.Client, m *herald.Message) (string, error) {
	opts := &smtp.MailOptions{Size: int64(len(m.Raw))}
	if !isASCII(m.From) || !isASCII(m.To) {
		if ok, _ := c.Extension("SMTPUTF8"); !ok {
			return "mail", errNoSMTPUTF8
		}
		opts.UTF8 = true
	}
	if err := c.Mail(m.From, opts); err != nil {
		return "mail", err
	}
	if err := c.Rcpt(m.To, nil); err != nil {
		return "rcpt", err
	}
	w, err := c.Data()
	if err != nil {
		return "data", err
	}
	if _, err := w.Write(m.Raw); err != nil {
		// No Close: it would wait for a reply on a connection we drop anyway.
		return "data", err
	}
	if err := w.Close(); err != nil {
		return "data", err
	}
	return "", nil
}

func (pc *pooledConn) close() { pc.c.Close() }

// quit says goodbye politely; the deadline wrapper bounds it.
func (pc *pooledConn) quit() {
	if err := pc.c.Quit(); err != nil {
		pc.c.Close()
	}
}

// staleConn reports an error that says the connection was dead, not that
// the relay refused the mail.
func staleConn(err error) bool {
	if errors.Is(err, errNoSMTPUTF8) {
		return false
	}
	var se *smtp.SMTPError
	if errors.As(err, &se) {
		return se.Code == 421
	}
	return true
}

// classify turns an SMTP or network error into a *herald.SendError: 5xx
// replies to RCPT and DATA are permanent, everything else temporary.
// Rejections while connecting (AUTH refused with 535) or of MAIL FROM
// (530/502 authentication required, sender not allowed) are about our
// configuration, not the reader: as permanent failures they would fail
// every message and mark every reader bounced, so they are retried until
// someone fixes the config or the messages expire.
func classify(phase string, err error) error {
	var sendErr *herald.SendError
	if errors.As(err, &sendErr) {
		return err
	}
	if errors.Is(err, errNoSMTPUTF8) {
		return &herald.SendError{Err: err}
	}
	var se *smtp.SMTPError
	if errors.As(err, &se) {
		temporary := se.Code/100 != 5 || phase == "connect" || phase == "mail"
		return &herald.SendError{Temporary: temporary, Code: se.Code, Err: prefixed(phase, err)}
	}
	return &herald.SendError{Temporary: true, Err: prefixed(phase, err)}
}

func prefixed(phase string, err error) error {
	if strings.HasPrefix(err.Error(), "mailer: ") {
		return err
	}
	return fmt.Errorf("mailer: %s: %w", phase, err)
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// deadlineConn caps every deadline go-smtp sets at max from now, and gives
// each write one: go-smtp writes the DATA body with no deadline at all.
// A conn is used by one goroutine at a time.
type deadlineConn struct {
	net.Conn
	max time.Duration
	wd  time.Time // the write deadline last set, zero for none
}

// Write makes sure the write has a deadline between max minus a little
// slack and max from now. Moving the deadline for every write (five or
// so per message) costs more than the write's own bookkeeping; within the
// slack, the one set by the command before it or the last write stands.
func (c *deadlineConn) Write(b []byte) (int, error) {
	now := time.Now()
	if c.wd.IsZero() || c.wd.Before(now.Add(c.max-min(time.Second, c.max/10))) {
		c.wd = now.Add(c.max)
		c.Conn.SetWriteDeadline(c.wd)
	}
	return c.Conn.Write(b)
}

func (c *deadlineConn) SetDeadline(t time.Time) error {
	t = c.cap(t)
	c.wd = t
	return c.Conn.SetDeadline(t)
}

func (c *deadlineConn) SetReadDeadline(t time.Time) error {
	return c.Conn.SetReadDeadline(c.cap(t))
}

func (c *deadlineConn) SetWriteDeadline(t time.Time) error {
	t = c.cap(t)
	c.wd = t
	return c.Conn.SetWriteDeadline(t)
}

// cap keeps "no deadline" (idle in the pool) and shortens far ones.
func (c *deadlineConn) cap(t time.Time) time.Time {
	if limit := time.Now().Add(c.max); !t.IsZero() && t.After(limit) {
		return limit
	}
	return t
}
