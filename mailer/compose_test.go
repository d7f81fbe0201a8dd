package mailer

import (
	"bytes"
	"flag"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/mail"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/herald-dev/herald"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata")

func sampleEmail() *Email {
	return &Email{
		From:    "My Blog <digest@blog.example.org>",
		To:      "reader@example.com",
		ToName:  "Ann Reader",
		Subject: "My Blog: 2 new posts",
		Text:    "Hello,\n\nTwo new posts:\n- First post\n- Second post\n\nUnsubscribe: https://blog.example.org/unsubscribe?token=abc\n",
		HTML:    "<p>Hello,</p>\n<ul><li><a href=\"https://blog.example.org/1\">First post</a></li><li>Second = post</li></ul>\n",
		Headers: map[string]string{
			"List-Unsubscribe":      "<https://blog.example.org/unsubscribe?token=abc>",
			"List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
			"List-Id":               "My Blog <digest.blog.example.org>",
			"Precedence":            "bulk",
		},
		MessageID: NewMessageID("digest@blog.example.org", "run-1", "sub-2"),
		Date:      time.Date(2025, 3, 4, 7, 0, 0, 0, time.UTC),
	}
}

// parsed is a composed message read back the way a mail client would.
type parsed struct {
	msg   *mail.Message
	text  string
	html  string
	parts int
}

func parse(t *testing.T, raw []byte) *parsed {
	t.Helper()
	checkWire(t, raw)
	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("ReadMessage: %v\n%s", err, raw)
	}
	p := &parsed{msg: msg}
	mt, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil {
		t.Fatalf("Content-Type: %v", err)
	}
	if mt != "multipart/alternative" {
		body := decodeBody(t, msg.Header.Get("Content-Transfer-Encoding"), msg.Body)
		if strings.HasPrefix(mt, "text/html") {
			p.html = body
		} else {
			p.text = body
		}
		return p
	}
	mr := multipart.NewReader(msg.Body, params["boundary"])
	for {
		part, err := mr.NextRawPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		p.parts++
		ct := part.Header.Get("Content-Type")
		if !strings.Contains(strings.ToLower(ct), "charset=utf-8") {
			t.Errorf("part Content-Type %q lacks charset=UTF-8", ct)
		}
		body := decodeBody(t, part.Header.Get("Content-Transfer-Encoding"), part)
		switch {
		case strings.HasPrefix(ct, "text/plain"):
			p.text = body
		case strings.HasPrefix(ct, "text/html"):
			p.html = body
		default:
			t.Errorf("unexpected part %q", ct)
		}
	}
	return p
}

func decodeBody(t *testing.T, cte string, r io.Reader) string {
	t.Helper()
	if !strings.EqualFold(cte, "quoted-printable") {
		t.Errorf("Content-Transfer-Encoding %q, want quoted-printable", cte)
	}
	b, err := io.ReadAll(quotedprintable.NewReader(r))
	if err != nil {
		t.Fatal(err)
	}
	return strings.ReplaceAll(string(b), "\r\n", "\n")
}

// checkWire checks CRLF line endings and line lengths.
func checkWire(t *testing.T, raw []byte) {
	t.Helper()
	if !bytes.HasSuffix(raw, []byte("\r\n")) {
		t.Error("message does not end in CRLF")
	}
	inHeader := true
	for i, line := range bytes.Split(raw, []byte("\r\n")) {
		if bytes.ContainsAny(line, "\r\n") {
			t.Errorf("line %d has a bare CR or LF: %q", i+1, line)
		}
		if len(line) > 998 {
			t.Errorf("line %d is %d characters long", i+1, len(line))
		}
		if len(line) == 0 {
			inHeader = false
		}
		// Over 78 only where there is no space to fold at.
		if _, value, _ := bytes.Cut(line, []byte(": ")); inHeader && len(line) > 78 && bytes.Contains(bytes.TrimSpace(value), []byte(" ")) {
			t.Errorf("header line %d is %d characters long: %q", i+1, len(line), line)
		}
	}
}

func TestCompose(t *testing.T) {
	e := sampleEmail()
	m, err := Compose(e)
	if err != nil {
		t.Fatal(err)
	}
	if m.From != "digest@blog.example.org" || m.To != "reader@example.com" || m.MessageID != e.MessageID {
		t.Errorf("envelope: %+v", m)
	}
	p := parse(t, m.Raw)
	h := p.msg.Header
	from, err := mail.ParseAddress(h.Get("From"))
	if err != nil || from.Name != "My Blog" || from.Address != "digest@blog.example.org" {
		t.Errorf("From %q: %v %v", h.Get("From"), from, err)
	}
	to, err := mail.ParseAddress(h.Get("To"))
	if err != nil || to.Name != "Ann Reader" || to.Address != "reader@example.com" {
		t.Errorf("To %q: %v %v", h.Get("To"), to, err)
	}
	if got := h.Get("Subject"); got != e.Subject {
		t.Errorf("Subject %q", got)
	}
	if got := h.Get("Message-ID"); got != e.MessageID || !strings.HasPrefix(got, "<") || !strings.HasSuffix(got, "@blog.example.org>") {
		t.Errorf("Message-ID %q", got)
	}
	if d, err := h.Date(); err != nil || !d.Equal(e.Date) {
		t.Errorf("Date %q: %v", h.Get("Date"), err)
	}
	if h.Get("MIME-Version") != "1.0" {
		t.Errorf("MIME-Version %q", h.Get("MIME-Version"))
	}
	for k, v := range e.Headers {
		if got := h.Get(k); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	if p.parts != 2 {
		t.Errorf("%d parts, want 2", p.parts)
	}
	if p.text != e.Text || p.html != e.HTML {
		t.Errorf("bodies differ:\ntext %q\nhtml %q", p.text, p.html)
	}
	// Fields come in a fixed order, so signatures and goldens are stable.
	if !bytes.HasPrefix(m.Raw, []byte("Date: Tue, 04 Mar 2025 07:00:00 +0000\r\nFrom: \"My Blog\" <digest@blog.example.org>\r\n")) {
		t.Errorf("header starts %q", m.Raw[:120])
	}
}

var boundaryRE = regexp.MustCompile(`boundary=([0-9a-f]{60})`)

func TestComposeGolden(t *testing.T) {
	m, err := Compose(sampleEmail())
	if err != nil {
		t.Fatal(err)
	}
	// The multipart boundary is random: pin it.
	b := boundaryRE.FindSubmatch(m.Raw)
	if b == nil {
		t.Fatalf("no boundary in\n%s", m.Raw)
	}
	got := bytes.ReplaceAll(m.Raw, b[1], []byte("BOUNDARY"))
	path := filepath.Join("testdata", "digest.eml")
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("composed message differs from %s (run with -update to accept):\n%s", path, got)
	}
}

func TestComposeNonASCII(t *testing.T) {
	e := sampleEmail()
	e.From = "Blög Ünïcode <digest@blog.example.org>"
	e.ToName = "Zoë, the \"Reader\""
	e.Subject = strings.Repeat("Ça va très bien — 日本語のタイトル ", 8)
	e.Text = "Grüße 😀\n"
	e.HTML = "<p>Grüße 😀</p>"
	e.Headers["List-Id"] = "Blög <digest.blog.example.org>"
	m, err := Compose(e)
	if err != nil {
		t.Fatal(err)
	}
	raw := string(m.Raw)
	header := raw[:strings.Index(raw, "\r\n\r\n")]
	for _, r := range header {
		if r > 0x7e {
			t.Fatalf("header has a raw non-ASCII character %q:\n%s", r, header)
		}
	}
	p := parse(t, m.Raw)
	dec := new(mime.WordDecoder)
	subj, err := dec.DecodeHeader(p.msg.Header.Get("Subject"))
	if err != nil || subj != e.Subject {
		t.Errorf("Subject decodes to %q (%v), want %q", subj, err, e.Subject)
	}
	from, err := mail.ParseAddress(p.msg.Header.Get("From"))
	if err != nil || from.Name != "Blög Ünïcode" {
		t.Errorf("From: %v %v", from, err)
	}
	to, err := mail.ParseAddress(p.msg.Header.Get("To"))
	if err != nil || to.Name != e.ToName || to.Address != e.To {
		t.Errorf("To %q: %v %v", p.msg.Header.Get("To"), to, err)
	}
	if p.text != e.Text || p.html != e.HTML {
		t.Errorf("bodies: %q %q", p.text, p.html)
	}
}

func TestComposeSinglePart(t *testing.T) {
	e := sampleEmail()
	e.HTML = ""
	m, err := Compose(e)
	if err != nil {
		t.Fatal(err)
	}
	p := parse(t, m.Raw)
	if ct := p.msg.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Errorf("Content-Type %q", ct)
	}
	if p.text != e.Text {
		t.Errorf("text %q", p.text)
	}
}

func TestComposeDefaults(t *testing.T) {
	e := sampleEmail()
	e.MessageID = ""
	e.Date = time.Time{}
	before := time.Now().Add(-time.Second)
	m, err := Compose(e)
	if err != nil {
		t.Fatal(err)
	}
	p := parse(t, m.Raw)
	if id := p.msg.Header.Get("Message-ID"); id != m.MessageID || !regexp.MustCompile(`^<[0-9a-f]{32}@blog\.example\.org>$`).MatchString(id) {
		t.Errorf("Message-ID %q (message says %q)", id, m.MessageID)
	}
	if d, err := p.msg.Header.Date(); err != nil || d.Before(before) {
		t.Errorf("Date %v %v", d, err)
	}
	// A Message-ID without brackets gets them.
	e.MessageID = "abc.123@blog.example.org"
	m, err = Compose(e)
	if err != nil || m.MessageID != "<abc.123@blog.example.org>" {
		t.Errorf("Message-ID %q, %v", m.MessageID, err)
	}
}

func TestComposeRefuses(t *testing.T) {
	cases := map[string]func(e *Email){
		"CRLF in subject":         func(e *Email) { e.Subject = "Hi\r\nBcc: victim@example.com" },
		"LF in subject":           func(e *Email) { e.Subject = "Hi\nBcc: victim@example.com" },
		"CR in to name":           func(e *Email) { e.ToName = "Ann\rBcc: x@y.z" },
		"LF in to":                func(e *Email) { e.To = "reader@example.com\nBcc: x@y.z" },
		"LF in from":              func(e *Email) { e.From = "Blog <a@b.org>\nBcc: x@y.z" },
		"CRLF in header value":    func(e *Email) { e.Headers["List-Id"] = "x\r\nBcc: x@y.z" },
		"LF in header name":       func(e *Email) { e.Headers["X-A\nBcc"] = "x" },
		"colon in header name":    func(e *Email) { e.Headers["X-A:"] = "x" },
		"space in header name":    func(e *Email) { e.Headers["X A"] = "x" },
		"NUL in subject":          func(e *Email) { e.Subject = "a\x00b" },
		"reserved header":         func(e *Email) { e.Headers["bcc"] = "x@y.z" },
		"override subject":        func(e *Email) { e.Headers["Subject"] = "other" },
		"to with display name":    func(e *Email) { e.To = "Ann <reader@example.com>" },
		"two recipients":          func(e *Email) { e.To = "a@example.com, b@example.com" },
		"unparsable to":           func(e *Email) { e.To = "not an address" },
		"unparsable from":         func(e *Email) { e.From = "My Blog digest@blog" },
		"empty from":              func(e *Email) { e.From = "" },
		"empty subject":           func(e *Email) { e.Subject = "  " },
		"no body":                 func(e *Email) { e.Text, e.HTML = "", "" },
		"bad message id":          func(e *Email) { e.MessageID = "<a b@c>" },
		"message id without at":   func(e *Email) { e.MessageID = "<abc>" },
		"invalid UTF-8":           func(e *Email) { e.Subject = "a\xffb" },
		"unfoldable header value": func(e *Email) { e.Headers["List-Unsubscribe"] = "<https://x.org/" + strings.Repeat("a", 1000) + ">" },
	}
	for name, mutate := range cases {
		t.Run(name, func(t *testing.T) {
			e := sampleEmail()
			mutate(e)
			m, err := Compose(e)
			if err == nil {
				t.Fatalf("accepted:\n%s", m.Raw)
			}
			if herald.ErrorCode(err) != herald.EINVALID {
				t.Errorf("error %v has code %q, want EINVALID", err, herald.ErrorCode(err))
			}
		})
	}
}

func TestFold(t *testing.T) {
	long := "Subject: " + strings.Repeat("word ", 40) + "end"
	got, err := fold(long)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(got, "\r\n") {
		if len(line) > 78 {
			t.Errorf("line of %d: %q", len(line), line)
		}
		if strings.TrimSpace(line) == "" {
			t.Errorf("whitespace-only line in %q", got)
		}
	}
	if strings.ReplaceAll(got, "\r\n", "") != long {
		t.Errorf("unfolding does not give back the line")
	}
	// A long word stays whole when it fits in 998.
	one := "X-Long: " + strings.Repeat("a", 500)
	if got, err := fold(one); err != nil || got != one {
		t.Errorf("fold(long word) = %q, %v", got, err)
	}
	if _, err := fold("X-Long: " + strings.Repeat("a", 1000)); err == nil {
		t.Error("a 1008-character word was accepted")
	}
}

func TestNewMessageID(t *testing.T) {
	a := NewMessageID("My Blog <digest@Blog.Example.org>", "run:7", "sub:9")
	b := NewMessageID("digest@blog.example.org", "run:7", "sub:9")
	if a != b {
		t.Errorf("same parts, different ids: %s %s", a, b)
	}
	if !regexp.MustCompile(`^<[0-9a-f]{64}@blog\.example\.org>$`).MatchString(a) {
		t.Errorf("id %q", a)
	}
	if c := NewMessageID("digest@blog.example.org", "run:7", "sub:10"); c == a {
		t.Error("different parts, same id")
	}
	if NewMessageID("x@y.org", "ab", "c") == NewMessageID("x@y.org", "a", "bc") {
		t.Error("parts are not delimited")
	}
	r1, r2 := NewMessageID("x@y.org"), NewMessageID("x@y.org")
	if r1 == r2 || !strings.HasSuffix(r1, "@y.org>") {
		t.Errorf("random ids %s %s", r1, r2)
	}
	if id := NewMessageID("nonsense"); !strings.HasSuffix(id, "@localhost>") {
		t.Errorf("id without a domain: %s", id)
	}
}

func TestParseAddress(t *testing.T) {
	a, err := ParseAddress("Blög <a@b.org>")
	if err != nil || a.Name != "Blög" || a.Address != "a@b.org" {
		t.Errorf("%v %v", a, err)
	}
	for _, bad := range []string{"", "a@b.org\r\n", "<>", "a@", "=?utf-8?q?a=0Db?= <a@b.org>"} {
		if _, err := ParseAddress(bad); herald.ErrorCode(err) != herald.EINVALID {
			t.Errorf("ParseAddress(%q) = %v", bad, err)
		}
	}
}

// FuzzCompose checks that no input gets a header field of its own into the
// message: it is refused, or it parses back to exactly our fields.
func FuzzCompose(f *testing.F) {
	f.Add("Subject", "Ann", "v", "reader@example.com")
	f.Add("Hi\r\nBcc: x@y.z", "Ann\nX: y", "a\rb", "a@b.org")
	f.Add("=?utf-8?q?=0D=0ABcc:_x@y.z?=", "Zoë \"Q\" <x>", "<https://x/?a=b>", "\"a b\"@example.org")
	f.Fuzz(func(t *testing.T, subject, name, value, to string) {
		e := sampleEmail()
		e.Subject, e.ToName, e.To = subject, name, to
		e.Headers = map[string]string{"List-Id": value}
		m, err := Compose(e)
		if err != nil {
			if herald.ErrorCode(err) != herald.EINVALID {
				t.Fatalf("error without EINVALID: %v", err)
			}
			return
		}
		msg, err := mail.ReadMessage(bytes.NewReader(m.Raw))
		if err != nil {
			t.Fatalf("composed message does not parse: %v\n%q", err, m.Raw)
		}
		want := map[string]bool{"Date": true, "From": true, "To": true, "Subject": true, "Message-Id": true,
			"Mime-Version": true, "List-Id": true, "Content-Type": true}
		for k, v := range msg.Header {
			if !want[k] || len(v) != 1 {
				t.Fatalf("unexpected header %s: %q\n%q", k, v, m.Raw)
			}
		}
		if len(msg.Header) != len(want) {
			t.Fatalf("headers %v", msg.Header)
		}
		addr, err := mail.ParseAddress(msg.Header.Get("To"))
		if err != nil || addr.Address != m.To {
			t.Fatalf("To %q parses to %v, %v; envelope %q", msg.Header.Get("To"), addr, err, m.To)
		}
	})
}

// TestComposeReplyTo: mail.reply_to becomes a Reply-To field, encoded
// like From; one that is no address, or carries a line break, is refused.
func TestComposeReplyTo(t *testing.T) {
	e := sampleEmail()
	e.ReplyTo = "Zoë Editor <editor@blog.example.org>"
	m, err := Compose(e)
	if err != nil {
		t.Fatal(err)
	}
	p := parse(t, m.Raw)
	got, err := p.msg.Header.AddressList("Reply-To")
	if err != nil || len(got) != 1 || got[0].Address != "editor@blog.example.org" || got[0].Name != "Zoë Editor" {
		t.Fatalf("Reply-To = %v, %v", got, err)
	}
	for _, bad := range []string{"not an address", "a@b.example\r\nBcc: x@y.example"} {
		e.ReplyTo = bad
		if _, err := Compose(e); herald.ErrorCode(err) != herald.EINVALID {
			t.Errorf("ReplyTo %q: err = %v, want EINVALID", bad, err)
		}
	}
}
