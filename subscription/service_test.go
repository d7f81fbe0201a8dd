package subscription

import (
	"context"
	"errors"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/herald-dev/herald"
	"github.com/herald-dev/herald/internal/testmail"
	"github.com/herald-dev/herald/store"
	"github.com/herald-dev/herald/templates"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

type fixture struct {
	db    *store.DB
	svc   *Service
	clock *clock
}

func newFixture(t *testing.T, mod func(*Options)) *fixture {
	t.Helper()
	ctx := context.Background()
	c := &clock{t: time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)}
	db, err := store.Open(ctx, filepath.Join(t.TempDir(), "herald.db"), store.Options{Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	tpl, err := templates.Load(templates.Options{Site: templates.Site{Name: "Test Blog", URL: "https://blog.example.org"}})
	if err != nil {
		t.Fatal(err)
	}
	secret, err := LoadSecret(ctx, db, "")
	if err != nil {
		t.Fatal(err)
	}
	tokens, _ := NewTokens(secret, c.Now)
	opt := Options{
		SiteName: "Test Blog", SiteURL: "https://blog.example.org", BaseURL: "https://news.example.org",
		From: "Test Blog <digest@example.org>", ConfirmTTL: 48 * time.Hour,
		PerAddressN: 3, PerAddressWindow: 24 * time.Hour, Welcome: true, Now: c.Now,
	}
	if mod != nil {
		mod(&opt)
	}
	svc, err := New(db, tokens, tpl, opt)
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{db: db, svc: svc, clock: c}
}

func (f *fixture) outbox(t *testing.T) []*herald.OutboxMessage {
	t.Helper()
	msgs, err := f.db.DueMessages(context.Background(), f.clock.Now().Add(time.Hour), 1000)
	if err != nil {
		t.Fatal(err)
	}
	return msgs
}

func confirmToken(t *testing.T, m *herald.OutboxMessage) string {
	t.Helper()
	p := testmail.MustParse(t, m.Raw)
	link := p.Link("/confirm?token=")
	if link == "" {
		t.Fatalf("no confirm link in:\n%s", p.Text)
	}
	u, err := url.Parse(link)
	if err != nil {
		t.Fatal(err)
	}
	return u.Query().Get("token")
}

func TestSubscribeConfirmUnsubscribe(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, nil)
	sub, err := f.svc.Subscribe(ctx, herald.SubscribeRequest{Email: " Reader@Example.ORG ", Name: "Mallory <script>", Frequency: "weekly"})
	if err != nil {
		t.Fatal(err)
	}
	if sub.Status != herald.StatusPending || sub.Email != "Reader@example.org" || sub.Frequency != herald.Weekly {
		t.Fatalf("subscriber %+v", sub)
	}
	msgs := f.outbox(t)
	if len(msgs) != 1 || msgs[0].Kind != herald.KindConfirm || msgs[0].To != "Reader@example.org" {
		t.Fatalf("outbox %+v", msgs)
	}
	p := testmail.MustParse(t, msgs[0].Raw)
	if strings.Contains(p.Text+p.HTML, "Mallory") {
		t.Error("the visitor's name was echoed in the confirmation email")
	}
	if !strings.Contains(p.Text, "Test Blog") || !strings.Contains(p.Text, "ignore") {
		t.Errorf("confirmation text lacks the site or the reassurance:\n%s", p.Text)
	}
	tok := confirmToken(t, msgs[0])
	if err := f.svc.CheckConfirmToken(tok); err != nil {
		t.Fatal(err)
	}
	got, err := f.svc.Confirm(ctx, tok)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != herald.StatusConfirmed || got.ConfirmedAt == nil {
		t.Fatalf("after confirm: %+v", got)
	}
	// Idempotent, and the welcome is queued once.
	if _, err := f.svc.Confirm(ctx, tok); err != nil {
		t.Fatalf("second confirm: %v", err)
	}
	var welcomes int
	for _, m := range f.outbox(t) {
		if m.Kind == herald.KindWelcome {
			welcomes++
			wp := testmail.MustParse(t, m.Raw)
			if !strings.HasPrefix(wp.Header.Get("List-Unsubscribe"), "<https://news.example.org/unsubscribe?token=") {
				t.Errorf("welcome List-Unsubscribe %q", wp.Header.Get("List-Unsubscribe"))
			}
		}
	}
	if welcomes != 1 {
		t.Fatalf("%d welcome emails, want 1", welcomes)
	}
	// Already subscribed: same answer, nothing changed, and the reader is
	// sent the link to their preferences (they may have lost it).
	before := len(f.outbox(t))
	again, err := f.svc.Subscribe(ctx, herald.SubscribeRequest{Email: "Reader@EXAMPLE.org", Frequency: "instant"})
	if err != nil || again.Status != herald.StatusConfirmed || again.Frequency != herald.Weekly || len(f.outbox(t)) != before+1 {
		t.Fatalf("re-subscribing a confirmed reader: %+v %v (outbox %d→%d)", again, err, before, len(f.outbox(t)))
	}
	if m := f.outbox(t)[before]; m.Kind != herald.KindLink || m.SubscriberID != sub.ID {
		t.Fatalf("re-subscribing queued %s", m.Kind)
	} else if p := testmail.MustParse(t, m.Raw); p.Link("/preferences?token=") == "" || !strings.Contains(p.Text, "subscribed already") {
		t.Fatalf("the link email lacks the preferences link:\n%s", p.Text)
	}

	// Preferences and unsubscribe.
	manage := f.svc.ManageToken(sub.ID)
	if s, changed, err := f.svc.SavePreferences(ctx, manage, herald.Preferences{Frequency: "instant"}); err != nil || s.Frequency != herald.Instant || !changed {
		t.Fatalf("set frequency: %+v %v %v", s, changed, err)
	}
	if _, changed, err := f.svc.SavePreferences(ctx, manage, herald.Preferences{Frequency: "instant"}); err != nil || changed {
		t.Fatalf("the same frequency again: changed %v, %v", changed, err)
	}
	if _, _, err := f.svc.SavePreferences(ctx, manage, herald.Preferences{Frequency: "hourly"}); herald.ErrorField(err) != "frequency" {
		t.Fatalf("bad frequency: %v", err)
	}
	if _, _, err := f.svc.SavePreferences(ctx, f.svc.UnsubscribeToken(sub.ID), herald.Preferences{Frequency: "daily"}); err == nil {
		t.Fatal("an unsubscribe token changed preferences")
	}
	if _, err := f.svc.Unsubscribe(ctx, manage); err == nil {
		t.Fatal("a preferences token worked as an unsubscribe token")
	}
	u, err := f.svc.Unsubscribe(ctx, f.svc.UnsubscribeToken(sub.ID))
	if err != nil || u.Status != herald.StatusUnsubscribed {
		t.Fatalf("unsubscribe: %+v %v", u, err)
	}
	if _, err := f.svc.Unsubscribe(ctx, f.svc.UnsubscribeToken(sub.ID)); err != nil {
		t.Fatalf("second unsubscribe: %v", err)
	}
	// The old confirm link does not undo the unsubscribe.
	if _, err := f.svc.Confirm(ctx, tok); err == nil {
		t.Fatal("an old confirm link re-subscribed an unsubscribed reader")
	}
	// Re-subscribing is a fresh opt-in with a new link; the old one stays dead.
	if _, err := f.svc.Subscribe(ctx, herald.SubscribeRequest{Email: "Reader@example.org"}); err != nil {
		t.Fatal(err)
	}
	s, _ := f.db.SubscriberByEmail(ctx, "Reader@example.org")
	if s.Status != herald.StatusPending {
		t.Fatalf("re-subscribe: status %s", s.Status)
	}
	if _, err := f.svc.Confirm(ctx, tok); err == nil {
		t.Fatal("the confirm link of the first sign-up confirmed the second")
	}
	var newest *herald.OutboxMessage
	for _, m := range f.outbox(t) {
		if m.Kind == herald.KindConfirm && m.SubscriberID == s.ID {
			newest = m
		}
	}
	if s2, err := f.svc.Confirm(ctx, confirmToken(t, newest)); err != nil || s2.Status != herald.StatusConfirmed {
		t.Fatalf("confirm of the fresh opt-in: %v", err)
	}
}

func TestConfirmLinkExpires(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, nil)
	if _, err := f.svc.Subscribe(ctx, herald.SubscribeRequest{Email: "late@example.org"}); err != nil {
		t.Fatal(err)
	}
	tok := confirmToken(t, f.outbox(t)[0])
	f.clock.Add(48*time.Hour + time.Second)
	if _, err := f.svc.Confirm(ctx, tok); err == nil || herald.ErrorCode(err) != herald.EINVALID {
		t.Fatalf("expired link: %v", err)
	}
	s, _ := f.db.SubscriberByEmail(ctx, "late@example.org")
	if s.Status != herald.StatusPending {
		t.Fatalf("expired link changed the status to %s", s.Status)
	}
}

func TestPerAddressLimit(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, nil)
	for i := 0; i < 10; i++ {
		if _, err := f.svc.Subscribe(ctx, herald.SubscribeRequest{Email: "victim@example.org"}); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(f.outbox(t)); n != 3 {
		t.Fatalf("%d confirmation emails to one address, want 3", n)
	}
	f.clock.Add(24*time.Hour + time.Minute)
	if err := f.svc.SendLink(ctx, "victim@example.org"); err != nil {
		t.Fatal(err)
	}
	if n := len(f.outbox(t)); n != 4 {
		t.Fatalf("after the window, resend queued %d in all, want 4", n)
	}
	// Resend to an unknown address sends nothing and says nothing.
	if err := f.svc.SendLink(ctx, "nobody@example.org"); err != nil {
		t.Fatal(err)
	}
	if n := len(f.outbox(t)); n != 4 {
		t.Fatalf("resend to an unknown address queued mail")
	}
}

// TestGlobalCap: an admin's sign-up (the API) past the cap is refused
// with when to try again, and stores nothing; a public one would wait
// instead (budget_test.go).
func TestGlobalCap(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, func(o *Options) { o.GlobalPerHour = 2 })
	for i, e := range []string{"a@example.org", "b@example.org"} {
		if _, err := f.svc.Subscribe(ctx, herald.SubscribeRequest{Email: e, Source: "api"}); err != nil {
			t.Fatalf("%d: %v", i, err)
		}
	}
	_, err := f.svc.Subscribe(ctx, herald.SubscribeRequest{Email: "c@example.org", Source: "api"})
	var he *herald.Error
	if !errors.As(err, &he) || he.Code != herald.ERATELIMIT {
		t.Fatalf("third sign-up: %v", err)
	}
	// Two an hour: the next is free within half an hour.
	if he.RetryAfter <= 0 || he.RetryAfter > 30*time.Minute {
		t.Fatalf("Retry-After %v", he.RetryAfter)
	}
	if _, err := f.db.SubscriberByEmail(ctx, "c@example.org"); herald.ErrorCode(err) != herald.ENOTFOUND {
		t.Fatal("a rate-limited sign-up was stored")
	}
	f.clock.Add(time.Hour)
	if _, err := f.svc.Subscribe(ctx, herald.SubscribeRequest{Email: "c@example.org", Source: "api"}); err != nil {
		t.Fatalf("after an hour: %v", err)
	}
}

func TestValidation(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, nil)
	for _, tc := range []struct {
		req   herald.SubscribeRequest
		field string
	}{
		{herald.SubscribeRequest{Email: "nope"}, "email"},
		{herald.SubscribeRequest{Email: strings.Repeat("a", 250) + "@b.org"}, "email"},
		{herald.SubscribeRequest{Email: "a@b.org\r\nBcc: c@d.org"}, "email"},
		{herald.SubscribeRequest{Email: "a@b.org", Name: "x\r\nBcc: c@d.org"}, "name"},
		{herald.SubscribeRequest{Email: "a@b.org", Name: strings.Repeat("n", 101)}, "name"},
		{herald.SubscribeRequest{Email: "a@b.org", Frequency: "hourly"}, "frequency"},
	} {
		_, err := f.svc.Subscribe(ctx, tc.req)
		if herald.ErrorCode(err) != herald.EINVALID || herald.ErrorField(err) != tc.field {
			t.Errorf("%+v: %v (field %q), want EINVALID on %s", tc.req, err, herald.ErrorField(err), tc.field)
		}
	}
	if n := len(f.outbox(t)); n != 0 {
		t.Fatalf("invalid input queued %d emails", n)
	}
	counts, _ := f.db.CountSubscribers(ctx)
	for st, m := range counts {
		for fr, n := range m {
			if n != 0 {
				t.Errorf("invalid input stored %d %s/%s subscribers", n, st, fr)
			}
		}
	}
}

func TestConfirmedImportNeverRevivesUnsubscribed(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, nil)
	s, err := f.svc.Subscribe(ctx, herald.SubscribeRequest{Email: "old@example.org", Confirmed: true, Source: "import"})
	if err != nil || s.Status != herald.StatusConfirmed {
		t.Fatalf("%+v %v", s, err)
	}
	if n := len(f.outbox(t)); n != 0 {
		t.Fatalf("a confirmed import sent %d emails", n)
	}
	if _, err := f.svc.UnsubscribeID(ctx, s.ID); err != nil {
		t.Fatal(err)
	}
	s, err = f.svc.Subscribe(ctx, herald.SubscribeRequest{Email: "old@example.org", Confirmed: true, Source: "import"})
	if err != nil || s.Status != herald.StatusUnsubscribed {
		t.Fatalf("import revived an unsubscribed reader: %+v %v", s, err)
	}
}

func TestSecretIsKept(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	db, err := store.Open(ctx, filepath.Join(dir, "h.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	a, _ := LoadSecret(ctx, db, "")
	db.Close()
	db, _ = store.Open(ctx, filepath.Join(dir, "h.db"), store.Options{})
	defer db.Close()
	b, _ := LoadSecret(ctx, db, "")
	if len(a) < 16 || string(a) != string(b) {
		t.Fatal("the generated secret changed across restarts: every link in sent mail would break")
	}
	c, _ := LoadSecret(ctx, db, "configured-secret-1234")
	if string(c) != "configured-secret-1234" {
		t.Fatal("configured secret ignored")
	}
}
