package subscription

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/herald-dev/herald"
	"github.com/herald-dev/herald/internal/testmail"
)

// links counts the link emails queued for id.
func (f *fixture) links(t *testing.T, id uint64) []*herald.OutboxMessage {
	t.Helper()
	var out []*herald.OutboxMessage
	for _, m := range f.outbox(t) {
		if m.Kind == herald.KindLink && m.SubscriberID == id {
			out = append(out, m)
		}
	}
	return out
}

func (f *fixture) reader(t *testing.T, email, name string, freq herald.Frequency) *herald.Subscriber {
	t.Helper()
	s, err := f.svc.Subscribe(context.Background(), herald.SubscribeRequest{Email: email, Name: name, Frequency: string(freq), Confirmed: true, Source: "import"})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// A reader who lost their links gets the preferences link by email,
// whatever their status, within the per-address limit; a pending one the
// confirmation; an unknown address nothing, and the answer never differs.
func TestSendLink(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, nil)
	ann := f.reader(t, "ann@example.org", "Ann", herald.Weekly)
	bob := f.reader(t, "bob@example.org", "Bob", herald.Daily)
	if _, err := f.svc.UnsubscribeID(ctx, bob.ID); err != nil {
		t.Fatal(err)
	}
	for _, addr := range []string{"ann@EXAMPLE.org", "bob@example.org", "nobody@example.org"} {
		if err := f.svc.SendLink(ctx, addr); err != nil {
			t.Fatalf("%s: %v", addr, err)
		}
	}
	for _, s := range []*herald.Subscriber{ann, bob} {
		ls := f.links(t, s.ID)
		if len(ls) != 1 {
			t.Fatalf("%s: %d link emails", s.Email, len(ls))
		}
		p := testmail.MustParse(t, ls[0].Raw)
		link := p.Link("/preferences?token=")
		if link == "" || !strings.Contains(p.Text, "asked for the link") || p.Link("/unsubscribe?token=") == "" {
			t.Fatalf("%s: link email:\n%s", s.Email, p.Text)
		}
		tok := link[strings.Index(link, "token=")+len("token="):]
		if got, err := f.svc.ForPreferences(ctx, tok); err != nil || got.ID != s.ID {
			t.Fatalf("%s: the link opens %+v, %v", s.Email, got, err)
		}
	}
	if n := len(f.outbox(t)); n != 2 {
		t.Fatalf("%d emails queued, want the 2 links (nothing to the unknown address)", n)
	}
	// Bad input is a clear EINVALID, not silence.
	if err := f.svc.SendLink(ctx, "not an address"); herald.ErrorCode(err) != herald.EINVALID {
		t.Fatalf("bad address: %v", err)
	}
	// The per-address limit counts links and confirmations together: 3 a day.
	for range 5 {
		if err := f.svc.SendLink(ctx, "ann@example.org"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := f.svc.Subscribe(ctx, herald.SubscribeRequest{Email: "ann@example.org"}); err != nil {
		t.Fatal(err)
	}
	if n := len(f.links(t, ann.ID)); n != 3 {
		t.Fatalf("%d link emails to one address in a day, want 3", n)
	}
	f.clock.Add(24*time.Hour + time.Minute)
	if err := f.svc.SendLink(ctx, "ann@example.org"); err != nil {
		t.Fatal(err)
	}
	if n := len(f.links(t, ann.ID)); n != 4 {
		t.Fatalf("after the window: %d link emails, want 4", n)
	}
	// A pending address gets its confirmation again instead.
	if _, err := f.svc.Subscribe(ctx, herald.SubscribeRequest{Email: "cat@example.org"}); err != nil {
		t.Fatal(err)
	}
	if err := f.svc.SendLink(ctx, "cat@example.org"); err != nil {
		t.Fatal(err)
	}
	var confirms int
	for _, m := range f.outbox(t) {
		if m.To == "cat@example.org" {
			if m.Kind != herald.KindConfirm {
				t.Fatalf("a pending address got a %s email", m.Kind)
			}
			confirms++
		}
	}
	if confirms != 2 {
		t.Fatalf("pending address: %d confirmations, want 2", confirms)
	}
	// Link emails count against the hourly cap too: past it, the link
	// waits for the budget like a confirmation (never refused).
	g := newFixture(t, func(o *Options) { o.GlobalPerHour = 1 })
	g.reader(t, "dan@example.org", "", herald.Daily)
	eve := g.reader(t, "eve@example.org", "", herald.Daily)
	if err := g.svc.SendLink(ctx, "dan@example.org"); err != nil {
		t.Fatal(err)
	}
	if err := g.svc.SendLink(ctx, "eve@example.org"); err != nil {
		t.Fatalf("over the hourly cap: %v", err)
	}
	if n := len(g.links(t, eve.ID)); n != 0 {
		t.Fatalf("over the hourly cap: %d link emails due, want it waiting", n)
	}
	if c := g.held(t); c[herald.HoldBudget]+c[herald.HoldUnsolved] != 1 {
		t.Fatalf("over the hourly cap: held %v, want the link waiting", c)
	}
	// An unknown address takes nothing from the cap.
	h := newFixture(t, func(o *Options) { o.GlobalPerHour = 1 })
	h.reader(t, "fay@example.org", "", herald.Daily)
	for range 3 {
		if err := h.svc.SendLink(ctx, "ghost@example.org"); err != nil {
			t.Fatal(err)
		}
	}
	if err := h.svc.SendLink(ctx, "fay@example.org"); err != nil {
		t.Fatalf("unknown addresses used up the cap: %v", err)
	}
}

// A reader who left comes back with one press on their preferences page,
// keeping their name and choices, and gets only the posts from then on.
func TestResubscribe(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, nil)
	ann := f.reader(t, "ann@example.org", "Ann Reader", herald.Weekly)
	manage := f.svc.ManageToken(ann.ID)
	if _, err := f.svc.UnsubscribeFromPreferences(ctx, manage); err != nil {
		t.Fatal(err)
	}
	// Changing the frequency while unsubscribed is refused: nothing would
	// come, so nothing may say it was saved.
	if _, changed, err := f.svc.SavePreferences(ctx, manage, herald.Preferences{Frequency: "daily"}); herald.ErrorCode(err) != herald.ECONFLICT || changed {
		t.Fatalf("frequency while unsubscribed: %v %v", changed, err)
	}
	if s, _ := f.db.SubscriberByEmail(ctx, "ann@example.org"); s.Frequency != herald.Weekly {
		t.Fatal("the refused change changed the frequency")
	}
	p := &herald.Post{GUID: "g1", URL: "https://blog.example.org/1", Title: "While away", FoundAt: f.clock.Now()}
	if _, err := f.db.UpsertPost(ctx, p); err != nil {
		t.Fatal(err)
	}
	back, err := f.svc.Resubscribe(ctx, manage, "")
	if err != nil {
		t.Fatal(err)
	}
	if back.Status != herald.StatusConfirmed || back.Name != "Ann Reader" || back.Frequency != herald.Weekly || back.UnsubscribedAt != nil || back.ConfirmedAt == nil {
		t.Fatalf("back: %+v", back)
	}
	if back.Cursor != p.ID {
		t.Fatalf("cursor %d: the post from while they were away (%d) would be sent", back.Cursor, p.ID)
	}
	if n := len(f.outbox(t)); n != 0 {
		t.Fatalf("coming back queued %d emails (no new opt-in is needed)", n)
	}
	// Twice is fine; a frequency chosen on the way back is kept.
	if again, err := f.svc.Resubscribe(ctx, manage, "instant"); err != nil || again.Frequency != herald.Weekly {
		t.Fatalf("a subscribed reader is left as they are: %+v %v", again, err)
	}
	if _, err := f.svc.UnsubscribeFromPreferences(ctx, manage); err != nil {
		t.Fatal(err)
	}
	if s, err := f.svc.Resubscribe(ctx, manage, "daily"); err != nil || s.Frequency != herald.Daily {
		t.Fatalf("back with daily: %+v %v", s, err)
	}
	// A bounced reader comes back too, with the bounce count cleared.
	bob := f.reader(t, "bob@example.org", "", herald.Daily)
	for range 3 {
		if _, err := f.svc.Bounce(ctx, "bob@example.org", herald.BounceHard); err != nil {
			t.Fatal(err)
		}
	}
	if s, err := f.svc.Resubscribe(ctx, f.svc.ManageToken(bob.ID), ""); err != nil || s.Status != herald.StatusConfirmed || s.Bounces != 0 {
		t.Fatalf("bounced reader back: %+v %v", s, err)
	}
	// Only a preferences token works; a bad frequency is refused.
	if _, err := f.svc.Resubscribe(ctx, f.svc.UnsubscribeToken(ann.ID), ""); err == nil {
		t.Fatal("an unsubscribe token subscribed a reader again")
	}
	if _, err := f.svc.Resubscribe(ctx, manage, "hourly"); herald.ErrorField(err) != "frequency" {
		t.Fatalf("bad frequency: %v", err)
	}
	if err := f.svc.DeleteSubscriber(ctx, "ann@example.org"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Resubscribe(ctx, manage, ""); herald.ErrorCode(err) != herald.EINVALID {
		t.Fatalf("an erased reader's link: %v", err)
	}
}

func TestUpdateSubscriberNameAndFrequency(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, nil)
	f.reader(t, "ann@example.org", "Ann", herald.Weekly)
	name, freq := "Ann Other", "instant"
	s, err := f.svc.UpdateSubscriber(ctx, "ann@EXAMPLE.org", herald.SubscriberPatch{Name: &name, Frequency: &freq})
	if err != nil || s.Name != "Ann Other" || s.Frequency != herald.Instant || s.Status != herald.StatusConfirmed {
		t.Fatalf("update: %+v %v", s, err)
	}
	// A field left out stays as it is.
	freq = "daily"
	if s, err = f.svc.UpdateSubscriber(ctx, "ann@example.org", herald.SubscriberPatch{Frequency: &freq}); err != nil || s.Name != "Ann Other" || s.Frequency != herald.Daily {
		t.Fatalf("frequency only: %+v %v", s, err)
	}
	if s, err = f.svc.UpdateSubscriber(ctx, "ann@example.org", herald.SubscriberPatch{}); err != nil || s.Frequency != herald.Daily {
		t.Fatalf("empty patch: %+v %v", s, err)
	}
	bad, long := "hourly", strings.Repeat("x", 200)
	for _, c := range []struct {
		p     herald.SubscriberPatch
		field string
	}{
		{herald.SubscriberPatch{Frequency: &bad}, "frequency"},
		{herald.SubscriberPatch{Name: &long}, "name"},
		{herald.SubscriberPatch{Name: &name, Frequency: &bad}, "frequency"},
	} {
		if _, err := f.svc.UpdateSubscriber(ctx, "ann@example.org", c.p); herald.ErrorCode(err) != herald.EINVALID || herald.ErrorField(err) != c.field {
			t.Fatalf("%+v: %v (field %q)", c.p, err, herald.ErrorField(err))
		}
	}
	if s, _ := f.db.SubscriberByEmail(ctx, "ann@example.org"); s.Name != "Ann Other" || s.Frequency != herald.Daily {
		t.Fatalf("a refused patch changed the reader: %+v", s)
	}
	if _, err := f.svc.UpdateSubscriber(ctx, "nobody@example.org", herald.SubscriberPatch{Name: &name}); herald.ErrorCode(err) != herald.ENOTFOUND {
		t.Fatalf("unknown address: %v", err)
	}
	if _, err := f.db.SubscriberByEmail(ctx, "nobody@example.org"); herald.ErrorCode(err) != herald.ENOTFOUND {
		t.Fatal("updating an unknown address created it")
	}
}

func TestResendConfirmation(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, nil)
	if _, err := f.svc.Subscribe(ctx, herald.SubscribeRequest{Email: "p@example.org", Name: "Pat", Frequency: "weekly"}); err != nil {
		t.Fatal(err)
	}
	for i := 2; i <= 3; i++ {
		s, err := f.svc.ResendConfirmation(ctx, "p@example.org")
		if err != nil || s.Status != herald.StatusPending || s.Name != "Pat" || s.Frequency != herald.Weekly {
			t.Fatalf("resend %d: %+v %v", i, s, err)
		}
		if n := len(f.outbox(t)); n != i {
			t.Fatalf("resend %d: %d confirmations", i, n)
		}
	}
	// The per-address limit holds for the admin too, and says so.
	if _, err := f.svc.ResendConfirmation(ctx, "p@example.org"); herald.ErrorCode(err) != herald.ERATELIMIT || !strings.Contains(herald.ErrorMessage(err), "3 confirmation emails") {
		t.Fatalf("past the limit: %v", err)
	}
	f.reader(t, "c@example.org", "", herald.Daily)
	if _, err := f.svc.ResendConfirmation(ctx, "c@example.org"); herald.ErrorCode(err) != herald.ECONFLICT {
		t.Fatalf("a confirmed reader: %v", err)
	}
	if _, err := f.svc.ResendConfirmation(ctx, "nobody@example.org"); herald.ErrorCode(err) != herald.ENOTFOUND {
		t.Fatalf("unknown: %v", err)
	}
}

// The welcome email asks readers to add mail.from to their contacts,
// unless it is a local address nobody can add (mail.from left at its
// default).
func TestWelcomeContactsLine(t *testing.T) {
	ctx := context.Background()
	for _, c := range []struct {
		from string
		want bool
	}{{"Test Blog <digest@example.org>", true}, {"herald <herald@localhost.localdomain>", false}} {
		f := newFixture(t, func(o *Options) { o.From = c.from })
		if _, err := f.svc.Subscribe(ctx, herald.SubscribeRequest{Email: "w@example.org"}); err != nil {
			t.Fatal(err)
		}
		if _, err := f.svc.Confirm(ctx, confirmToken(t, f.outbox(t)[0])); err != nil {
			t.Fatal(err)
		}
		for _, m := range f.outbox(t) {
			if m.Kind != herald.KindWelcome {
				continue
			}
			p := testmail.MustParse(t, m.Raw)
			if got := strings.Contains(p.Text, "to your contacts") && strings.Contains(p.HTML, "to your contacts"); got != c.want {
				t.Fatalf("from %s: contacts line %v, want %v:\n%s", c.from, got, c.want, p.Text)
			}
		}
	}
}
