package store

import (
	"context"
	"encoding/binary"
	"path/filepath"
	"testing"
	"time"

	"github.com/herald-dev/herald"
	bolt "go.etcd.io/bbolt"
)

// walked counts what OutboxDepth and CountRuns answer, the slow way.
func walked(t *testing.T, db *DB) (outbox, runs int) {
	t.Helper()
	_ = db.bolt.View(func(tx *bolt.Tx) error {
		outbox = tx.Bucket(bucketOutbox).Stats().KeyN
		runs = tx.Bucket(bucketRuns).Stats().KeyN
		return nil
	})
	return outbox, runs
}

// checkKeptCounts: the outbox depth and the run count are kept as counters
// (every scrape of /metrics and /api/v1/stats reads them, so they must not
// walk whole buckets), and the counters agree with the buckets.
func checkKeptCounts(t *testing.T, db *DB, wantOutbox, wantRuns int) {
	t.Helper()
	ctx := context.Background()
	c, err := db.Counters(ctx)
	if err != nil {
		t.Fatal(err)
	}
	wo, wr := walked(t, db)
	if wo != wantOutbox || wr != wantRuns {
		t.Fatalf("the buckets hold %d messages and %d runs, want %d and %d", wo, wr, wantOutbox, wantRuns)
	}
	if got, ok := c[herald.CounterOutbox]; !ok || got != int64(wantOutbox) {
		t.Errorf("outbox counter %d (kept: %v), want %d", got, ok, wantOutbox)
	}
	if got, ok := c[herald.CounterRuns]; !ok || got != int64(wantRuns) {
		t.Errorf("runs counter %d (kept: %v), want %d", got, ok, wantRuns)
	}
	if n, err := db.OutboxDepth(ctx); err != nil || n != wantOutbox {
		t.Errorf("OutboxDepth %d %v, want %d", n, err, wantOutbox)
	}
	if n, err := db.CountRuns(ctx); err != nil || n != wantRuns {
		t.Errorf("CountRuns %d %v, want %d", n, err, wantRuns)
	}
}

func TestOutboxAndRunCountsAreKept(t *testing.T) {
	ctx := context.Background()
	db := openTest(t, "", nil)
	checkKeptCounts(t, db, 0, 0)
	msg := func(to string) *herald.OutboxMessage {
		return &herald.OutboxMessage{Kind: herald.KindTest, To: to, MessageID: "<" + to + ">", Raw: []byte("x")}
	}
	if err := db.Enqueue(ctx, msg("a@example.org"), msg("b@example.org"), msg("c@example.org")); err != nil {
		t.Fatal(err)
	}
	// A reader's confirmation email, queued with the record.
	_, err := db.MutateSubscriber(ctx, "r@example.org", func(cur *herald.Subscriber) (*herald.Subscriber, []*herald.OutboxMessage, error) {
		next := *cur
		next.Status, next.Frequency = herald.StatusPending, herald.Daily
		return &next, []*herald.OutboxMessage{msg("r@example.org")}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	checkKeptCounts(t, db, 4, 0)
	due, err := db.DueMessages(ctx, time.Now().Add(time.Hour), 10)
	if err != nil || len(due) != 4 {
		t.Fatalf("due %d %v", len(due), err)
	}
	if err := db.RetryMessage(ctx, due[0].ID, time.Now().Add(time.Minute), "451"); err != nil {
		t.Fatal(err)
	}
	checkKeptCounts(t, db, 4, 0) // a retry is the same message
	if err := db.MessageSent(ctx, due[0].ID); err != nil {
		t.Fatal(err)
	}
	if err := db.MessageSent(ctx, due[0].ID); err != nil { // gone already: no change
		t.Fatal(err)
	}
	if err := db.MessageFailed(ctx, due[1].ID, "550"); err != nil {
		t.Fatal(err)
	}
	checkKeptCounts(t, db, 2, 0)
	if err := db.DeleteSubscriber(ctx, "r@example.org"); err != nil { // takes its queued mail along
		t.Fatal(err)
	}
	checkKeptCounts(t, db, 1, 0)
	for range 3 {
		if err := db.CreateRun(ctx, &herald.Run{Frequency: herald.Daily}); err != nil {
			t.Fatal(err)
		}
	}
	checkKeptCounts(t, db, 1, 3)
}

// A database from before the counters gets them counted once, at open.
func TestCountsOfAnOlderDatabase(t *testing.T) {
	path := filepath.Join(t.TempDir(), "old.db")
	bdb, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = bdb.Update(func(tx *bolt.Tx) error {
		meta, err := tx.CreateBucketIfNotExists(bucketMeta)
		if err != nil {
			return err
		}
		for _, m := range migrations[:4] {
			if err := m(tx); err != nil {
				return err
			}
		}
		v := make([]byte, 8)
		binary.BigEndian.PutUint64(v, 4)
		if err := meta.Put(keySchemaVersion, v); err != nil {
			return err
		}
		for i := range 5 {
			if err := putMessage(tx, &herald.OutboxMessage{ID: uint64(i + 1), To: "a@example.org", Raw: []byte("x")}); err != nil {
				return err
			}
		}
		for i := range 2 {
			if err := putRun(tx, &herald.Run{ID: uint64(i + 1), State: herald.RunDone}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	bdb.Close()
	db := openTest(t, path, nil)
	checkKeptCounts(t, db, 5, 2)
}
