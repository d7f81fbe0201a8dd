package testmail_test

import (
	"bytes"
	"context"
	"fmt"
	"net/mail"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-msgauth/dkim"

	"github.com/herald-dev/herald"
	"github.com/herald-dev/herald/internal/testenv"
	"github.com/herald-dev/herald/internal/testmail"
	"github.com/herald-dev/herald/mailer"
)

const (
	siteName = "Blög Ünïcode — 日本語のノート"
	fromAddr = testenv.FromAddr
)

type stack struct {
	*testenv.App
	signer *mailer.Signer
}

// newStack is a whole herald (internal/testenv) whose every message is
// DKIM-signed, as serve signs them with [dkim] set.
func newStack(t *testing.T) *stack {
	t.Helper()
	key, _, err := mailer.GenerateKey("ed25519")
	if err != nil {
		t.Fatal(err)
	}
	signer, err := mailer.NewSigner("example.org", "herald", key)
	if err != nil {
		t.Fatal(err)
	}
	app := testenv.New(t, testenv.Options{SiteName: siteName, BaseURL: "https://news.example.org", Signer: signer})
	return &stack{App: app, signer: signer}
}

func (s *stack) run(t *testing.T, f herald.Frequency) *herald.Run {
	t.Helper()
	r, err := s.Digest.StartRun(context.Background(), f, herald.TriggerAPI, false)
	if err != nil {
		t.Fatal(err)
	}
	s.Digest.Wait()
	return s.WaitRun(r.ID)
}

// TestEveryEmailKindIsWellFormed produces every kind of email herald
// sends, with non-ASCII everywhere a person can put it, and checks each
// with a strict parser.
func TestEveryEmailKindIsWellFormed(t *testing.T) {
	ctx := context.Background()
	s := newStack(t)
	longTitle := "Ünïcode everywhere: a rather long post title, to make sure that the subject line is folded and encoded properly — 日本語も"
	// Confirmation, then welcome, for a reader with a name to encode.
	if _, err := s.Subs.Subscribe(ctx, herald.SubscribeRequest{Email: "zoe@example.com", Name: "Zoë Ñandú, Jr. \"Z\"", Frequency: "daily"}); err != nil {
		t.Fatal(err)
	}
	confirm := s.SMTP.WaitFor(t, 1, 10*time.Second)[0]
	link := testmail.MustParse(t, confirm.Data).Link("/confirm?token=")
	tok := link[strings.Index(link, "token=")+len("token="):]
	if _, err := s.Subs.Confirm(ctx, tok); err != nil {
		t.Fatal(err)
	}
	s.SMTP.WaitFor(t, 2, 10*time.Second)
	// The link to the preferences, which a reader who lost it asks for.
	if err := s.Subs.SendLink(ctx, "zoe@example.com"); err != nil {
		t.Fatal(err)
	}
	s.SMTP.WaitFor(t, 3, 10*time.Second)
	if _, err := s.Subs.Subscribe(ctx, herald.SubscribeRequest{Email: "ida@example.com", Name: "Ïda", Frequency: "instant", Confirmed: true}); err != nil {
		t.Fatal(err)
	}
	for i, title := range []string{"Première note", "Grüße aus Köln", longTitle} {
		p := &herald.Post{GUID: fmt.Sprint("g", i), URL: fmt.Sprintf("https://blog.example.org/p/%d", i), Title: title,
			Author: "Åsa Öberg", Summary: "<p>Ça marche &amp; <em>ça</em> passe.</p>", PublishedAt: time.Now()}
		if _, err := s.DB.UpsertPost(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	if r := s.run(t, herald.Daily); r.Sent != 1 {
		t.Fatalf("daily run %+v", r)
	}
	if r := s.run(t, herald.Instant); r.Sent != 3 {
		t.Fatalf("instant run %+v", r)
	}
	if err := s.Digest.SendTest(ctx, "admin@example.com", nil); err != nil {
		t.Fatal(err)
	}
	msgs := s.SMTP.WaitFor(t, 8, 10*time.Second)

	want := map[string]string{ // subject → kind
		"Confirm your subscription to " + siteName:             "confirm",
		"Welcome to " + siteName:                               "welcome",
		"Your link to manage your subscription to " + siteName: "link",
		siteName + ": 3 new posts":                             "digest",
		"Première note":                                        "instant",
		"Grüße aus Köln":                                       "instant",
		longTitle:                                              "instant",
		"[Test] " + siteName + ": 3 new posts":                 "test",
	}
	seen := map[string]bool{}
	for _, m := range msgs {
		p := testmail.MustParse(t, m.Data)
		kind, ok := want[p.Subject]
		if !ok {
			t.Errorf("unexpected email %q", p.Subject)
			continue
		}
		seen[kind] = true
		t.Run(kind+"/"+p.Subject, func(t *testing.T) {
			for _, err := range testmail.Lint(m.Data, testmail.LintOptions{FromAddress: fromAddr, Subject: p.Subject}) {
				t.Error(err)
			}
			raw := p.Header.Get("Subject")
			if !strings.Contains(strings.ToLower(raw), "=?utf-8?") {
				t.Errorf("non-ASCII subject not RFC 2047-encoded: %q", raw)
			}
			from, _ := mail.ParseAddress(p.Header.Get("From"))
			if from == nil || from.Name != siteName {
				t.Errorf("From %q does not decode to the site name", p.Header.Get("From"))
			}
			vs, err := dkim.VerifyWithOptions(bytes.NewReader(m.Data), &dkim.VerifyOptions{
				LookupTXT: func(string) ([]string, error) { return []string{s.signer.DNSRecord()}, nil },
			})
			if err != nil || len(vs) != 1 || vs[0].Err != nil {
				t.Errorf("DKIM: %v %+v", err, vs)
			}
			if kind == "digest" || kind == "instant" {
				to, err := mail.ParseAddress(p.Header.Get("To"))
				if err != nil || to.Name == "" {
					t.Errorf("To %q: %v", p.Header.Get("To"), err)
				}
				if kind == "digest" && to.Name != "Zoë Ñandú, Jr. \"Z\"" {
					t.Errorf("To name %q", to.Name)
				}
				if p.Header.Get("List-Unsubscribe-Post") != "List-Unsubscribe=One-Click" || !strings.HasPrefix(p.Header.Get("List-Unsubscribe"), "<https://") {
					t.Errorf("one-click headers: %v", p.Header)
				}
			}
			if kind == "confirm" && strings.Contains(p.Text+p.HTML, "Zoë") {
				t.Error("the confirmation echoes the visitor's name")
			}
		})
	}
	for _, k := range []string{"confirm", "welcome", "link", "digest", "instant", "test"} {
		if !seen[k] {
			t.Errorf("no %s email was checked", k)
		}
	}
}

// No header carries a CR or LF from user input: the subscription rules
// refuse it, the composer refuses it again, and a reader whose name got
// into the database with one anyway gets no mail rather than a forged
// header.
func TestNoHeaderInjection(t *testing.T) {
	ctx := context.Background()
	s := newStack(t)
	for _, name := range []string{"Eve\r\nBcc: victim@example.net", "Eve\nBcc: victim@example.net", "Eve\rX: y"} {
		_, err := s.Subs.Subscribe(ctx, herald.SubscribeRequest{Email: "eve@example.com", Name: name})
		if herald.ErrorCode(err) != herald.EINVALID {
			t.Errorf("name %q: %v", name, err)
		}
	}
	if _, err := s.DB.SubscriberByEmail(ctx, "eve@example.com"); herald.ErrorCode(err) != herald.ENOTFOUND {
		t.Errorf("a name with a line break was stored: %v", err)
	}
	for _, addr := range []string{"eve@example.com\r\nBcc: victim@example.net", "eve@example.com\n", "\reve@example.com"} {
		if _, err := s.Subs.Subscribe(ctx, herald.SubscribeRequest{Email: addr}); herald.ErrorCode(err) != herald.EINVALID {
			t.Errorf("address %q: %v", addr, err)
		}
	}

	base := func() *mailer.Email {
		return &mailer.Email{From: "Blog <news@example.org>", To: "r@example.com", Subject: "Hi", Text: "t", HTML: "<p>t</p>"}
	}
	for name, mod := range map[string]func(*mailer.Email){
		"to name":      func(e *mailer.Email) { e.ToName = "Eve\r\nBcc: victim@example.net" },
		"to":           func(e *mailer.Email) { e.To = "r@example.com\r\nBcc: victim@example.net" },
		"subject":      func(e *mailer.Email) { e.Subject = "Hi\r\nBcc: victim@example.net" },
		"subject lf":   func(e *mailer.Email) { e.Subject = "Hi\nBcc: victim@example.net" },
		"from":         func(e *mailer.Email) { e.From = "Blog\r\nBcc: victim@example.net <news@example.org>" },
		"header value": func(e *mailer.Email) { e.Headers = map[string]string{"List-Id": "x\r\nBcc: victim@example.net"} },
		"header name":  func(e *mailer.Email) { e.Headers = map[string]string{"X-A\r\nBcc": "v"} },
		"bcc header":   func(e *mailer.Email) { e.Headers = map[string]string{"Bcc": "victim@example.net"} },
		"message-id":   func(e *mailer.Email) { e.MessageID = "<a@b>\r\nBcc: victim@example.net" },
		"nul":          func(e *mailer.Email) { e.Subject = "Hi\x00there" },
	} {
		e := base()
		mod(e)
		if _, err := mailer.Compose(e); herald.ErrorCode(err) != herald.EINVALID {
			t.Errorf("%s: Compose answered %v", name, err)
		}
	}

	// A record with a line break in its name (an old database, a bug
	// elsewhere): the digest fails that reader and mails the others.
	_, err := s.DB.MutateSubscriber(ctx, "eve@example.com", func(cur *herald.Subscriber) (*herald.Subscriber, []*herald.OutboxMessage, error) {
		n := *cur
		n.Name, n.Status, n.Frequency = "Eve\r\nBcc: victim@example.net", herald.StatusConfirmed, herald.Daily
		return &n, nil, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Subs.Subscribe(ctx, herald.SubscribeRequest{Email: "ok@example.com", Frequency: "daily", Confirmed: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.DB.UpsertPost(ctx, &herald.Post{GUID: "g", URL: "https://blog.example.org/p", Title: "A post", PublishedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	r := s.run(t, herald.Daily)
	if r.Sent != 1 || r.Failed != 1 {
		t.Fatalf("run %+v", r)
	}
	// A post title with a line break (not from a feed, which collapses
	// them) becomes a one-line subject.
	if _, err := s.Subs.Subscribe(ctx, herald.SubscribeRequest{Email: "ida@example.com", Frequency: "instant", Confirmed: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.DB.UpsertPost(ctx, &herald.Post{GUID: "g2", URL: "https://blog.example.org/p2", Title: "Two\r\nBcc: victim@example.net", PublishedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if r := s.run(t, herald.Instant); r.Sent != 1 {
		t.Fatalf("instant run %+v", r)
	}
	msgs := s.SMTP.WaitFor(t, 2, 10*time.Second)
	if p := testmail.MustParse(t, msgs[1].Data); p.Subject != "Two Bcc: victim@example.net" || p.Header.Get("Bcc") != "" {
		t.Errorf("subject %q, Bcc %q", p.Subject, p.Header.Get("Bcc"))
	}
	for _, m := range msgs {
		if len(testmail.Lint(m.Data, testmail.LintOptions{FromAddress: fromAddr})) != 0 || m.To[0] == "eve@example.com" {
			t.Errorf("mail to %v: %v", m.To, testmail.Lint(m.Data, testmail.LintOptions{FromAddress: fromAddr}))
		}
		if _, ok := mustHeader(t, m.Data)["Bcc"]; ok {
			t.Errorf("a Bcc header reached the wire:\n%s", m.Data)
		}
	}
}

func mustHeader(t *testing.T, raw []byte) mail.Header {
	t.Helper()
	m, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	return m.Header
}

// Lint itself catches what it promises to.
func TestLintCatchesBadMessages(t *testing.T) {
	good, err := mailer.Compose(&mailer.Email{From: "Blog <news@example.org>", To: "r@example.com", Subject: "Hello", Text: "hi", HTML: "<p>hi</p>"})
	if err != nil {
		t.Fatal(err)
	}
	opt := testmail.LintOptions{FromAddress: "news@example.org", Subject: "Hello"}
	if errs := testmail.Lint(good.Raw, opt); len(errs) != 0 {
		t.Fatalf("a good message fails: %v", errs)
	}
	for name, raw := range map[string][]byte{
		"two dates":     append([]byte("Date: Mon, 02 Jan 2006 15:04:05 +0000\r\n"), good.Raw...),
		"bare lf":       bytes.Replace(good.Raw, []byte("\r\nSubject"), []byte("\nSubject"), 1),
		"8-bit header":  bytes.Replace(good.Raw, []byte("Subject: Hello"), []byte("Subject: Héllo"), 1),
		"long line":     bytes.Replace(good.Raw, []byte("Subject: Hello"), []byte("Subject: Hello"+strings.Repeat(" word", 20)), 1),
		"huge line":     bytes.Replace(good.Raw, []byte("Subject: Hello"), []byte("Subject: "+strings.Repeat("x", 1000)), 1),
		"foreign id":    bytes.Replace(good.Raw, []byte("@example.org>"), []byte("@elsewhere.net>"), 1),
		"markup in txt": bytes.Replace(good.Raw, []byte("\r\n\r\nhi"), []byte("\r\n\r\n<b>hi</b>"), 1),
	} {
		if errs := testmail.Lint(raw, opt); len(errs) == 0 {
			t.Errorf("%s passes", name)
		}
	}
}
