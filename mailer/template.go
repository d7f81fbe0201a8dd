package mailer

import (
	"bytes"
	"fmt"
	"mime"
	"net/mail"
	"net/textproto"
	"slices"
	"strings"
	"time"

	"github.com/jordan-wright/email"

	"github.com/herald-dev/herald"
)

// A Template is one email composed once for many recipients: a digest
// every reader with the same new posts gets, save for their own links. It
// is herald's one MIME encoder: Compose is a template without slots.
//
// jordan-wright/email builds the MIME body once (multipart/alternative,
// quoted-printable, CRLF); the header block is herald's own, because that
// library writes an address that fails to parse as it is, splits address
// lists on every comma (even inside quoted names), never folds, and
// orders fields by map iteration. Each Compose only writes the
// recipient's fields (Date, To, Message-ID), fills in the slots and copies
// the rest.
//
// Every recipient field and slot value goes through the checks the
// template's own fields had: no CR, LF or other control character reaches
// a header.
type Template struct {
	from string // bare envelope sender
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
// up in the message by chance or be changed by the encodings. Errors in
// e are EINVALID.
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
	if e.Text == "" && e.HTML == "" {
		return nil, herald.Errorf(herald.EINVALID, "email has no body")
	}
	// Slots are letters and digits: checking the headers with them in
	// place checks everything but the values, which Compose checks.
	extra, err := checkSubjectAndHeaders(e.Subject, e.Headers)
	if err != nil {
		return nil, err
	}

	je := email.NewEmail()
	// Ours are written below; set, they spare the library making its own.
	je.Headers = textproto.MIMEHeader{"Message-Id": {"<unused@localhost>"}, "Date": {"unused"}}
	je.Text = []byte(strings.ToValidUTF8(e.Text, "\uFFFD"))
	je.HTML = []byte(strings.ToValidUTF8(e.HTML, "\uFFFD"))
	full, err := je.Bytes()
	if err != nil {
		return nil, fmt.Errorf("mailer: build MIME body: %w", err)
	}
	mimeHdr, body, err := splitMessage(full)
	if err != nil {
		return nil, err
	}
	t := &Template{from: from.Address, slots: slices.Clone(slots)}

	// The header block: Date, From, To, Subject, Message-ID, MIME-Version,
	// the extra fields sorted, Content-Type, Content-Transfer-Encoding.
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
	if e.ReplyTo != "" {
		rt, err := ParseAddress(e.ReplyTo)
		if err != nil {
			return nil, herald.Errorf(herald.EINVALID, "invalid Reply-To address %q", e.ReplyTo).WithField("reply_to")
		}
		if err := line("Reply-To", formatAddress(rt)); err != nil {
			return nil, err
		}
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
	ct := mimeHdr.Get("Content-Type")
	if err := line("Content-Type", ct); err != nil {
		return nil, err
	}
	if cte := mimeHdr.Get("Content-Transfer-Encoding"); cte != "" {
		if err := line("Content-Transfer-Encoding", cte); err != nil {
			return nil, err
		}
	}
	h.WriteString("\r\n")
	if dyn == nil {
		t.head[3] = cut()
	} else {
		dyn.tail = cut()
	}

	// The body, cut at the slots. A slot starts on a line of its own:
	// what went before it ends with a soft line break, and so does each
	// value (appendQP), so the lines the encoder made stay within bounds.
	// The pieces are slices of body, which is this template's own.
	prev := 0
	if len(slots) > 0 {
		htmlAt := htmlParts(body, ct)
		for _, at := range findSlots(body, slots) {
			piece := slices.Clip(body[prev:at.start])
			if len(piece) > 0 && piece[len(piece)-1] != '\n' {
				piece = append(piece, "=\r\n"...) // a copy: piece has no room
			}
			t.body = append(t.body, piece)
			t.bodySlot = append(t.bodySlot, bodySlot{index: at.slot, html: htmlAt(at.start)})
			prev = at.end
		}
	}
	t.body = append(t.body, body[prev:])
	for _, p := range t.body {
		t.size += len(p)
	}
	for _, p := range t.head {
		t.size += len(p)
	}
	return t, nil
}

// slotAt is a placeholder found in the encoded body: body[start:end],
// soft line breaks included.
type slotAt struct{ start, end, slot int }

var softBreak = []byte("=\r\n")

// findSlots finds every placeholder in a quoted-printable body, in order.
// The encoder leaves letters and digits as they are, but may break a line
// (a soft break, "=\r\n") between any two of them.
func findSlots(body []byte, slots []string) []slotAt {
	var out []slotAt
	for i := 0; i < len(body); i++ {
		if body[i] == '=' {
			i += 2 // an escape or a soft break: no placeholder starts inside
			continue
		}
		for k, p := range slots {
			if end := matchSlot(body, i, p); end > 0 {
				out = append(out, slotAt{start: i, end: end, slot: k})
				i = end - 1
				break
			}
		}
	}
	return out
}

// matchSlot returns where p ends if it starts at body[i] (soft breaks
// between its letters allowed), or -1.
func matchSlot(body []byte, i int, p string) int {
	j := i
	for k := 0; k < len(p); k++ {
		for k > 0 && bytes.HasPrefix(body[j:], softBreak) {
			j += len(softBreak)
		}
		if j >= len(body) || body[j] != p[k] {
			return -1
		}
		j++
	}
	return j
}

// htmlParts returns a function that says whether an offset of body is in
// a text/html part: body is a multipart/alternative of a text and an HTML
// part, or a single part of the type ct says.
func htmlParts(body []byte, ct string) func(off int) bool {
	mt, params, _ := mime.ParseMediaType(ct)
	if !strings.HasPrefix(mt, "multipart/") {
		html := mt == "text/html"
		return func(int) bool { return html }
	}
	// The offsets where HTML parts start and where the others start.
	type part struct {
		at   int
		html bool
	}
	var parts []part
	delim := []byte("--" + params["boundary"] + "\r\n")
	for off := 0; ; {
		i := bytes.Index(body[off:], delim)
		if i < 0 {
			break
		}
		start := off + i + len(delim)
		head, _, _ := bytes.Cut(body[start:], []byte("\r\n\r\n"))
		parts = append(parts, part{at: start, html: bytes.Contains(head, []byte("Content-Type: text/html"))})
		off = start
	}
	return func(off int) bool {
		html := false
		for _, p := range parts {
			if p.at > off {
				break
			}
			html = p.html
		}
		return html
	}
}

func slotIn(v string, slots []string) bool {
	for _, p := range slots {
		if strings.Contains(v, p) {
			return true
		}
	}
	return false
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

// htmlEscaper escapes a value for the HTML part as golang.org/x/net/html
// writes text and attributes (every HTML email passes through its
// renderer when its CSS is inlined), so a slot reads exactly as the value
// rendered in its place would.
var htmlEscaper = strings.NewReplacer(
	"\x00", "\uFFFD", `"`, "&#34;", "&", "&amp;", "'", "&#39;", "<", "&lt;", ">", "&gt;",
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
