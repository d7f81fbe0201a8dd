package store

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/herald-dev/herald"
)

func BenchmarkSubCodec(b *testing.B) {
	s := fullSubscriber(b)
	s.ConfirmsSent = nil
	rec := subRecord(*s)
	js, _ := json.Marshal(&rec)
	bin := encodeSub(nil, s)
	b.Run("decode-binary", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var s herald.Subscriber
			if err := decodeSub(bin, &s); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("decode-json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var s herald.Subscriber
			if err := decodeSub(js, &s); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encode-binary", func(b *testing.B) {
		b.ReportAllocs()
		buf := make([]byte, 0, 256)
		for b.Loop() {
			buf = encodeSub(buf[:0], s)
		}
	})
	b.Run("encode-json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			r := subRecord(*s)
			if _, err := json.Marshal(&r); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// The subscriber generation moves after every commit that changes what
// the digest must re-read for (status, frequency, address, erasure), and
// stays put for the deliveries a run records itself.
func TestSubscriberGeneration(t *testing.T) {
	ctx := context.Background()
	db := openTest(t, "", nil)
	a := create(t, db, "a@example.org", herald.StatusConfirmed, herald.Daily)
	create(t, db, "b@example.org", herald.StatusConfirmed, herald.Daily)
	run := &herald.Run{Frequency: herald.Daily, State: herald.RunRunning}
	if err := db.CreateRun(ctx, run); err != nil {
		t.Fatal(err)
	}
	set := func(email string, fn func(s *herald.Subscriber)) func() error {
		return func() error {
			_, err := db.MutateSubscriber(ctx, email, func(cur *herald.Subscriber) (*herald.Subscriber, []*herald.OutboxMessage, error) {
				fn(cur)
				return cur, nil, nil
			})
			return err
		}
	}
	for _, c := range []struct {
		what  string
		do    func() error
		moves bool
	}{
		{"a new reader", set("c@example.org", func(s *herald.Subscriber) { s.Status = herald.StatusPending }), false},
		{"a name", set("a@example.org", func(s *herald.Subscriber) { s.Name = "Ann" }), false},
		{"a delivery", func() error {
			return db.RecordDeliveries(ctx, 3, herald.Delivery{RunID: run.ID, SubscriberID: a.ID, Cursor: 1, Outcome: "sent"})
		}, false},
		{"a slot and a pause's end, recorded by a run", func() error {
			run2 := &herald.Run{Frequency: herald.Daily, State: herald.RunRunning}
			if err := db.CreateRun(ctx, run2); err != nil {
				return err
			}
			return db.RecordDeliveries(ctx, 3, herald.Delivery{RunID: run2.ID, SubscriberID: a.ID, Cursor: 1, Outcome: "skipped",
				Slot: time.Date(2025, 3, 1, 7, 0, 0, 0, time.UTC), EndPause: true})
		}, false},
		{"topics", set("a@example.org", func(s *herald.Subscriber) { s.Topics = herald.TopicList{"Courts"} }), true},
		{"a time zone", set("a@example.org", func(s *herald.Subscriber) { s.Timezone = "Asia/Kolkata" }), true},
		{"a pause", set("a@example.org", func(s *herald.Subscriber) {
			u := time.Date(2025, 4, 1, 0, 0, 0, 0, time.UTC)
			s.PausedUntil = &u
		}), true},
		{"the same pause again", set("a@example.org", func(s *herald.Subscriber) {
			u := time.Date(2025, 4, 1, 2, 0, 0, 0, time.FixedZone("X", 7200))
			s.PausedUntil = &u
		}), false},
		{"a frequency", set("a@example.org", func(s *herald.Subscriber) { s.Frequency = herald.Weekly }), true},
		{"an unsubscribe", set("a@example.org", func(s *herald.Subscriber) { s.Status = herald.StatusUnsubscribed }), true},
		{"an address", set("b@example.org", func(s *herald.Subscriber) { s.Email = "b2@example.org" }), true},
		{"a bounce", func() error {
			run2 := &herald.Run{Frequency: herald.Daily, State: herald.RunRunning}
			if err := db.CreateRun(ctx, run2); err != nil {
				return err
			}
			b, err := db.SubscriberByEmail(ctx, "b2@example.org")
			if err != nil {
				return err
			}
			return db.RecordDeliveries(ctx, 1, herald.Delivery{RunID: run2.ID, SubscriberID: b.ID, Outcome: "failed", Permanent: true})
		}, true},
		{"an erasure", func() error { return db.DeleteSubscriber(ctx, "b2@example.org") }, true},
		{"a failed write", set("a@example.org", func(s *herald.Subscriber) { s.Status = "nonsense" }), false},
	} {
		before := db.SubscriberGeneration()
		err := c.do()
		if err != nil && c.what != "a failed write" {
			t.Fatalf("%s: %v", c.what, err)
		}
		if moved := db.SubscriberGeneration() != before; moved != c.moves {
			t.Errorf("%s: generation moved %v, want %v", c.what, moved, c.moves)
		}
	}
}

// BenchmarkScanSubscribers is a digest run's (and the janitor's) read of
// every reader, a page per read transaction.
func BenchmarkScanSubscribers(b *testing.B) {
	ctx := context.Background()
	db := openBench(b)
	const readers = 20000
	bulkInsert(b, db, readers, func(i int) *herald.Subscriber {
		return &herald.Subscriber{Email: fmt.Sprintf("r%d@example.org", i), Name: "A Reader", Status: herald.StatusConfirmed, Frequency: herald.Daily, Source: "import"}
	})
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		var after uint64
		for {
			subs, err := db.ScanSubscribers(ctx, after, 1000)
			if err != nil {
				b.Fatal(err)
			}
			if len(subs) == 0 {
				break
			}
			n += len(subs)
			after = subs[len(subs)-1].ID
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n), "ns/reader")
}

// BenchmarkSubscriberByID is one reader read in a transaction of its own
// (the digest's re-read when readers changed meanwhile, the outbox's
// drop check, the links' pages).
func BenchmarkSubscriberByID(b *testing.B) {
	ctx := context.Background()
	db := openBench(b)
	const readers = 20000
	bulkInsert(b, db, readers, func(i int) *herald.Subscriber {
		return &herald.Subscriber{Email: fmt.Sprintf("r%d@example.org", i), Status: herald.StatusConfirmed, Frequency: herald.Daily}
	})
	b.ReportAllocs()
	i := uint64(0)
	for b.Loop() {
		i++
		if _, err := db.SubscriberByID(ctx, i%readers+1); err != nil {
			b.Fatal(err)
		}
	}
}
