package subscription

import (
	"context"
	"strings"
	"testing"

	"github.com/herald-dev/herald"
	"github.com/herald-dev/herald/internal/testmail"
	"github.com/herald-dev/herald/templates"
)

// The confirmation email comes from a template rendered once per
// frequency with the address and link as slots; it must read exactly as
// the email rendered for the reader would, escapes and all.
func TestConfirmationEmailMatchesADirectRender(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, nil)
	for i, email := range []string{"reader@example.org", "o'brien+news&more@example.org", "zoë@exämple.org"} {
		freq := herald.Frequencies[i%len(herald.Frequencies)]
		sub, err := f.svc.Subscribe(ctx, herald.SubscribeRequest{Email: email, Frequency: string(freq)})
		if err != nil {
			t.Fatalf("%s: %v", email, err)
		}
		var msg *herald.OutboxMessage
		for _, m := range f.outbox(t) {
			if m.To == sub.Email {
				msg = m
			}
		}
		if msg == nil {
			t.Fatalf("%s: no confirmation queued", email)
		}
		// (A non-ASCII address goes into To as it is, for SMTPUTF8 relays,
		// as Compose writes it: Lint holds headers to ASCII.)
		if errs := testmail.Lint(msg.Raw, testmail.LintOptions{FromAddress: "digest@example.org", Subject: "Confirm your subscription to Test Blog"}); len(errs) > 0 && !strings.ContainsFunc(email, func(r rune) bool { return r > 127 }) {
			t.Errorf("%s: %v", email, errs)
		}
		got := testmail.MustParse(t, msg.Raw)
		confirmURL := got.Link("/confirm?token=")
		if confirmURL == "" {
			t.Fatalf("%s: no confirm link", email)
		}
		cur, err := f.db.SubscriberByEmail(ctx, sub.Email)
		if err != nil {
			t.Fatal(err)
		}
		if want := f.svc.ConfirmURL(cur, f.clock.Now()); confirmURL != want {
			t.Errorf("%s: link %q, want %q", email, confirmURL, want)
		}
		out, err := f.svc.tpl.Email("", "confirm", &templates.ConfirmEmail{
			Address: sub.Email, Frequency: string(freq), ConfirmURL: confirmURL, TTL: f.svc.opt.ConfirmTTL,
		})
		if err != nil {
			t.Fatal(err)
		}
		html, text := out.HTML, out.Text
		crlf := func(s string) string { return strings.ReplaceAll(strings.ReplaceAll(s, "\r\n", "\n"), "\n", "\r\n") }
		if crlf(got.Text) != crlf(text) {
			t.Errorf("%s: text part\n%q\nwant\n%q", email, got.Text, text)
		}
		if crlf(got.HTML) != crlf(html) {
			t.Errorf("%s: HTML part\n%q\nwant\n%q", email, got.HTML, html)
		}
		if !strings.Contains(got.Text, sub.Email) {
			t.Errorf("%s: the address is not in the text", email)
		}
	}
}
