package subscription

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/herald-dev/herald"
)

func TestJanitorPurgesStaleSignUps(t *testing.T) {
	ctx := context.Background()
	ttl := 48 * time.Hour
	f := newFixture(t, func(o *Options) { o.ConfirmTTL = ttl; o.PerAddressN = 0 })
	j := NewJanitor(f.db, JanitorOptions{TTL: ttl, Page: 3, Now: f.clock.Now})

	// Signed up now: old, confirmed, unsubscribed, bounced on confirmation.
	for i := range 5 {
		if _, err := f.svc.Subscribe(ctx, herald.SubscribeRequest{Email: fmt.Sprintf("old%d@example.org", i)}); err != nil {
			t.Fatal(err)
		}
	}
	f.confirmed(t, "reader@example.org")
	f.confirmed(t, "left@example.org")
	if _, err := f.svc.Bounce(ctx, "left@example.org", herald.BounceComplaint); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Subscribe(ctx, herald.SubscribeRequest{Email: "typo@example.org"}); err != nil {
		t.Fatal(err)
	}
	f.svc.MessageResult(herald.KindConfirm, "typo@example.org", &herald.SendError{Code: 550, Err: errors.New("no such user")})
	// A confirmed reader who bounced later is no sign-up: kept.
	f.confirmed(t, "gone@example.org")
	for range 3 {
		_, _ = f.svc.Bounce(ctx, "gone@example.org", herald.BounceHard)
	}

	f.clock.Add(ttl / 2)
	// Half-way: a fresh sign-up, and one old address asks again (its new
	// link is good for another ttl).
	if _, err := f.svc.Subscribe(ctx, herald.SubscribeRequest{Email: "fresh@example.org"}); err != nil {
		t.Fatal(err)
	}
	if err := f.svc.SendLink(ctx, "old0@example.org"); err != nil {
		t.Fatal(err)
	}
	if n, err := j.Purge(ctx); err != nil || n != 0 {
		t.Fatalf("before the ttl: purged %d, %v", n, err)
	}

	f.clock.Add(ttl/2 + time.Minute)
	n, err := j.Purge(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n != 5 { // old1..old4 and typo
		t.Errorf("purged %d, want 5", n)
	}
	for _, e := range []string{"old1@example.org", "old4@example.org", "typo@example.org"} {
		if _, err := f.db.SubscriberByEmail(ctx, e); herald.ErrorCode(err) != herald.ENOTFOUND {
			t.Errorf("%s kept: %v", e, err)
		}
	}
	for e, want := range map[string]herald.Status{
		"old0@example.org": herald.StatusPending, "fresh@example.org": herald.StatusPending,
		"reader@example.org": herald.StatusConfirmed, "left@example.org": herald.StatusUnsubscribed,
		"gone@example.org": herald.StatusBounced,
	} {
		if s := f.get(t, e); s.Status != want {
			t.Errorf("%s is %s, want %s", e, s.Status, want)
		}
	}
	// Their queued confirmations went with them.
	for _, m := range f.outbox(t) {
		if m.To == "old1@example.org" {
			t.Errorf("a purged address still has mail queued: %+v", m)
		}
	}
	f.clock.Add(ttl)
	if n, _ := j.Purge(ctx); n != 2 { // old0 and fresh
		t.Errorf("second sweep purged %d, want 2", n)
	}
}

// A sign-up confirmed between the scan and the delete stays.
func TestJanitorSparesWhatChangedMeanwhile(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, nil)
	if _, err := f.svc.Subscribe(ctx, herald.SubscribeRequest{Email: "late@example.org"}); err != nil {
		t.Fatal(err)
	}
	f.clock.Add(72 * time.Hour)
	racing := &racingStore{JanitorStore: f.db, before: func() {
		// The reader confirms (with a link of a later resend) just
		// after the janitor read the page.
		_, _ = f.db.MutateSubscriber(ctx, "late@example.org", func(cur *herald.Subscriber) (*herald.Subscriber, []*herald.OutboxMessage, error) {
			n := *cur
			n.Status = herald.StatusConfirmed
			now := f.clock.Now()
			n.ConfirmedAt = &now
			return &n, nil, nil
		})
	}}
	j := NewJanitor(racing, JanitorOptions{TTL: 48 * time.Hour, Now: f.clock.Now})
	if n, err := j.Purge(ctx); err != nil || n != 0 {
		t.Fatalf("purged %d, %v", n, err)
	}
	if s := f.get(t, "late@example.org"); s.Status != herald.StatusConfirmed {
		t.Fatalf("late is %s", s.Status)
	}
}

type racingStore struct {
	JanitorStore
	before func()
}

func (r *racingStore) DeleteSubscriberIf(ctx context.Context, email string, cond func(*herald.Subscriber) bool) (bool, error) {
	r.before()
	return r.JanitorStore.DeleteSubscriberIf(ctx, email, cond)
}

// sweepingStore counts the janitor's sweeps (each starts with a scan
// from the first reader).
type sweepingStore struct {
	JanitorStore
	sweeps atomic.Int64
}

func (s *sweepingStore) ScanSubscribers(ctx context.Context, after uint64, limit int) ([]*herald.Subscriber, error) {
	if after == 0 {
		s.sweeps.Add(1)
	}
	return s.JanitorStore.ScanSubscribers(ctx, after, limit)
}

func TestJanitorRunStopsWithItsContext(t *testing.T) {
	f := newFixture(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	st := &sweepingStore{JanitorStore: f.db}
	j := NewJanitor(st, JanitorOptions{Every: 10 * time.Millisecond, Now: f.clock.Now})
	done := make(chan error, 1)
	go func() { done <- j.Run(ctx) }()
	deadline := time.Now().Add(time.Minute)
	for st.sweeps.Load() < 3 { // at start, then on the ticker
		if time.Now().After(deadline) {
			t.Fatalf("%d sweeps in a minute", st.sweeps.Load())
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not stop")
	}
}
