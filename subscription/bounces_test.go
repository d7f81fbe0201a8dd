package subscription

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/herald-dev/herald"
	"github.com/herald-dev/herald/internal/smtptest"
	"github.com/herald-dev/herald/mailer"
)

func (f *fixture) confirmed(t *testing.T, email string) *herald.Subscriber {
	t.Helper()
	s, err := f.svc.Subscribe(context.Background(), herald.SubscribeRequest{Email: email, Frequency: "daily", Confirmed: true, Source: "import"})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func (f *fixture) get(t *testing.T, email string) *herald.Subscriber {
	t.Helper()
	s, err := f.db.SubscriberByEmail(context.Background(), email)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestHardBouncesUpToTheLimit(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, func(o *Options) { o.BounceLimit = 3 })
	f.confirmed(t, "r@example.org")
	for i := 1; i <= 3; i++ {
		s, err := f.svc.Bounce(ctx, "r@Example.ORG", herald.BounceHard)
		if err != nil {
			t.Fatal(err)
		}
		want := herald.StatusConfirmed
		if i == 3 {
			want = herald.StatusBounced
		}
		if s.Bounces != i || s.Status != want {
			t.Fatalf("after %d hard bounces: %s with %d", i, s.Status, s.Bounces)
		}
	}
	// A soft bounce changes nothing but the counter.
	s, err := f.svc.Bounce(ctx, "r@example.org", herald.BounceSoft)
	if err != nil || s.Status != herald.StatusBounced || s.Bounces != 3 {
		t.Fatalf("soft bounce: %+v %v", s, err)
	}
	c, _ := f.db.Counters(ctx)
	if c[herald.CounterBouncesHard] != 3 || c[herald.CounterBouncesSoft] != 1 {
		t.Errorf("counters %v", c)
	}
	// Reactivation: only from bounced, with the count reset.
	s, err = f.svc.Reactivate(ctx, "r@example.org")
	if err != nil || s.Status != herald.StatusConfirmed || s.Bounces != 0 {
		t.Fatalf("reactivate: %+v %v", s, err)
	}
	if _, err := f.svc.Reactivate(ctx, "r@example.org"); herald.ErrorCode(err) != herald.ECONFLICT {
		t.Errorf("reactivating a confirmed reader: %v", err)
	}
	if _, err := f.svc.Reactivate(ctx, "nobody@example.org"); herald.ErrorCode(err) != herald.ENOTFOUND {
		t.Errorf("reactivating nobody: %v", err)
	}
	if _, err := f.svc.Bounce(ctx, "nobody@example.org", herald.BounceHard); herald.ErrorCode(err) != herald.ENOTFOUND {
		t.Errorf("bounce of an unknown address: %v", err)
	}
	if _, err := f.svc.Bounce(ctx, "nobody@example.org", herald.BounceSoft); herald.ErrorCode(err) != herald.ENOTFOUND {
		t.Errorf("soft bounce of an unknown address: %v", err)
	}
	if _, err := f.svc.Bounce(ctx, "r@example.org", "weird"); herald.ErrorCode(err) != herald.EINVALID {
		t.Errorf("unknown kind: %v", err)
	}
	if _, err := f.svc.Bounce(ctx, "not an address", herald.BounceHard); herald.ErrorCode(err) != herald.EINVALID {
		t.Errorf("bad address: %v", err)
	}
}

func TestComplaintUnsubscribesAtOnce(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, nil)
	f.confirmed(t, "r@example.org")
	s, err := f.svc.Bounce(ctx, "r@example.org", herald.BounceComplaint)
	if err != nil || s.Status != herald.StatusUnsubscribed || s.UnsubscribedAt == nil {
		t.Fatalf("complaint: %+v %v", s, err)
	}
	if s, err := f.svc.Bounce(ctx, "r@example.org", herald.BounceComplaint); err != nil || s.Status != herald.StatusUnsubscribed {
		t.Fatalf("second complaint: %+v %v", s, err)
	}
	// A hard bounce does not turn an unsubscribe into a bounce.
	if s, _ := f.svc.Bounce(ctx, "r@example.org", herald.BounceHard); s.Status != herald.StatusUnsubscribed {
		t.Errorf("hard bounce after unsubscribe: %s", s.Status)
	}
	if _, err := f.svc.Reactivate(ctx, "r@example.org"); herald.ErrorCode(err) != herald.ECONFLICT {
		t.Errorf("reactivating an unsubscribed reader: %v", err)
	}
}

// A hard bounce of a confirmation marks the pending address bounced at
// once; it can't be reactivated (it never opted in), but it can subscribe
// again.
func TestBouncedConfirmation(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, nil)
	if _, err := f.svc.Subscribe(ctx, herald.SubscribeRequest{Email: "typo@example.org"}); err != nil {
		t.Fatal(err)
	}
	f.svc.MessageResult(herald.KindConfirm, "typo@example.org", &herald.SendError{Code: 550, Err: errors.New("no such user")})
	s := f.get(t, "typo@example.org")
	if s.Status != herald.StatusBounced || s.Bounces != 1 {
		t.Fatalf("after a bounced confirmation: %s %d", s.Status, s.Bounces)
	}
	if _, err := f.svc.Reactivate(ctx, "typo@example.org"); herald.ErrorCode(err) != herald.ECONFLICT || !strings.Contains(err.Error(), "never confirmed") {
		t.Errorf("reactivating a never-confirmed address: %v", err)
	}
	if s, err := f.svc.Subscribe(ctx, herald.SubscribeRequest{Email: "typo@example.org"}); err != nil || s.Status != herald.StatusPending || s.Bounces != 0 {
		t.Errorf("subscribing again: %+v %v", s, err)
	}
}

func TestMessageResult(t *testing.T) {
	f := newFixture(t, func(o *Options) { o.BounceLimit = 2 })
	f.confirmed(t, "r@example.org")
	perm := &herald.SendError{Code: 550, Err: errors.New("mailbox unavailable")}
	temp := &herald.SendError{Temporary: true, Code: 451, Err: errors.New("later")}

	f.svc.MessageResult(herald.KindTest, "r@example.org", perm) // tests count for nobody
	f.svc.MessageResult(herald.KindWelcome, "r@example.org", temp)
	f.svc.MessageResult(herald.KindWelcome, "r@example.org", mailer.ErrExpired)
	if s := f.get(t, "r@example.org"); s.Bounces != 0 {
		t.Fatalf("non-bounces counted: %d", s.Bounces)
	}
	f.svc.MessageResult(herald.KindWelcome, "r@example.org", perm)
	if s := f.get(t, "r@example.org"); s.Bounces != 1 || s.Status != herald.StatusConfirmed {
		t.Fatalf("after one: %+v", s)
	}
	// A delivery in between: the bounces were not consecutive.
	f.svc.MessageResult(herald.KindWelcome, "r@example.org", nil)
	if s := f.get(t, "r@example.org"); s.Bounces != 0 {
		t.Fatalf("a delivery did not reset: %d", s.Bounces)
	}
	f.svc.MessageResult(herald.KindWelcome, "r@example.org", perm)
	f.svc.MessageResult(herald.KindWelcome, "r@example.org", perm)
	if s := f.get(t, "r@example.org"); s.Status != herald.StatusBounced {
		t.Fatalf("after the limit: %+v", s)
	}
	f.svc.MessageResult(herald.KindConfirm, "unknown@example.org", perm) // no panic, no record
	if _, err := f.db.SubscriberByEmail(context.Background(), "unknown@example.org"); herald.ErrorCode(err) != herald.ENOTFOUND {
		t.Errorf("a bounce created a record: %v", err)
	}
}

// The whole path: a relay answers 550 to a confirmation, the outbox
// sender reports it, and the address is bounced.
func TestOutboxBounceOverSMTP(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	f := newFixture(t, nil)
	srv := smtptest.Start(t)
	srv.RejectRecipient(func(addr string) (int, string, bool) {
		return 550, "5.1.1 no such user", strings.HasPrefix(addr, "ghost@")
	})
	log := slog.New(slog.DiscardHandler)
	tr := mailer.NewSMTPTransport(mailer.SMTPConfig{Host: srv.Host(), Port: srv.Port(), TLS: "none", Connections: 1, Timeout: 5 * time.Second}, log)
	defer tr.Close()
	sender := mailer.NewSender(f.db, tr, mailer.SenderOptions{
		Now: f.clock.Now, EnvelopeFrom: "digest@example.org", PollInterval: 20 * time.Millisecond,
		OnResult: f.svc.MessageResult,
	})
	done := make(chan struct{})
	go func() { defer close(done); _ = sender.Run(ctx) }()
	for _, e := range []string{"ghost@example.org", "real@example.org"} {
		if _, err := f.svc.Subscribe(ctx, herald.SubscribeRequest{Email: e}); err != nil {
			t.Fatal(err)
		}
	}
	sender.Notify()
	srv.WaitFor(t, 1, 10*time.Second)
	deadline := time.Now().Add(10 * time.Second)
	for f.get(t, "ghost@example.org").Status != herald.StatusBounced {
		if time.Now().After(deadline) {
			t.Fatalf("ghost is %s", f.get(t, "ghost@example.org").Status)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if s := f.get(t, "real@example.org"); s.Status != herald.StatusPending || s.Bounces != 0 {
		t.Errorf("real: %+v", s)
	}
	cancel()
	<-done
}

// Mail queued for a reader before they left is not sent after: the outbox
// sender asks Unwanted before every attempt.
func TestUnwantedQueuedMail(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, nil)
	pending, err := f.svc.Subscribe(ctx, herald.SubscribeRequest{Email: "p@example.org"})
	if err != nil {
		t.Fatal(err)
	}
	reader := f.confirmed(t, "c@example.org")
	left := f.confirmed(t, "left@example.org")
	if _, err := f.svc.UnsubscribeID(ctx, left.ID); err != nil {
		t.Fatal(err)
	}
	erased := f.confirmed(t, "gone@example.org")
	if err := f.db.DeleteSubscriber(ctx, "gone@example.org"); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		kind   herald.MessageKind
		sub    uint64
		drop   bool
		reason string
	}{
		{herald.KindTest, 0, false, ""},
		{herald.KindConfirm, pending.ID, false, ""},
		{herald.KindConfirm, reader.ID, true, "subscriber is confirmed, no confirmation needed"},
		{herald.KindWelcome, reader.ID, false, ""},
		{herald.KindWelcome, left.ID, true, "subscriber is unsubscribed"},
		{herald.KindInstant, pending.ID, true, "subscriber is pending"},
		{herald.KindWelcome, erased.ID, true, "subscriber erased"},
	} {
		drop, reason := f.svc.Unwanted(ctx, &herald.OutboxMessage{Kind: c.kind, SubscriberID: c.sub})
		if drop != c.drop || reason != c.reason {
			t.Errorf("%s to subscriber %d: drop %v %q, want %v %q", c.kind, c.sub, drop, reason, c.drop, c.reason)
		}
	}
}
