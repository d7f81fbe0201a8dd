package bounce

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/mail"
	"net/textproto"
	"regexp"
	"strings"

	"github.com/herald-dev/herald"
)

// DSN is what a delivery status notification says: RFC 3464's
// multipart/report as Postfix, Exim, Gmail and Microsoft 365 write it, or
// the plain-text bounce older servers still send (Exim's
// X-Failed-Recipients).
type DSN struct {
	// To lists where the DSN itself was addressed (To, Delivered-To,
	// X-Original-To, Envelope-To): a VERP return path shows up here.
	To []string
	// Recipients are the per-recipient reports.
	Recipients []Recipient
	// OriginalMessageID is the Message-ID of the message that bounced,
	// from the returned headers or message ("" when none came back).
	OriginalMessageID string
	// ReportingMTA names the server that wrote the report.
	ReportingMTA string
}

// Recipient is one per-recipient block of a DSN.
type Recipient struct {
	Final      string // Final-Recipient, the bare address
	Original   string // Original-Recipient, if given
	Action     string // failed, delayed, delivered, relayed, expanded
	Status     string // the enhanced status code, "5.1.1"
	Diagnostic string // the remote server's reply
}

// Kind says what the report means for the reader: a failure with a 5.x.x
// status is hard, any other failure or a delay is soft; ok is false for
// deliveries and relays, which are no bounce.
func (r Recipient) Kind() (kind herald.BounceKind, ok bool) {
	switch r.Action {
	case "failed":
		if strings.HasPrefix(r.Status, "5") {
			return herald.BounceHard, true
		}
		return herald.BounceSoft, true
	case "delayed":
		return herald.BounceSoft, true
	}
	return "", false
}

// ErrNotDSN is returned for a message that is no delivery report.
var ErrNotDSN = errors.New("bounce: not a delivery status notification")

// Limits on what a DSN may hold: reports are small, and anything bigger
// is cut rather than read whole.
const (
	maxDSNBytes  = 4 << 20
	maxParts     = 32
	maxDepth     = 4
	maxRcptBlock = 100
)

var (
	statusRe   = regexp.MustCompile(`\b([245])\.(\d{1,3})\.(\d{1,3})\b`)
	smtpCodeRe = regexp.MustCompile(`\b([45])\d\d\b`)
)

// ParseDSN reads a delivery report. A message that is not one is
// ErrNotDSN; a report that is damaged is an error naming what is wrong.
// It never panics, whatever the input (see FuzzParseDSN).
func ParseDSN(raw []byte) (*DSN, error) {
	if len(raw) > maxDSNBytes {
		raw = raw[:maxDSNBytes]
	}
	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("bounce: read DSN header: %w", err)
	}
	d := &DSN{}
	for _, h := range []string{"To", "Delivered-To", "X-Original-To", "Envelope-To"} {
		for _, v := range msg.Header[textproto.CanonicalMIMEHeaderKey(h)] {
			d.To = append(d.To, addresses(v)...)
		}
	}
	ct, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err == nil && strings.HasPrefix(ct, "multipart/") {
		parts := 0
		if err := d.walk(msg.Body, params["boundary"], 0, &parts); err != nil && len(d.Recipients) == 0 {
			return nil, err
		}
	}
	if len(d.Recipients) == 0 {
		d.plainBounce(msg)
	}
	if len(d.Recipients) == 0 {
		return nil, ErrNotDSN
	}
	return d, nil
}

// walk reads the parts of a multipart body, descending into nested ones.
func (d *DSN) walk(body io.Reader, boundary string, depth int, parts *int) error {
	if boundary == "" {
		return errors.New("bounce: multipart without a boundary")
	}
	if depth >= maxDepth {
		return errors.New("bounce: multipart nested too deep")
	}
	mr := multipart.NewReader(body, boundary)
	for {
		p, err := mr.NextRawPart()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("bounce: read DSN part: %w", err)
		}
		if *parts++; *parts > maxParts {
			return errors.New("bounce: too many parts")
		}
		ct, params, err := mime.ParseMediaType(p.Header.Get("Content-Type"))
		if err != nil {
			ct = "text/plain"
		}
		r := decodePart(p, p.Header.Get("Content-Transfer-Encoding"))
		switch {
		case strings.HasPrefix(ct, "multipart/"):
			if err := d.walk(r, params["boundary"], depth+1, parts); err != nil {
				return err
			}
		case ct == "message/delivery-status" || ct == "message/global-delivery-status":
			if err := d.deliveryStatus(r); err != nil {
				return err
			}
		case ct == "text/rfc822-headers" || ct == "message/rfc822" || ct == "message/global-headers" || ct == "message/global":
			if d.OriginalMessageID == "" {
				d.OriginalMessageID = returnedMessageID(r)
			}
		}
	}
}

func decodePart(r io.Reader, cte string) io.Reader {
	r = io.LimitReader(r, maxDSNBytes)
	switch strings.ToLower(strings.TrimSpace(cte)) {
	case "base64":
		return base64.NewDecoder(base64.StdEncoding, &stripSpace{r: r})
	case "quoted-printable":
		return quotedprintable.NewReader(r)
	}
	return r
}

// stripSpace drops line breaks and blanks, which base64 bodies carry.
type stripSpace struct{ r io.Reader }

func (s *stripSpace) Read(p []byte) (int, error) {
	for {
		n, err := s.r.Read(p)
		k := 0
		for _, c := range p[:n] {
			if c != '\r' && c != '\n' && c != ' ' && c != '\t' {
				p[k] = c
				k++
			}
		}
		if k > 0 || err != nil {
			return k, err
		}
	}
}

// deliveryStatus reads the per-message block and the per-recipient
// blocks of a message/delivery-status part (RFC 3464 §2.2, §2.3).
func (d *DSN) deliveryStatus(r io.Reader) error {
	tp := textproto.NewReader(bufio.NewReader(r))
	for block := 0; block <= maxRcptBlock; block++ {
		// Blank lines between blocks; some writers put several.
		for {
			b, err := tp.R.Peek(1)
			if err != nil {
				return nil
			}
			if b[0] != '\r' && b[0] != '\n' {
				break
			}
			if _, err := tp.R.ReadByte(); err != nil {
				return nil
			}
		}
		h, err := tp.ReadMIMEHeader()
		if err != nil && len(h) == 0 {
			if err == io.EOF {
				return nil
			}
			return fmt.Errorf("bounce: delivery-status fields: %w", err)
		}
		if mta := h.Get("Reporting-Mta"); mta != "" {
			d.ReportingMTA = typed(mta)
		}
		if h.Get("Final-Recipient") == "" && h.Get("Original-Recipient") == "" {
			if err != nil {
				return nil
			}
			continue // the per-message block
		}
		rc := Recipient{
			Final:      bare(typed(h.Get("Final-Recipient"))),
			Original:   bare(typed(h.Get("Original-Recipient"))),
			Action:     strings.ToLower(strings.TrimSpace(firstWord(h.Get("Action")))),
			Diagnostic: strings.TrimSpace(typed(h.Get("Diagnostic-Code"))),
		}
		if m := statusRe.FindString(h.Get("Status")); m != "" {
			rc.Status = m
		} else if m := statusRe.FindString(rc.Diagnostic); m != "" {
			rc.Status = m
		}
		if rc.Final == "" {
			rc.Final = rc.Original
		}
		if rc.Final != "" {
			d.Recipients = append(d.Recipients, rc)
		}
		if err != nil {
			return nil
		}
	}
	return nil
}

// plainBounce reads a bounce that is no multipart/report: Exim names the
// failed addresses in X-Failed-Recipients and quotes the reply in the body.
func (d *DSN) plainBounce(msg *mail.Message) {
	failed := addresses(msg.Header.Get("X-Failed-Recipients"))
	if len(failed) == 0 {
		return
	}
	body, _ := io.ReadAll(io.LimitReader(msg.Body, maxDSNBytes))
	text := string(body)
	status := statusRe.FindString(text)
	if status == "" {
		if c := smtpCodeRe.FindStringSubmatch(text); c != nil {
			status = c[1] + ".0.0"
		} else {
			status = "5.0.0" // Exim sends this bounce only for a permanent failure
		}
	}
	for _, a := range failed {
		d.Recipients = append(d.Recipients, Recipient{Final: a, Action: "failed", Status: status})
	}
	if i := strings.Index(strings.ToLower(text), "\nmessage-id:"); i >= 0 {
		line, _, _ := strings.Cut(text[i+len("\nmessage-id:"):], "\n")
		d.OriginalMessageID = normalizeID(line)
	}
}

// returnedMessageID reads the Message-ID from returned headers.
func returnedMessageID(r io.Reader) string {
	tp := textproto.NewReader(bufio.NewReader(io.LimitReader(r, 256<<10)))
	h, _ := tp.ReadMIMEHeader()
	return normalizeID(h.Get("Message-Id"))
}

// normalizeID returns "<id>" from a Message-ID field value, or "".
func normalizeID(v string) string {
	v = strings.TrimSpace(v)
	if i := strings.IndexByte(v, '<'); i >= 0 {
		if j := strings.IndexByte(v[i:], '>'); j > 0 {
			return strings.ToLower(v[i : i+j+1])
		}
	}
	if v == "" || strings.ContainsAny(v, " \t") {
		return ""
	}
	return "<" + strings.ToLower(v) + ">"
}

// typed drops an address or diagnostic type ("rfc822; a@b" → "a@b").
func typed(v string) string {
	if t, rest, ok := strings.Cut(v, ";"); ok && !strings.ContainsAny(t, "@ ") {
		return strings.TrimSpace(rest)
	}
	return strings.TrimSpace(v)
}

func firstWord(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexAny(s, " \t("); i >= 0 {
		return s[:i]
	}
	return s
}

// bare returns the lower-cased address in v, or "".
func bare(v string) string {
	v = strings.Trim(strings.TrimSpace(v), "<>")
	if v == "" || !strings.Contains(v, "@") || strings.ContainsAny(v, " \t\r\n,") {
		if a, err := mail.ParseAddress(v); err == nil {
			return strings.ToLower(a.Address)
		}
		return ""
	}
	return strings.ToLower(v)
}

// addresses reads an address list leniently.
func addresses(v string) []string {
	if list, err := mail.ParseAddressList(v); err == nil {
		out := make([]string, 0, len(list))
		for _, a := range list {
			out = append(out, strings.ToLower(a.Address))
		}
		return out
	}
	var out []string
	for _, f := range strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' }) {
		if a := bare(f); a != "" {
			out = append(out, a)
		}
	}
	return out
}
