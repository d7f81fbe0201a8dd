package mailer

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"mime/quotedprintable"
	"net/mail"
	"slices"
	"strings"
	"time"

	"github.com/herald-dev/herald"
)

// A Template is one email composed once for many recipients: a digest
// every reader with the same new posts gets, save for their own links. The
// header block and the MIME body are built and quoted-printable encoded
// once; each Compose only writes the recipient's fields (Date, To,
// Message-ID), fills in the slots and copies the rest. The message has the
// same shape as Compose's (the same fields in the same order, the same
// multipart/alternative body); only where quoted-printable breaks its lines
// differs, which decodes to the same text.
//
// Every recipient field and slot value goes through the checks Compose
// makes: no CR, LF or other control character reaches a header.
type Template struct {
	from     string // bare envelope sender
	boundary string
	// head is the header block around the recipient's fields: head[0]
	// Date head[1] To head[2] Message-ID head[3], with dynamic extra
	// fields (those whose value holds a slot) after head[3] in order.
	head    [4][]byte
	dynHead []dynField
	// body is the MIME body: static pieces with a slot between each two.
	body     [][]byte
	bodySlot []bodySlot
	slots    []string
	size     int // bytes of the static parts, to size each message's buffer
}

// dynField is an extra header field whose value holds a slot; tail is
// the static header lines that follow it.
type dynField struct {
	name, value string
	tail        []byte
}

// bodySlot is a slot's place in the body: which value, and whether it is
// in the HTML part (then the value is HTML-escaped).
type bodySlot struct {
	index int
	html  bool
}

// Recipient is what a Template needs for one message.
type Recipient struct {
	To        string // bare address
	ToName    string // optional display name
	MessageID string // "<id@domain>"; empty: a random one on From's domain
	Date      time.Time
	// Values fill the slots, in NewTemplate's order. In the HTML part they
	// are escaped as html/template escapes text; in the text part and
	// headers they go in as they are. Control characters are refused.
	Values []string
	// Buf, if not nil, is where the message is built (from Buf[:0]), so a
	// sender can reuse one buffer for message after message. The message
	// is only good until Buf is used again.
	Buf []byte
}

// NewTemplate composes e for many recipients. e.To, e.ToName, e.MessageID
// and e.Date are ignored (each Recipient brings its own). slots are
// placeholder strings that may appear in e.Text, e.HTML and the values of
// e.Headers; each occurrence becomes the recipient's value. A placeholder
// must be at least 8 characters of letters and digits, so it can't turn
// up in the message by chance or be changed by the encodings.
func NewTemplate(e *Email, slots ...string) (*Template, error) {
	for _, s := range slots {
		if len(s) < 8 || strings.ContainsFunc(s, func(r rune) bool {
			return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9')
		}) {
			return nil, fmt.Errorf("mailer: template slot %q: want 8 or more letters and digits", s)
		}
	}
	from, err := ParseAddress(e.From)
	if err != nil {
		return nil, herald.Errorf(herald.EINVALID, "invalid From address %q", e.From).WithField("from")
	}
	if e.Text == "" || e.HTML == "" {
		return nil, herald.Errorf(herald.EINVALID, "a template needs a text and an HTML body")
	}
	// Slots are letters and digits: checking the headers with them in
	// place checks everything but the values, which Compose checks.
	extra, err := checkSubjectAndHeaders(e.Subject, e.Headers)
	if err != nil {
		return nil, err
	}

	var rnd [30]byte
	_, _ = rand.Read(rnd[:]) // crypto/rand.Read never fails
	t := &Template{from: from.Address, boundary: hex.EncodeToString(rnd[:]), slots: slices.Clone(slots)}

	// The header block, in Compose's order: Date, From, To, Subject,
	// Message-ID, MIME-Version, the extra fields sorted, Content-Type.
	var h bytes.Buffer
	line := func(name, value string) error {
		l, err := fold(name + ": " + value)
		if err != nil {
			return err
		}
		h.WriteString(l)
		h.WriteString("\r\n")
		return nil
	}
	cut := func() []byte { b := bytes.Clone(h.Bytes()); h.Reset(); return b }
	t.head[0] = cut() // nothing before Date
	if err := line("From", formatAddress(from)); err != nil {
		return nil, err
	}
	t.head[1] = cut()
	if err := line("Subject", encodeText(e.Subject)); err != nil {
		return nil, err
	}
	t.head[2] = cut()
	if err := line("MIME-Version", "1.0"); err != nil {
		return nil, err
	}
	var dyn *dynField
	for _, k := range extra {
		v := e.Headers[k]
		if slotIn(v, slots) {
			if dyn == nil {
				t.head[3] = cut()
			} else {
				dyn.tail = cut()
			}
			t.dynHead = append(t.dynHead, dynField{name: k, value: v})
			dyn = &t.dynHead[len(t.dynHead)-1]
			continue
		}
		if err := line(k, encodeText(v)); err != nil {
			return nil, err
		}
	}
	if err := line("Content-Type", "multipart/alternative; boundary="+t.boundary); err != nil {
		return nil, err
	}
	h.WriteString("\r\n")
	if dyn == nil {
		t.head[3] = cut()
	} else {
		dyn.tail = cut()
	}

	// The body, as jordan-wright/email writes it for Compose: a
	// multipart/alternative with a quoted-printable text part and HTML part.
	var b bytes.Buffer
	piece := func() { t.body = append(t.body, bytes.Clone(b.Bytes())); b.Reset() }
	for i, part := range []struct {
		mediaType, content string
		html               bool
	}{{"text/plain", e.Text, false}, {"text/html", e.HTML, true}} {
		if i > 0 {
			b.WriteString("\r\n")
		}
		fmt.Fprintf(&b, "--%s\r\nContent-Transfer-Encoding: quoted-printable\r\nContent-Type: %s; charset=UTF-8\r\n\r\n", t.boundary, part.mediaType)
		rest := strings.ToValidUTF8(part.content, "\uFFFD")
		for {
			at, slot := nextSlot(rest, slots)
			if at < 0 {
				writeQP(&b, rest)
				break
			}
			// A slot starts on a line of its own: whatever went before
			// ends with a soft line break, and so does the value, so the
			// static lines stay as the encoder made them.
			if at > 0 {
				writeQP(&b, rest[:at])
				if b.Len() > 0 && b.Bytes()[b.Len()-1] != '\n' {
					b.WriteString("=\r\n")
				}
			}
			piece()
			t.bodySlot = append(t.bodySlot, bodySlot{index: slot, html: part.html})
			rest = rest[at+len(slots[slot]):]
		}
	}
	b.WriteString("\r\n--" + t.boundary + "--\r\n")
	piece()
	for _, p := range t.body {
		t.size += len(p)
	}
	for _, p := range t.head {
		t.size += len(p)
	}
	return t, nil
}

func writeQP(b *bytes.Buffer, s string) {
	qp := quotedprintable.NewWriter(b)
	_, _ = qp.Write([]byte(s)) // a bytes.Buffer does not fail
	_ = qp.Close()
}

func slotIn(v string, slots []string) bool {
	at, _ := nextSlot(v, slots)
	return at >= 0
}

// nextSlot finds the first placeholder in s: its offset (-1: none) and
// which slot it is.
func nextSlot(s string, slots []string) (int, int) {
	at, which := -1, -1
	for i, p := range slots {
		if j := strings.Index(s, p); j >= 0 && (at < 0 || j < at) {
			at, which = j, i
		}
	}
	return at, which
}

// Compose builds r's message from the template.
func (t *Template) Compose(r *Recipient) (*herald.Message, error) {
	if len(r.Values) != len(t.slots) {
		return nil, fmt.Errorf("mailer: template has %d slots, got %d values", len(t.slots), len(r.Values))
	}
	for _, v := range r.Values {
		if err := checkValue("link", v); err != nil {
			return nil, err
		}
	}
	to, err := bareAddress(r.To)
	if err != nil {
		return nil, err
	}
	if err := checkValue("To name", r.ToName); err != nil {
		return nil, err
	}
	msgID := r.MessageID
	if msgID == "" {
		msgID = NewMessageID(t.from)
	}
	if msgID, err = normalizeMessageID(msgID); err != nil {
		return nil, err
	}
	date := r.Date
	if date.IsZero() {
		date = time.Now()
	}

	b := bytes.NewBuffer(r.Buf[:0])
	b.Grow(t.size + 512 + 4*len(t.bodySlot)*64)
	b.Write(t.head[0])
	b.WriteString("Date: ")
	b.Write(date.AppendFormat(b.AvailableBuffer(), time.RFC1123Z))
	b.WriteString("\r\n")
	b.Write(t.head[1])
	toLine, err := fold("To: " + formatAddress(&mail.Address{Name: r.ToName, Address: to}))
	if err != nil {
		return nil, err
	}
	b.WriteString(toLine)
	b.WriteString("\r\n")
	b.Write(t.head[2])
	idLine, err := fold("Message-ID: " + msgID)
	if err != nil {
		return nil, err
	}
	b.WriteString(idLine)
	b.WriteString("\r\n")
	b.Write(t.head[3])
	for _, f := range t.dynHead {
		v := f.value
		for i, p := range t.slots {
			v = strings.ReplaceAll(v, p, r.Values[i])
		}
		l, err := fold(f.name + ": " + encodeText(v))
		if err != nil {
			return nil, err
		}
		b.WriteString(l)
		b.WriteString("\r\n")
		b.Write(f.tail)
	}
	var escaped []string // the values HTML-escaped, made when first needed
	for i, p := range t.body {
		b.Write(p)
		if i == len(t.bodySlot) {
			break
		}
		s := t.bodySlot[i]
		v := r.Values[s.index]
		if s.html {
			if escaped == nil {
				escaped = make([]string, len(r.Values))
				for j, v := range r.Values {
					escaped[j] = htmlEscaper.Replace(v)
				}
			}
			v = escaped[s.index]
		}
		appendQP(b, v)
	}
	return &herald.Message{From: t.from, To: to, MessageID: msgID, Raw: b.Bytes()}, nil
}

// htmlEscaper escapes a value for the HTML part as html/template escapes
// text, so a slot reads exactly as the value rendered in its place would.
var htmlEscaper = strings.NewReplacer(
	"\x00", "\uFFFD", `"`, "&#34;", "&", "&amp;", "'", "&#39;", "+", "&#43;", "<", "&lt;", ">", "&gt;",
)

// appendQP writes s quoted-printable encoded, starting at the beginning of
// a line, and ends it with a soft line break: the static text after it
// starts a line too. Every byte that is not printable ASCII, and '=', is
// escaped; lines stay within 76 characters.
func appendQP(b *bytes.Buffer, s string) {
	const hex = "0123456789ABCDEF"
	col := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		n := 1
		if c < '!' || c > '~' || c == '=' {
			n = 3
		}
		if col+n > 75 {
			b.WriteString("=\r\n")
			col = 0
		}
		if n == 1 {
			b.WriteByte(c)
		} else {
			b.WriteByte('=')
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&0x0f])
		}
		col += n
	}
	if col > 0 {
		b.WriteString("=\r\n")
	}
}
