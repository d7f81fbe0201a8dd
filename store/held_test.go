package store

import (
	"context"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/herald-dev/herald"
)

// TestHeldConfirmations: a held message is in the outbox (counted, kept
// across a restart, erased with its reader) but never due until
// released; ReleaseHeld takes the budget lane before the unsolved one,
// oldest first in each, and only up to the lane it is given.
func TestHeldConfirmations(t *testing.T) {
	ctx := context.Background()
	clock := newClock()
	path := filepath.Join(t.TempDir(), "herald.db")
	db := openTest(t, path, clock)

	victim := create(t, db, "victim@example.org", herald.StatusPending, herald.Daily)
	msgs := []*herald.OutboxMessage{
		{Kind: herald.KindConfirm, To: "u1@example.org", Hold: herald.HoldUnsolved},
		{Kind: herald.KindConfirm, To: "b1@example.org", Hold: herald.HoldBudget},
		{Kind: herald.KindDigest, To: "reader@example.org"},
		{Kind: herald.KindConfirm, To: "victim@example.org", SubscriberID: victim.ID, Hold: herald.HoldBudget},
		{Kind: herald.KindConfirm, To: "b2@example.org", Hold: herald.HoldBudget},
		{Kind: herald.KindConfirm, To: "u2@example.org", Hold: herald.HoldUnsolved},
	}
	if err := db.Enqueue(ctx, msgs...); err != nil {
		t.Fatal(err)
	}
	due := func() []string {
		t.Helper()
		ms, err := db.DueMessages(ctx, clock.Now().Add(time.Hour), 100)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, m := range ms {
			out = append(out, m.To)
		}
		return out
	}
	counts := func() map[herald.Hold]int {
		t.Helper()
		c, err := db.HeldCounts(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	if got := due(); !slices.Equal(got, []string{"reader@example.org"}) {
		t.Fatalf("due with 5 held: %v (held messages must not be in the sender's queue)", got)
	}
	if c := counts(); c[herald.HoldBudget] != 3 || c[herald.HoldUnsolved] != 2 {
		t.Fatalf("held counts %v", c)
	}
	if d, _ := db.OutboxDepth(ctx); d != 6 {
		t.Fatalf("outbox depth %d, want 6 (held ones are in the outbox)", d)
	}

	// Erasing a reader drops their held confirmation with them.
	if err := db.DeleteSubscriber(ctx, "victim@example.org"); err != nil {
		t.Fatal(err)
	}
	if c := counts(); c[herald.HoldBudget] != 2 {
		t.Fatalf("held counts after erasing the victim %v", c)
	}

	// A restart keeps them held.
	db.Close()
	db = openTest(t, path, clock)
	if got := due(); !slices.Equal(got, []string{"reader@example.org"}) {
		t.Fatalf("due after reopening: %v", got)
	}

	// Only the budget lane, and at most one.
	clock.Add(time.Minute)
	if n, err := db.ReleaseHeld(ctx, 1, herald.HoldBudget, clock.Now()); err != nil || n != 1 {
		t.Fatalf("release 1: %d, %v", n, err)
	}
	if got := due(); !slices.Equal(got, []string{"reader@example.org", "b1@example.org"}) {
		t.Fatalf("after releasing one: %v", got)
	}
	// Up to the budget lane: the unsolved ones stay, whatever n is.
	clock.Add(time.Minute)
	if n, err := db.ReleaseHeld(ctx, 10, herald.HoldBudget, clock.Now()); err != nil || n != 1 {
		t.Fatalf("release the budget lane: %d, %v", n, err)
	}
	clock.Add(time.Minute)
	if n, err := db.ReleaseHeld(ctx, 1, herald.HoldUnsolved, clock.Now()); err != nil || n != 1 {
		t.Fatalf("release 1 unsolved: %d, %v", n, err)
	}
	if got := due(); !slices.Equal(got, []string{"reader@example.org", "b1@example.org", "b2@example.org", "u1@example.org"}) {
		t.Fatalf("release order: %v", got)
	}
	if c := counts(); c[herald.HoldBudget] != 0 || c[herald.HoldUnsolved] != 1 {
		t.Fatalf("held counts at the end %v", c)
	}
	ms, _ := db.DueMessages(ctx, clock.Now(), 100)
	for _, m := range ms {
		if m.Hold != herald.HoldNone {
			t.Fatalf("released message %s still says %v", m.To, m.Hold)
		}
	}
	// A released message goes like any other.
	if err := db.MessageSent(ctx, ms[1].ID); err != nil {
		t.Fatal(err)
	}
	if d, _ := db.OutboxDepth(ctx); d != 4 {
		t.Fatalf("outbox depth %d, want 4", d)
	}
	if _, err := Verify(ctx, path); err != ErrLocked {
		t.Fatalf("verify while open: %v", err)
	}
}
