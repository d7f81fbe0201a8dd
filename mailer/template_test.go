package mailer

import (
	xhtml "golang.org/x/net/html"

	"bytes"
	"mime"
	"net/mail"
	"strings"
	"testing"
	"time"

	"github.com/herald-dev/herald"
	"github.com/herald-dev/herald/internal/testmail"
)

const (
	slotUnsub = "HERALDSLOTUNSUB"
	slotPrefs = "HERALDSLOTPREFS"
)

// templateEmail is sampleEmail with the reader's links as slots.
func templateEmail() *Email {
	e := sampleEmail()
	e.Text = "Hello,\n\nTwo new posts:\n- First post\n- Second post\n\nUnsubscribe: " + slotUnsub + "\nPreferences: " + slotPrefs + "\n"
	e.HTML = "<p>Hello,</p>\n<ul><li><a href=\"https://blog.example.org/1\">First post</a></li><li>Second = post</li></ul>\n" +
		"<p style=\"color: #666; font-size: 12px\"><a href=\"" + slotUnsub + "\">Unsubscribe</a> · <a href=\"" + slotPrefs + "\">Preferences</a></p>\n"
	e.Headers["List-Unsubscribe"] = "<" + slotUnsub + ">"
	return e
}

// fillEmail is what Compose gets for the same recipient.
func fillEmail(e *Email, r *Recipient) *Email {
	out := *e
	out.To, out.ToName, out.MessageID, out.Date = r.To, r.ToName, r.MessageID, r.Date
	text := strings.NewReplacer(slotUnsub, r.Values[0], slotPrefs, r.Values[1])
	esc := strings.NewReplacer(slotUnsub, htmlText(r.Values[0]), slotPrefs, htmlText(r.Values[1]))
	out.Text, out.HTML = text.Replace(e.Text), esc.Replace(e.HTML)
	out.Headers = map[string]string{}
	for k, v := range e.Headers {
		out.Headers[k] = text.Replace(v)
	}
	return &out
}

// htmlText is v as golang.org/x/net/html writes it in text (every HTML
// email passes through its renderer when its CSS is inlined).
func htmlText(v string) string {
	var b strings.Builder
	if err := xhtml.Render(&b, &xhtml.Node{Type: xhtml.TextNode, Data: v}); err != nil {
		panic(err)
	}
	return b.String()
}

// sameMessage checks that two messages read the same to a mail client:
// every header field decoded, and both parts.
func sameMessage(t *testing.T, got, want []byte) {
	t.Helper()
	g, w := parse(t, got), parse(t, want)
	if g.text != w.text {
		t.Errorf("text part differs:\n got %q\nwant %q", g.text, w.text)
	}
	if g.html != w.html {
		t.Errorf("html part differs:\n got %q\nwant %q", g.html, w.html)
	}
	if g.parts != w.parts {
		t.Errorf("%d parts, want %d", g.parts, w.parts)
	}
	gh, wh := fieldNames(got), fieldNames(want)
	if strings.Join(gh, ",") != strings.Join(wh, ",") {
		t.Errorf("fields %v, want %v", gh, wh)
	}
	for _, k := range wh {
		if k == "Content-Type" {
			continue // the boundary is random
		}
		if a, b := decodedField(g.msg.Header, k), decodedField(w.msg.Header, k); a != b {
			t.Errorf("%s = %q, want %q", k, a, b)
		}
	}
	if errs := testmail.Lint(got, testmail.LintOptions{FromAddress: "digest@blog.example.org"}); len(errs) > 0 {
		t.Errorf("lint: %v\n%s", errs, got)
	}
}

func decodedField(h mail.Header, k string) string {
	v, err := new(mime.WordDecoder).DecodeHeader(h.Get(k))
	if err != nil {
		return "undecodable: " + h.Get(k)
	}
	return v
}

// fieldNames lists the header's field names in order.
func fieldNames(raw []byte) []string {
	head, _, _ := bytes.Cut(raw, []byte("\r\n\r\n"))
	var names []string
	for _, l := range strings.Split(string(head), "\r\n") {
		if l == "" || l[0] == ' ' || l[0] == '\t' {
			continue
		}
		name, _, _ := strings.Cut(l, ":")
		names = append(names, name)
	}
	return names
}

// A message made by filling a template's slots reads exactly like one
// composed with the values in place: the slots are cut out of the body
// jordan-wright/email encoded, wherever its line breaks fell.
func TestTemplateReadsLikeCompose(t *testing.T) {
	long := "https://blog.example.org/unsubscribe?token=" + strings.Repeat("AbC-_9", 30)
	cases := []struct {
		name string
		edit func(e *Email)
		r    Recipient
	}{
		{"plain", nil, Recipient{To: "reader@example.com", ToName: "Ann Reader",
			Values: []string{"https://blog.example.org/unsubscribe?token=abc", "https://blog.example.org/preferences?token=def"}}},
		{"no name, escapes", nil, Recipient{To: "r@example.com",
			Values: []string{"https://b.example.org/u?token=a&x=\"<1>\"", "https://b.example.org/p?a=1&b=2 '3'+4"}}},
		{"long values, non-ASCII", func(e *Email) {
			e.From = "Blög Ünïcode <digest@blog.example.org>"
			e.Subject = strings.Repeat("Ça va très bien — 日本語のタイトル ", 6)
			e.Text = "Grüße 😀 " + slotUnsub + slotPrefs + " trailing space " + "\n" + strings.Repeat("x", 200) + slotUnsub
			e.HTML = slotPrefs + "<p>" + strings.Repeat("é", 100) + "</p>" + slotUnsub + "\t"
		}, Recipient{To: "reader@example.com", ToName: "Zoë, the \"Reader\"", Values: []string{long, long + "é"}}},
		{"empty values", nil, Recipient{To: "reader@example.com", Values: []string{"", ""}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := templateEmail()
			if tc.edit != nil {
				tc.edit(e)
			}
			tpl, err := NewTemplate(e, slotUnsub, slotPrefs)
			if err != nil {
				t.Fatal(err)
			}
			r := tc.r
			r.MessageID = NewMessageID(e.From, "run", "7", "sub", r.To)
			r.Date = time.Date(2025, 3, 4, 7, 0, 0, 0, time.UTC)
			got, err := tpl.Compose(&r)
			if err != nil {
				t.Fatal(err)
			}
			want, err := Compose(fillEmail(e, &r))
			if err != nil {
				t.Fatal(err)
			}
			if got.From != want.From || got.To != want.To || got.MessageID != want.MessageID {
				t.Errorf("envelope %q %q %q, want %q %q %q", got.From, got.To, got.MessageID, want.From, want.To, want.MessageID)
			}
			sameMessage(t, got.Raw, want.Raw)
		})
	}
}

// Without slots a template writes the very bytes Compose does, save the
// random boundary: the body is jordan-wright/email's, field for field.
func TestTemplateRefuses(t *testing.T) {
	tpl, err := NewTemplate(templateEmail(), slotUnsub, slotPrefs)
	if err != nil {
		t.Fatal(err)
	}
	ok := []string{"https://x.example/u", "https://x.example/p"}
	for _, r := range []Recipient{
		{To: "reader@example.com", Values: []string{"https://x.example/u\r\nBcc: victim@example.com", ok[1]}},
		{To: "reader@example.com", Values: []string{ok[0], "a\nb"}},
		{To: "reader@example.com", Values: []string{ok[0], "a\x00b"}},
		{To: "reader@example.com", Values: ok[:1]},
		{To: "reader@example.com", ToName: "Ann\r\nBcc: x@example.com", Values: ok},
		{To: "Ann <reader@example.com>", Values: ok},
		{To: "not an address", Values: ok},
		{To: "reader@example.com", MessageID: "<no at sign>", Values: ok},
	} {
		if m, err := tpl.Compose(&r); err == nil {
			t.Errorf("%+v: composed\n%s", r, m.Raw)
		}
	}
	for _, edit := range []func(e *Email){
		func(e *Email) { e.Subject = "a\r\nBcc: x@example.com" },
		func(e *Email) { e.Subject = " " },
		func(e *Email) { e.From = "not an address" },
		func(e *Email) { e.Headers["Bcc"] = "x@example.com" },
		func(e *Email) { e.Headers["X-Bad"] = "a\nb" + slotUnsub },
		func(e *Email) { e.HTML, e.Text = "", "" },
	} {
		e := templateEmail()
		edit(e)
		if _, err := NewTemplate(e, slotUnsub, slotPrefs); err == nil {
			t.Errorf("NewTemplate took %+v", e)
		}
	}
	if _, err := NewTemplate(templateEmail(), "short"); err == nil {
		t.Error("a short slot name was taken")
	}
	if _, err := NewTemplate(templateEmail(), "HERALD-SLOT-1"); err == nil {
		t.Error("a slot name with punctuation was taken")
	}
	_, err = tpl.Compose(&Recipient{To: "reader@example.com", Values: []string{"a\rb", ok[1]}})
	if herald.ErrorCode(err) != herald.EINVALID {
		t.Errorf("a CR in a value: %v, want EINVALID", err)
	}
}

// Many recipients share one template: each message is its own bytes.
func TestTemplateMessagesDoNotShareBytes(t *testing.T) {
	tpl, err := NewTemplate(templateEmail(), slotUnsub, slotPrefs)
	if err != nil {
		t.Fatal(err)
	}
	a, err := tpl.Compose(&Recipient{To: "a@example.com", Values: []string{"https://x.example/u/a", "https://x.example/p/a"}})
	if err != nil {
		t.Fatal(err)
	}
	before := bytes.Clone(a.Raw)
	if _, err := tpl.Compose(&Recipient{To: "b@example.com", Values: []string{"https://x.example/u/b", "https://x.example/p/b"}}); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Raw, before) {
		t.Error("composing b changed a's message")
	}
	if !bytes.Contains(a.Raw, []byte("https://x.example/u/a")) || bytes.Contains(a.Raw, []byte("u/b")) {
		t.Errorf("a's message:\n%s", a.Raw)
	}
}

// plainAddress is a shortcut past net/mail: whatever it takes, the parser
// takes too, and gives back unchanged.
func TestPlainAddressAgreesWithTheParser(t *testing.T) {
	for _, s := range []string{
		"reader@example.com", "a.b-c_d+e@mail.example.co.uk", "X@Y", "1@2.3",
		".a@example.com", "a.@example.com", "a..b@example.com", "a@.example.com", "a@example..com", "a@example.com.",
		"@example.com", "a@", "a@@b", "a b@example.com", "a@b c", "\"a\"@example.com", "a@[127.0.0.1]",
		"ü@example.com", "a@exämple.com", "a@b\r\n", "<a@b>", "A <a@b>", "a(b)@c", "a@b_c", "a+b@c-d",
	} {
		if !plainAddress(s) {
			continue
		}
		a, err := mail.ParseAddress(s)
		if err != nil || a.Address != s || a.Name != "" {
			t.Errorf("plainAddress(%q) but net/mail gives %+v, %v", s, a, err)
		}
	}
}

func FuzzPlainAddress(f *testing.F) {
	f.Add("reader@example.com")
	f.Add("a.b+c@d-e.f")
	f.Fuzz(func(t *testing.T, s string) {
		if !plainAddress(s) {
			return
		}
		a, err := mail.ParseAddress(s)
		if err != nil || a.Address != s || a.Name != "" {
			t.Errorf("plainAddress(%q) but net/mail gives %+v, %v", s, a, err)
		}
	})
}

// The encoder breaks lines at 76 characters, so a placeholder can be cut
// in two by a soft line break anywhere in it: every cut is found.
func TestTemplateSlotAcrossALineBreak(t *testing.T) {
	for n := 55; n <= 80; n++ {
		e := templateEmail()
		pad := strings.Repeat("a", n)
		e.Text = pad + slotUnsub + "é" + slotPrefs + "\n" + pad + "=" + slotUnsub
		e.HTML = "<p>" + pad + slotPrefs + slotUnsub + "</p>"
		tpl, err := NewTemplate(e, slotUnsub, slotPrefs)
		if err != nil {
			t.Fatal(err)
		}
		vals := []string{"https://x.example/u?a=1&b=<2>", "https://x.example/p/" + strings.Repeat("z", 70)}
		m, err := tpl.Compose(&Recipient{To: "r@example.com", Values: vals})
		if err != nil {
			t.Fatal(err)
		}
		p := parse(t, m.Raw)
		wantText := pad + vals[0] + "é" + vals[1] + "\n" + pad + "=" + vals[0]
		wantHTML := "<p>" + pad + htmlText(vals[1]) + htmlText(vals[0]) + "</p>"
		if p.text != wantText || p.html != wantHTML {
			t.Fatalf("pad %d:\ntext %q\nwant %q\nhtml %q\nwant %q", n, p.text, wantText, p.html, wantHTML)
		}
		if bytes.Contains(m.Raw, []byte("HERALDSLOT")) {
			t.Fatalf("pad %d: a placeholder was left:\n%s", n, m.Raw)
		}
		checkWire(t, m.Raw)
	}
}
