package subscription

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/herald-dev/herald"
)

// TestGlobalCapCountsEmailsNotAttempts: security.confirmations_per_hour
// caps confirmation emails (and the link emails a subscribed address
// gets). Sign-ups that queue none (an address at its per-address limit)
// must not use it up, or a bot
// repeating one victim's address from many IPs locks every new reader out
// for an hour while only 3 emails went out (found by the e2e bombing test
// with 1000 requests against the default cap of 1000).
func TestGlobalCapCountsEmailsNotAttempts(t *testing.T) {
	ctx := context.Background()
	// A clock that moves on every reading, as a real one does between
	// taking a confirmation from the cap and giving it back.
	var mu sync.Mutex
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	tick := func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		now = now.Add(time.Millisecond)
		return now
	}
	f := newFixture(t, func(o *Options) { o.GlobalPerHour = 8; o.Now = tick })
	if _, err := f.svc.Subscribe(ctx, herald.SubscribeRequest{Email: "done@example.org", Confirmed: true}); err != nil {
		t.Fatal(err)
	}
	for i := range 50 {
		for _, e := range []string{"victim@example.org", "done@example.org"} {
			if _, err := f.svc.Subscribe(ctx, herald.SubscribeRequest{Email: e}); err != nil {
				t.Fatalf("attempt %d for %s: %v", i, e, err)
			}
		}
	}
	if n := len(f.outbox(t)); n != 6 {
		t.Fatalf("%d emails queued, want 6 (each address's per-address limit)", n)
	}
	// 6 of 8 used: two more readers get theirs at once; the next one's
	// waits for the budget (budget_test.go) rather than being refused.
	for i := range 2 {
		if _, err := f.svc.Subscribe(ctx, herald.SubscribeRequest{Email: fmt.Sprintf("new%d@example.org", i)}); err != nil {
			t.Fatalf("new reader %d: %v", i, err)
		}
	}
	if _, err := f.svc.Subscribe(ctx, herald.SubscribeRequest{Email: "late@example.org"}); err != nil {
		t.Fatalf("ninth email in the hour: %v", err)
	}
	if n := len(f.outbox(t)); n != 8 {
		t.Fatalf("%d emails due, want 8 (the cap)", n)
	}
	if c, _ := f.db.HeldCounts(ctx); c[herald.HoldBudget]+c[herald.HoldUnsolved] != 1 {
		t.Fatalf("held %v, want the ninth waiting", c)
	}
}
