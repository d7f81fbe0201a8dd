// Package mailer composes herald's emails and delivers them: MIME
// composition (one encoder, Template: jordan-wright/email for the body,
// herald's own safe header block), DKIM signing, an SMTP connection pool and a file transport, and
// the Sender that drains the durable outbox.
package mailer

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"mime"
	"net/mail"
	"net/textproto"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/herald-dev/herald"
)

// Email is what Compose turns into a message.
type Email struct {
	From string // "Name <addr>", from mail.from
	// ReplyTo, when set, is where replies go (mail.reply_to).
	ReplyTo string
	To      string // bare address
	ToName  string // optional display name
	Subject string
	Text    string // text/plain part
	HTML    string // text/html part
	// Headers are extra header fields (List-Unsubscribe, List-Id, ...).
	// They may not replace the ones Compose writes itself.
	Headers   map[string]string
	MessageID string    // "<id@domain>"; empty: a random one on From's domain
	Date      time.Time // zero: now
}

// Header lines: RFC 5322 asks for at most 78 characters and allows 998.
const (
	foldAt      = 78
	maxLineLen  = 998
	maxIDLength = 250
)

// reserved reports the fields Compose writes itself (and a few that would
// change who gets or vouches for the message); Email.Headers may not set them.
func reserved(name string) bool {
	switch strings.ToLower(name) {
	case "date", "from", "to", "subject", "message-id", "mime-version", "content-type",
		"content-transfer-encoding", "cc", "bcc", "sender", "reply-to", "dkim-signature":
		return true
	}
	return false
}

// Compose builds the RFC 5322 message for e: a Template without slots
// (see there), for one recipient. It validates every address and refuses
// a CR, LF or other control character in any header name or value with
// an EINVALID error.
func Compose(e *Email) (*herald.Message, error) {
	t, err := NewTemplate(e)
	if err != nil {
		return nil, err
	}
	return t.Compose(&Recipient{To: e.To, ToName: e.ToName, MessageID: e.MessageID, Date: e.Date})
}

// ParseAddress parses one RFC 5322 address ("Name <a@b>" or "a@b"),
// refusing line breaks. Errors are EINVALID.
func ParseAddress(s string) (*mail.Address, error) {
	if strings.ContainsAny(s, "\r\n") {
		return nil, herald.Errorf(herald.EINVALID, "address must not contain line breaks")
	}
	if !utf8.ValidString(s) {
		return nil, herald.Errorf(herald.EINVALID, "address is not valid UTF-8")
	}
	a, err := mail.ParseAddress(s)
	if err != nil {
		return nil, herald.Errorf(herald.EINVALID, "%q is not a valid address: %v", s, err)
	}
	if err := checkValue("display name", a.Name); err != nil {
		return nil, err
	}
	return a, nil
}

// bareAddress checks that s is an address with no display name.
func bareAddress(s string) (string, error) {
	if plainAddress(s) {
		return s, nil // what the parser would return, without the parse
	}
	a, err := ParseAddress(s)
	if err != nil || a.Name != "" || a.Address != strings.TrimSpace(s) {
		return "", herald.Errorf(herald.EINVALID, "invalid recipient address %q", s).WithField("email")
	}
	return a.Address, nil
}

// plainAddress reports an address of the commonest shape: local@domain,
// both dot-atoms of letters, digits and "-_+" (the local part) or "-"
// (the domain), which net/mail parses into itself. Anything else goes
// through the parser.
func plainAddress(s string) bool {
	at := strings.IndexByte(s, '@')
	if at <= 0 || at == len(s)-1 || len(s) > 254 {
		return false
	}
	atom := func(p string, extra string) bool {
		if p[0] == '.' || p[len(p)-1] == '.' || strings.Contains(p, "..") {
			return false
		}
		for i := 0; i < len(p); i++ {
			c := p[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || strings.IndexByte(extra, c) >= 0) {
				return false
			}
		}
		return true
	}
	return atom(s[:at], "-_+") && atom(s[at+1:], "-")
}

// checkName accepts RFC 5322 field names: printable ASCII except colon.
func checkName(k string) error {
	if k == "" {
		return herald.Errorf(herald.EINVALID, "empty header name")
	}
	for i := 0; i < len(k); i++ {
		if c := k[i]; c <= ' ' || c >= 0x7f || c == ':' {
			return herald.Errorf(herald.EINVALID, "invalid header name %q", k)
		}
	}
	return nil
}

// checkValue refuses CR, LF and the other control characters in a header
// value: a line break would let input start a header of its own.
func checkValue(name, v string) error {
	if strings.ContainsAny(v, "\r\n") {
		return herald.Errorf(herald.EINVALID, "%s must not contain line breaks", name)
	}
	if !utf8.ValidString(v) {
		return herald.Errorf(herald.EINVALID, "%s is not valid UTF-8", name)
	}
	for _, r := range v {
		if (r < ' ' && r != '\t') || r == 0x7f {
			return herald.Errorf(herald.EINVALID, "%s must not contain control characters", name)
		}
	}
	return nil
}

// encodeText RFC 2047-encodes an unstructured value when it is not plain
// ASCII. The encoder splits into words of at most 75 characters, so fold
// finds places to break.
func encodeText(s string) string {
	return mime.QEncoding.Encode("utf-8", s)
}

// fold breaks a header line before spaces so no line passes 78 characters
// where that is possible; a line that still passes 998 is an error.
func fold(line string) (string, error) {
	if len(line) <= foldAt {
		return line, nil
	}
	var out strings.Builder
	cur := 0
	for i := 0; i < len(line); {
		// A token is a run of spaces and the word after it.
		j := i
		for j < len(line) && line[j] == ' ' {
			j++
		}
		for j < len(line) && line[j] != ' ' {
			j++
		}
		tok := line[i:j]
		// Never fold right after "Name:": a lone long value (a Message-ID)
		// gains nothing from moving to a line of its own.
		if i > 0 && cur > 0 && !strings.HasSuffix(line[:i], ":") && cur+len(tok) > foldAt && tok[0] == ' ' && strings.TrimLeft(tok, " ") != "" {
			out.WriteString("\r\n")
			cur = 0
		}
		out.WriteString(tok)
		cur += len(tok)
		if cur > maxLineLen {
			name, _, _ := strings.Cut(line, ":")
			return "", herald.Errorf(herald.EINVALID, "header %s has a line longer than %d characters", name, maxLineLen)
		}
		i = j
	}
	return out.String(), nil
}

// splitMessage separates the header block jordan-wright/email wrote from
// the body, keeping the MIME fields we need.
func splitMessage(full []byte) (textproto.MIMEHeader, []byte, error) {
	i := bytes.Index(full, []byte("\r\n\r\n"))
	if i < 0 {
		return nil, nil, fmt.Errorf("mailer: MIME body without a header block")
	}
	r := textproto.NewReader(bufio.NewReader(bytes.NewReader(full[:i+4])))
	h, err := r.ReadMIMEHeader()
	if err != nil {
		return nil, nil, fmt.Errorf("mailer: read MIME header: %w", err)
	}
	if h.Get("Content-Type") == "" {
		return nil, nil, fmt.Errorf("mailer: MIME body without Content-Type")
	}
	return h, full[i+4:], nil
}

// NewMessageID returns "<id@domain>" with the domain of the from address.
// With parts the id is the hex SHA-256 of them, so the same parts (a run
// and a subscriber) always give the same id; without, it is random.
func NewMessageID(from string, parts ...string) string {
	var id string
	if len(parts) == 0 {
		var b [16]byte
		_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
		id = hex.EncodeToString(b[:])
	} else {
		h := sha256.New()
		var n [8]byte
		for _, p := range parts {
			// Length-prefixed, so ("ab","c") and ("a","bc") differ.
			binary.BigEndian.PutUint64(n[:], uint64(len(p)))
			h.Write(n[:])
			h.Write([]byte(p))
		}
		id = hex.EncodeToString(h.Sum(nil))
	}
	return "<" + id + "@" + domainOf(from) + ">"
}

// domainOf returns the lower-cased domain of an address ("Name <a@b>" or
// "a@b"), or "localhost" when there is none.
func domainOf(from string) string {
	addr := from
	// A bare address (what the digest passes for every email of a run)
	// needs no parser.
	if strings.ContainsAny(from, "<>\"(),;:\\ \t") || strings.Count(from, "@") != 1 {
		if a, err := mail.ParseAddress(from); err == nil {
			addr = a.Address
		}
	}
	at := strings.LastIndexByte(addr, '@')
	if at < 0 {
		return "localhost"
	}
	d := strings.ToLower(strings.TrimRight(addr[at+1:], "> "))
	if d == "" || strings.ContainsFunc(d, func(r rune) bool { return r <= ' ' || r == '<' || r == '>' || r == 0x7f }) {
		return "localhost"
	}
	return d
}

// normalizeMessageID puts angle brackets around id and checks it is one
// printable ASCII token with an @.
func normalizeMessageID(id string) (string, error) {
	inner := strings.TrimSuffix(strings.TrimPrefix(id, "<"), ">")
	bad := inner == "" || len(inner) > maxIDLength || !strings.Contains(inner, "@")
	for i := 0; i < len(inner) && !bad; i++ {
		c := inner[i]
		bad = c <= ' ' || c >= 0x7f || c == '<' || c == '>'
	}
	if bad {
		return "", herald.Errorf(herald.EINVALID, "invalid Message-ID %q", id)
	}
	return "<" + inner + ">", nil
}

// checkSubjectAndHeaders checks what Compose and NewTemplate both take
// from the caller: a subject, and extra headers that neither inject lines
// nor set what the mailer sets. It returns the extra names, sorted, so
// headers come out in a fixed order.
func checkSubjectAndHeaders(subject string, headers map[string]string) ([]string, error) {
	if err := checkValue("Subject", subject); err != nil {
		return nil, err
	}
	if strings.TrimSpace(subject) == "" {
		return nil, herald.Errorf(herald.EINVALID, "subject is required").WithField("subject")
	}
	extra := make([]string, 0, len(headers))
	for k, v := range headers {
		if err := checkName(k); err != nil {
			return nil, err
		}
		if reserved(k) {
			return nil, herald.Errorf(herald.EINVALID, "header %s is set by the mailer", k)
		}
		if err := checkValue(k, v); err != nil {
			return nil, err
		}
		extra = append(extra, k)
	}
	sort.Strings(extra)
	return extra, nil
}
