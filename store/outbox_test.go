package store

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/herald-dev/herald"
	bolt "go.etcd.io/bbolt"
)

func TestOutbox(t *testing.T) {
	ctx := context.Background()
	clock := newClock()
	db := openTest(t, "", clock)
	now := clock.Now()

	if d, err := db.NextDue(ctx); err != nil || !d.IsZero() {
		t.Fatalf("NextDue on empty = %v, %v", d, err)
	}
	msgs := []*herald.OutboxMessage{
		{Kind: herald.KindDigest, To: "late@example.org", NextAttempt: now.Add(time.Hour)},
		{Kind: herald.KindConfirm, To: "now1@example.org"}, // NextAttempt defaults to now
		{Kind: herald.KindConfirm, To: "past@example.org", NextAttempt: now.Add(-time.Minute), Raw: []byte{0, 0xff, '\r', '\n'}},
		{Kind: herald.KindWelcome, To: "now2@example.org", NextAttempt: now},
	}
	if err := db.Enqueue(ctx, msgs...); err != nil {
		t.Fatal(err)
	}
	for i, m := range msgs {
		if m.ID != uint64(i+1) {
			t.Fatalf("message %d got id %d", i, m.ID)
		}
	}
	to := func(ms []*herald.OutboxMessage) []string {
		var out []string
		for _, m := range ms {
			out = append(out, m.To)
		}
		return out
	}

	due, err := db.DueMessages(ctx, now, 10)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := to(due), []string{"past@example.org", "now1@example.org", "now2@example.org"}; !slices.Equal(got, want) {
		t.Fatalf("due = %v, want %v", got, want)
	}
	if string(due[0].Raw) != "\x00\xff\r\n" {
		t.Fatalf("raw = %q", due[0].Raw)
	}
	if due, _ := db.DueMessages(ctx, now, 2); len(due) != 2 {
		t.Fatalf("limit 2 gave %d", len(due))
	}
	if d, _ := db.NextDue(ctx); !d.Equal(now.Add(-time.Minute)) {
		t.Fatalf("NextDue = %v", d)
	}
	if n, _ := db.OutboxDepth(ctx); n != 4 {
		t.Fatalf("depth = %d", n)
	}

	// Retry: the message leaves the due set until its time comes.
	if err := db.RetryMessage(ctx, 3, now.Add(30*time.Minute), "421 try later"); err != nil {
		t.Fatal(err)
	}
	if due, _ := db.DueMessages(ctx, now, 10); !slices.Equal(to(due), []string{"now1@example.org", "now2@example.org"}) {
		t.Fatalf("due after retry = %v", to(due))
	}
	due, _ = db.DueMessages(ctx, now.Add(45*time.Minute), 10)
	if got := to(due); !slices.Equal(got, []string{"now1@example.org", "now2@example.org", "past@example.org"}) {
		t.Fatalf("due later = %v", got)
	}
	if m := due[2]; m.Attempts != 1 || m.LastError != "421 try later" || !m.NextAttempt.Equal(now.Add(30*time.Minute)) {
		t.Fatalf("retried = %+v", m)
	}
	if d, _ := db.NextDue(ctx); !d.Equal(now) {
		t.Fatalf("NextDue = %v, want %v", d, now)
	}

	// Sent: gone, counted.
	if err := db.MessageSent(ctx, 2); err != nil {
		t.Fatal(err)
	}
	if err := db.MessageSent(ctx, 2); err != nil { // repeat: no-op
		t.Fatal(err)
	}
	// Failed: gone, counted, recorded.
	clock.Add(time.Minute)
	if err := db.MessageFailed(ctx, 4, "550 no such user"); err != nil {
		t.Fatal(err)
	}
	if err := db.MessageFailed(ctx, 4, "again"); err != nil {
		t.Fatal(err)
	}
	if err := db.RetryMessage(ctx, 4, now, "gone"); err != nil { // no resurrection
		t.Fatal(err)
	}
	if n, _ := db.OutboxDepth(ctx); n != 2 {
		t.Fatalf("depth = %d, want 2", n)
	}
	c, _ := db.Counters(ctx)
	if c[herald.CounterEmailsSent] != 1 || c[herald.CounterEmailsFailed] != 1 {
		t.Fatalf("counters = %v", c)
	}
	failed, err := db.FailedMessages(ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(failed) != 1 {
		t.Fatalf("failed records = %d", len(failed))
	}
	if f := failed[0]; f.Kind != herald.KindWelcome || f.To != "now2@example.org" || f.Error != "550 no such user" || !f.At.Equal(clock.Now()) {
		t.Fatalf("failed record = %+v", f)
	}
	db.bolt.View(func(tx *bolt.Tx) error {
		if n := tx.Bucket(bucketOutboxDue).Stats().KeyN; n != 2 {
			t.Errorf("due index has %d entries, want 2", n)
		}
		return nil
	})
}

func TestFailedRecordsKeepTheNewest(t *testing.T) {
	ctx := context.Background()
	db := openTest(t, "", nil)
	const n = maxFailed + 25
	msgs := make([]*herald.OutboxMessage, n)
	for i := range msgs {
		msgs[i] = &herald.OutboxMessage{Kind: herald.KindDigest, To: fmt.Sprintf("f%d@example.org", i)}
	}
	if err := db.Enqueue(ctx, msgs...); err != nil {
		t.Fatal(err)
	}
	// Concurrently, so the failures share commits (and batches).
	var wg sync.WaitGroup
	for _, m := range msgs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := db.MessageFailed(ctx, m.ID, "550 "+m.To); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	failed, err := db.FailedMessages(ctx, 5000)
	if err != nil {
		t.Fatal(err)
	}
	if len(failed) != maxFailed {
		t.Fatalf("%d records kept, want %d", len(failed), maxFailed)
	}
	// The newest records are kept, newest first.
	for i, f := range failed {
		if want := uint64(n - i); f.ID != want {
			t.Fatalf("record %d has id %d, want %d", i, f.ID, want)
		}
		if f.Error != "550 "+f.To || f.Kind != herald.KindDigest {
			t.Fatalf("record %+v", f)
		}
	}
	db.bolt.View(func(tx *bolt.Tx) error {
		if k := tx.Bucket(bucketFailed).Stats().KeyN; k != maxFailed {
			t.Errorf("bucket holds %d records", k)
		}
		return nil
	})
	if c, _ := db.Counters(ctx); c[herald.CounterEmailsFailed] != n {
		t.Fatalf("emails_failed = %d", c[herald.CounterEmailsFailed])
	}
}

func TestTimeKeyOrder(t *testing.T) {
	times := []time.Time{
		{},
		time.Date(1900, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Unix(-1, 999999999),
		time.Unix(0, 0),
		time.Unix(0, 1),
		time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC),
	}
	for i, tm := range times {
		if got := keyTime(timeKey(tm)); !got.Equal(tm) {
			t.Errorf("round trip %v = %v", tm, got)
		}
		if i > 0 && string(timeKey(times[i-1])) >= string(timeKey(tm)) {
			t.Errorf("key of %v does not sort before %v", times[i-1], tm)
		}
	}
}
