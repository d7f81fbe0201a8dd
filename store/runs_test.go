package store

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/herald-dev/herald"
)

func TestRuns(t *testing.T) {
	ctx := context.Background()
	clock := newClock()
	db := openTest(t, "", clock)

	if _, err := db.Run(ctx, 1); herald.ErrorCode(err) != herald.ENOTFOUND {
		t.Fatalf("missing run: %v", err)
	}
	for i := range 5 {
		r := &herald.Run{Frequency: herald.Daily, Trigger: "schedule", Cutoff: uint64(i * 10)}
		if err := db.CreateRun(ctx, r); err != nil {
			t.Fatal(err)
		}
		if r.ID != uint64(i+1) || r.State != herald.RunQueued || !r.CreatedAt.Equal(clock.Now()) {
			t.Fatalf("created = %+v", r)
		}
	}
	got, err := db.Run(ctx, 3)
	if err != nil || got.Cutoff != 20 || got.Trigger != "schedule" {
		t.Fatalf("run 3 = %+v, %v", got, err)
	}

	// Runs 1 and 4 finish, 2 starts.
	started := clock.Now().Add(time.Minute)
	for id, st := range map[uint64]herald.RunState{1: herald.RunDone, 4: herald.RunFailed, 2: herald.RunRunning} {
		r, err := db.UpdateRun(ctx, id, func(r *herald.Run) error {
			r.State = st
			r.StartedAt = &started
			r.Total = 7
			return nil
		})
		if err != nil || r.State != st || r.ID != id {
			t.Fatalf("UpdateRun %d = %+v, %v", id, r, err)
		}
	}
	open, err := db.UnfinishedRuns(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(open) != 3 || open[0].ID != 2 || open[1].ID != 3 || open[2].ID != 5 {
		t.Fatalf("unfinished = %v", open)
	}
	if open[0].StartedAt == nil || !open[0].StartedAt.Equal(started) || open[0].Total != 7 {
		t.Fatalf("run 2 = %+v", open[0])
	}

	// An error from fn saves nothing and comes back as it is.
	boom := errors.New("boom")
	if _, err := db.UpdateRun(ctx, 5, func(r *herald.Run) error { r.State = herald.RunDone; return boom }); !errors.Is(err, boom) {
		t.Fatalf("fn error: %v", err)
	}
	if r, _ := db.Run(ctx, 5); r.State != herald.RunQueued {
		t.Fatalf("fn error saved state %s", r.State)
	}
	if _, err := db.UpdateRun(ctx, 9, func(*herald.Run) error { return nil }); herald.ErrorCode(err) != herald.ENOTFOUND {
		t.Fatalf("update missing: %v", err)
	}

	list, err := db.ListRuns(ctx, 2, 0)
	if err != nil || len(list) != 2 || list[0].ID != 5 || list[1].ID != 4 {
		t.Fatalf("ListRuns(2, 0) = %v, %v", list, err)
	}
	list, _ = db.ListRuns(ctx, 10, 4)
	if len(list) != 3 || list[0].ID != 3 || list[2].ID != 1 {
		t.Fatalf("ListRuns(10, 4) = %v", list)
	}
	if n, _ := db.CountRuns(ctx); n != 5 {
		t.Fatalf("CountRuns = %d", n)
	}
}

// deliveryFixture makes a confirmed reader (cursor 0, no runs yet) and a run.
func deliveryFixture(t *testing.T, db *DB, name string) (*herald.Subscriber, *herald.Run) {
	t.Helper()
	s := create(t, db, name+"@example.org", herald.StatusConfirmed, herald.Daily)
	r := &herald.Run{Frequency: herald.Daily, State: herald.RunRunning}
	if err := db.CreateRun(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	return s, r
}

func TestRecordDeliveries(t *testing.T) {
	ctx := context.Background()
	clock := newClock()
	db := openTest(t, "", clock)
	counters := func() (int64, int64) {
		c, err := db.Counters(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return c[herald.CounterEmailsSent], c[herald.CounterEmailsFailed]
	}
	sub := func(id uint64) *herald.Subscriber {
		s, err := db.SubscriberByID(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	run := func(id uint64) *herald.Run {
		r, err := db.Run(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}

	t.Run("sent", func(t *testing.T) {
		s, r := deliveryFixture(t, db, "f1")
		db.MutateSubscriberByID(ctx, s.ID, func(cur *herald.Subscriber) (*herald.Subscriber, []*herald.OutboxMessage, error) {
			cur.Bounces = 2
			return cur, nil, nil
		})
		sent0, failed0 := counters()
		d := herald.Delivery{RunID: r.ID, SubscriberID: s.ID, Cursor: 7, Outcome: "sent"}
		if err := db.RecordDeliveries(ctx, 3, d); err != nil {
			t.Fatal(err)
		}
		got := sub(s.ID)
		if got.Cursor != 7 || got.LastRunID != r.ID || got.Bounces != 0 {
			t.Fatalf("after sent: %+v", got)
		}
		if rr := run(r.ID); rr.Sent != 1 || rr.Failed != 0 || rr.Skipped != 0 {
			t.Fatalf("run = %+v", rr)
		}
		// Replay: nothing changes.
		if err := db.RecordDeliveries(ctx, 3, d, d); err != nil {
			t.Fatal(err)
		}
		if rr := run(r.ID); rr.Sent != 1 {
			t.Fatalf("replay counted: sent = %d", rr.Sent)
		}
		if sent, failed := counters(); sent != sent0+1 || failed != failed0 {
			t.Fatalf("counters moved by %d, %d; want 1, 0", sent-sent0, failed-failed0)
		}
		// An older run replayed later changes nothing either.
		if err := db.RecordDeliveries(ctx, 3, herald.Delivery{RunID: r.ID - 1, SubscriberID: s.ID, Cursor: 99, Outcome: "sent"}); err != nil {
			t.Fatal(err)
		}
		if got := sub(s.ID); got.Cursor != 7 || got.LastRunID != r.ID {
			t.Fatalf("older run applied: %+v", got)
		}
	})

	t.Run("skipped", func(t *testing.T) {
		s, r := deliveryFixture(t, db, "f2")
		sent0, failed0 := counters()
		if err := db.RecordDeliveries(ctx, 3, herald.Delivery{RunID: r.ID, SubscriberID: s.ID, Cursor: 4, Outcome: "skipped"}); err != nil {
			t.Fatal(err)
		}
		if got := sub(s.ID); got.Cursor != 4 || got.LastRunID != r.ID {
			t.Fatalf("after skipped: %+v", got)
		}
		if rr := run(r.ID); rr.Skipped != 1 || rr.Sent != 0 {
			t.Fatalf("run = %+v", rr)
		}
		if sent, failed := counters(); sent != sent0 || failed != failed0 {
			t.Fatal("skipped moved the email counters")
		}
	})

	t.Run("cursor never moves back", func(t *testing.T) {
		s, r := deliveryFixture(t, db, "f3")
		db.MutateSubscriberByID(ctx, s.ID, func(cur *herald.Subscriber) (*herald.Subscriber, []*herald.OutboxMessage, error) {
			cur.Cursor = 10
			return cur, nil, nil
		})
		if err := db.RecordDeliveries(ctx, 3, herald.Delivery{RunID: r.ID, SubscriberID: s.ID, Cursor: 5, Outcome: "sent"}); err != nil {
			t.Fatal(err)
		}
		if got := sub(s.ID); got.Cursor != 10 || got.LastRunID != r.ID {
			t.Fatalf("cursor = %d, last run %d", got.Cursor, got.LastRunID)
		}
	})

	t.Run("temporary failure", func(t *testing.T) {
		s, r := deliveryFixture(t, db, "f4")
		_, failed0 := counters()
		clock.Add(time.Second)
		if err := db.RecordDeliveries(ctx, 3, herald.Delivery{RunID: r.ID, SubscriberID: s.ID, Cursor: 9, Outcome: "failed", Error: "421 busy"}); err != nil {
			t.Fatal(err)
		}
		got := sub(s.ID)
		if got.Cursor != 0 || got.LastRunID != r.ID || got.Bounces != 0 || got.Status != herald.StatusConfirmed {
			t.Fatalf("after temporary failure: %+v", got)
		}
		rr := run(r.ID)
		if rr.Failed != 1 || len(rr.Failures) != 1 || rr.Failures[0].Email != s.Email ||
			rr.Failures[0].Error != "421 busy" || !rr.Failures[0].At.Equal(clock.Now()) {
			t.Fatalf("run = %+v", rr)
		}
		if _, failed := counters(); failed != failed0+1 {
			t.Fatalf("emails_failed moved by %d", failed-failed0)
		}
	})

	t.Run("permanent failures bounce at the limit", func(t *testing.T) {
		s, _ := deliveryFixture(t, db, "f5")
		for i := 1; i <= 3; i++ {
			r := &herald.Run{Frequency: herald.Daily}
			db.CreateRun(ctx, r)
			d := herald.Delivery{RunID: r.ID, SubscriberID: s.ID, Outcome: "failed", Permanent: true, Error: "550 no such user"}
			if err := db.RecordDeliveries(ctx, 3, d, d); err != nil { // twice: counted once
				t.Fatal(err)
			}
			got := sub(s.ID)
			if got.Bounces != i {
				t.Fatalf("after %d failures: bounces = %d", i, got.Bounces)
			}
			if want := map[bool]herald.Status{false: herald.StatusConfirmed, true: herald.StatusBounced}[i == 3]; got.Status != want {
				t.Fatalf("after %d failures: status %s, want %s", i, got.Status, want)
			}
		}
		checkCounts(t, db)
	})

	t.Run("bounce limit 0 never bounces; only confirmed readers bounce", func(t *testing.T) {
		s, _ := deliveryFixture(t, db, "f6")
		u := create(t, db, "unsub@example.org", herald.StatusUnsubscribed, herald.Daily)
		for range 5 {
			r := &herald.Run{Frequency: herald.Daily}
			db.CreateRun(ctx, r)
			err := db.RecordDeliveries(ctx, 0,
				herald.Delivery{RunID: r.ID, SubscriberID: s.ID, Outcome: "failed", Permanent: true})
			if err == nil {
				err = db.RecordDeliveries(ctx, 1,
					herald.Delivery{RunID: r.ID, SubscriberID: u.ID, Outcome: "failed", Permanent: true})
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		if got := sub(s.ID); got.Status != herald.StatusConfirmed || got.Bounces != 5 {
			t.Fatalf("limit 0: %+v", got)
		}
		if got := sub(u.ID); got.Status != herald.StatusUnsubscribed || got.Bounces != 5 {
			t.Fatalf("unsubscribed: %+v", got)
		}
	})

	t.Run("partial deliveries", func(t *testing.T) {
		s, r := deliveryFixture(t, db, "f7")
		sent0, _ := counters()
		post := func(c uint64) herald.Delivery {
			return herald.Delivery{RunID: r.ID, SubscriberID: s.ID, Cursor: c, Outcome: "sent", Partial: true}
		}
		if err := db.RecordDeliveries(ctx, 3, post(5)); err != nil {
			t.Fatal(err)
		}
		if got := sub(s.ID); got.Cursor != 5 || got.LastRunID != 0 {
			t.Fatalf("after partial 5: %+v", got)
		}
		// A replay of post 5 and the next post, in one call.
		if err := db.RecordDeliveries(ctx, 3, post(5), post(6)); err != nil {
			t.Fatal(err)
		}
		if got := sub(s.ID); got.Cursor != 6 || got.LastRunID != 0 {
			t.Fatalf("after partial 6: %+v", got)
		}
		if rr := run(r.ID); rr.Sent != 2 {
			t.Fatalf("run sent = %d, want 2", rr.Sent)
		}
		// The run closes the reader: a full delivery marks it done.
		if err := db.RecordDeliveries(ctx, 3, herald.Delivery{RunID: r.ID, SubscriberID: s.ID, Cursor: 6, Outcome: "skipped"}); err != nil {
			t.Fatal(err)
		}
		if got := sub(s.ID); got.Cursor != 6 || got.LastRunID != r.ID {
			t.Fatalf("after closing: %+v", got)
		}
		// Once the run is done with the reader, partials are replays too.
		if err := db.RecordDeliveries(ctx, 3, post(7)); err != nil {
			t.Fatal(err)
		}
		if got := sub(s.ID); got.Cursor != 6 {
			t.Fatalf("partial after done moved the cursor to %d", got.Cursor)
		}
		if sent, _ := counters(); sent != sent0+2 {
			t.Fatalf("emails_sent moved by %d, want 2", sent-sent0)
		}
	})

	t.Run("erased reader is skipped", func(t *testing.T) {
		s, r := deliveryFixture(t, db, "f8")
		other, _ := deliveryFixture(t, db, "f9")
		db.DeleteSubscriber(ctx, s.Email)
		err := db.RecordDeliveries(ctx, 3,
			herald.Delivery{RunID: r.ID, SubscriberID: s.ID, Cursor: 3, Outcome: "sent"},
			herald.Delivery{RunID: r.ID, SubscriberID: other.ID, Cursor: 3, Outcome: "sent"})
		if err != nil {
			t.Fatal(err)
		}
		if rr := run(r.ID); rr.Sent != 1 {
			t.Fatalf("run sent = %d, want 1", rr.Sent)
		}
		if _, err := db.SubscriberByID(ctx, s.ID); herald.ErrorCode(err) != herald.ENOTFOUND {
			t.Fatalf("erased reader came back: %v", err)
		}
	})

	t.Run("bad input changes nothing", func(t *testing.T) {
		s, r := deliveryFixture(t, db, "f10")
		good := herald.Delivery{RunID: r.ID, SubscriberID: s.ID, Cursor: 3, Outcome: "sent"}
		if err := db.RecordDeliveries(ctx, 3, good, herald.Delivery{RunID: r.ID, SubscriberID: s.ID, Outcome: "bogus"}); herald.ErrorCode(err) != herald.EINVALID {
			t.Fatalf("bad outcome: %v", err)
		}
		if err := db.RecordDeliveries(ctx, 3, good, herald.Delivery{RunID: 9999, SubscriberID: s.ID, Outcome: "sent"}); herald.ErrorCode(err) != herald.ENOTFOUND {
			t.Fatalf("unknown run: %v", err)
		}
		if got := sub(s.ID); got.Cursor != 0 || got.LastRunID != 0 {
			t.Fatalf("a refused call changed the reader: %+v", got)
		}
		if err := db.RecordDeliveries(ctx, 3); err != nil {
			t.Fatalf("no deliveries: %v", err)
		}
	})

	t.Run("run keeps the last 50 failures", func(t *testing.T) {
		r := &herald.Run{Frequency: herald.Daily}
		db.CreateRun(ctx, r)
		var ds []herald.Delivery
		bulkInsert(t, db, 60, func(i int) *herald.Subscriber {
			return &herald.Subscriber{Email: fmt.Sprintf("many%02d@example.org", i), Status: herald.StatusConfirmed, Frequency: herald.Daily}
		})
		page, _, _ := db.ListSubscribers(ctx, herald.SubscriberFilter{Query: "many", Limit: 1000})
		for i, s := range page {
			ds = append(ds, herald.Delivery{RunID: r.ID, SubscriberID: s.ID, Outcome: "failed", Error: fmt.Sprint(i)})
		}
		if err := db.RecordDeliveries(ctx, 3, ds...); err != nil {
			t.Fatal(err)
		}
		rr := run(r.ID)
		if rr.Failed != 60 || len(rr.Failures) != 50 || rr.Failures[0].Error != "10" || rr.Failures[49].Error != "59" {
			t.Fatalf("failed %d, %d failures kept, first %q", rr.Failed, len(rr.Failures), rr.Failures[0].Error)
		}
	})
}

// Many workers recording at once (batched) lose nothing and count nothing twice.
func TestRecordDeliveriesConcurrent(t *testing.T) {
	ctx := context.Background()
	db := openTest(t, "", nil)
	const n = 200
	bulkInsert(t, db, n, func(i int) *herald.Subscriber {
		return &herald.Subscriber{Email: fmt.Sprintf("c%d@example.org", i), Status: herald.StatusConfirmed, Frequency: herald.Daily}
	})
	r := &herald.Run{Frequency: herald.Daily}
	db.CreateRun(ctx, r)
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Every worker records every reader: 7 of 8 are replays.
			for i := range n {
				id := uint64((i+w*25)%n + 1)
				outcome := []herald.Outcome{herald.OutcomeSent, herald.OutcomeSkipped, herald.OutcomeFailed}[id%3]
				d := herald.Delivery{RunID: r.ID, SubscriberID: id, Cursor: 42, Outcome: outcome, Permanent: true}
				if err := db.RecordDeliveries(ctx, 1, d); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	rr, _ := db.Run(ctx, r.ID)
	wantSent, wantSkipped, wantFailed := 0, 0, 0
	for id := 1; id <= n; id++ {
		switch id % 3 {
		case 0:
			wantSent++
		case 1:
			wantSkipped++
		case 2:
			wantFailed++
		}
	}
	if rr.Sent != wantSent || rr.Skipped != wantSkipped || rr.Failed != wantFailed {
		t.Fatalf("run = sent %d skipped %d failed %d, want %d %d %d", rr.Sent, rr.Skipped, rr.Failed, wantSent, wantSkipped, wantFailed)
	}
	c, _ := db.Counters(ctx)
	if c[herald.CounterEmailsSent] != int64(wantSent) || c[herald.CounterEmailsFailed] != int64(wantFailed) {
		t.Fatalf("counters = %v", c)
	}
	counts, _ := db.CountSubscribers(ctx)
	if counts[herald.StatusBounced][herald.Daily] != wantFailed {
		t.Fatalf("bounced = %d, want %d", counts[herald.StatusBounced][herald.Daily], wantFailed)
	}
	checkCounts(t, db)
}
