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

func openTemp(t *testing.T) *DB {
	t.Helper()
	db, err := Open(context.Background(), filepath.Join(t.TempDir(), "h.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestArchive(t *testing.T) {
	ctx := context.Background()
	db := openTemp(t)
	if e, err := db.LatestArchive(ctx, herald.Daily); err != nil || e != nil {
		t.Fatalf("empty LatestArchive = %v, %v", e, err)
	}
	if _, err := db.Archive(ctx, 1); herald.ErrorCode(err) != herald.ENOTFOUND {
		t.Fatalf("missing entry: %v", err)
	}
	day := time.Date(2026, 1, 1, 7, 0, 0, 0, time.UTC)
	for id := uint64(1); id <= 45; id++ {
		f := herald.Daily
		if id%5 == 0 {
			f = herald.Weekly
		}
		e := &herald.ArchiveEntry{ID: id, Frequency: f, Date: day.AddDate(0, 0, int(id)), Cutoff: id * 10,
			Subject: "digest", Posts: 2, Titles: []string{"a", "b"}, HTML: "<p>x</p>", Text: "x"}
		if err := db.PutArchive(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.PutArchive(ctx, &herald.ArchiveEntry{Frequency: herald.Daily}); herald.ErrorCode(err) != herald.EINVALID {
		t.Errorf("entry without id: %v", err)
	}
	if err := db.PutArchive(ctx, &herald.ArchiveEntry{ID: 99, Frequency: "hourly"}); herald.ErrorCode(err) != herald.EINVALID {
		t.Errorf("bad frequency: %v", err)
	}
	// Pages of 20, newest first, with a next value until the end.
	var ids []uint64
	var before uint64
	for pages := 0; ; pages++ {
		es, next, err := db.ListArchive(ctx, 20, before)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range es {
			ids = append(ids, e.ID)
		}
		if next == 0 {
			if pages != 2 {
				t.Errorf("%d pages, want 3", pages+1)
			}
			break
		}
		before = next
	}
	if len(ids) != 45 || ids[0] != 45 || ids[44] != 1 {
		t.Fatalf("listed %v", ids)
	}
	for i := 1; i < len(ids); i++ {
		if ids[i] >= ids[i-1] {
			t.Fatalf("not newest first: %v", ids)
		}
	}
	// An exact page ends without a next page.
	if es, next, _ := db.ListArchive(ctx, 5, 6); len(es) != 5 || next != 0 {
		t.Errorf("last exact page: %d entries, next %d", len(es), next)
	}
	d, err := db.LatestArchive(ctx, herald.Daily)
	if err != nil || d == nil || d.ID != 44 {
		t.Fatalf("latest daily = %+v, %v", d, err)
	}
	w, err := db.LatestArchive(ctx, herald.Weekly)
	if err != nil || w == nil || w.ID != 45 || w.Cutoff != 450 {
		t.Fatalf("latest weekly = %+v, %v", w, err)
	}
	if e, _ := db.LatestArchive(ctx, herald.Instant); e != nil {
		t.Errorf("latest instant = %+v", e)
	}
	// Replacing an entry keeps one, and moves its frequency index.
	if err := db.PutArchive(ctx, &herald.ArchiveEntry{ID: 45, Frequency: herald.Daily, Subject: "again"}); err != nil {
		t.Fatal(err)
	}
	if d, _ := db.LatestArchive(ctx, herald.Daily); d.ID != 45 || d.Subject != "again" {
		t.Errorf("latest daily after replace = %+v", d)
	}
	if w, _ := db.LatestArchive(ctx, herald.Weekly); w.ID != 40 {
		t.Errorf("latest weekly after replace = %+v", w)
	}
	if e, err := db.Archive(ctx, 45); err != nil || e.Subject != "again" {
		t.Errorf("Archive(45) = %+v, %v", e, err)
	}
}

// A database written by the first schema opens, gains the archive, and
// keeps its data.
func TestMigrateSchema1ToArchive(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "old.db")
	bdb, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = bdb.Update(func(tx *bolt.Tx) error {
		if err := migrations[0](tx); err != nil {
			return err
		}
		meta, err := tx.CreateBucketIfNotExists(bucketMeta)
		if err != nil {
			return err
		}
		v := make([]byte, 8)
		binary.BigEndian.PutUint64(v, 1)
		if err := meta.Put(keySchemaVersion, v); err != nil {
			return err
		}
		return tx.Bucket(bucketSettings).Put([]byte("kept"), []byte("yes"))
	})
	if err != nil {
		t.Fatal(err)
	}
	bdb.Close()

	db, err := Open(ctx, path, Options{})
	if err != nil {
		t.Fatalf("open a schema 1 database: %v", err)
	}
	defer db.Close()
	if v, _ := db.Setting(ctx, "kept"); string(v) != "yes" {
		t.Errorf("data lost in the migration: %q", v)
	}
	if err := db.PutArchive(ctx, &herald.ArchiveEntry{ID: 3, Frequency: herald.Weekly, Subject: "s"}); err != nil {
		t.Fatalf("archive after migration: %v", err)
	}
	_ = db.bolt.View(func(tx *bolt.Tx) error {
		if v := btoi(tx.Bucket(bucketMeta).Get(keySchemaVersion)); v != uint64(SchemaVersion()) || v < 2 {
			t.Errorf("schema version %d after migration, want %d", v, SchemaVersion())
		}
		return nil
	})
}

func TestDeleteSubscriberIfAndCounters(t *testing.T) {
	ctx := context.Background()
	db := openTemp(t)
	for _, e := range []string{"a@example.org", "b@example.org"} {
		_, err := db.MutateSubscriber(ctx, e, func(cur *herald.Subscriber) (*herald.Subscriber, []*herald.OutboxMessage, error) {
			n := *cur
			n.Status, n.Frequency = herald.StatusPending, herald.Daily
			return &n, []*herald.OutboxMessage{{Kind: herald.KindConfirm, To: e, MessageID: "<" + e + ">", Raw: []byte("x")}}, nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	pending := func(s *herald.Subscriber) bool { return s.Status == herald.StatusPending }
	if ok, err := db.DeleteSubscriberIf(ctx, "a@example.org", func(*herald.Subscriber) bool { return false }); ok || err != nil {
		t.Fatalf("false condition deleted: %v %v", ok, err)
	}
	if ok, err := db.DeleteSubscriberIf(ctx, "a@example.org", pending); !ok || err != nil {
		t.Fatalf("delete: %v %v", ok, err)
	}
	if ok, err := db.DeleteSubscriberIf(ctx, "nobody@example.org", pending); ok || err != nil {
		t.Fatalf("unknown address: %v %v", ok, err)
	}
	if _, err := db.SubscriberByEmail(ctx, "a@example.org"); herald.ErrorCode(err) != herald.ENOTFOUND {
		t.Fatalf("still there: %v", err)
	}
	if n, _ := db.OutboxDepth(ctx); n != 1 {
		t.Errorf("outbox depth %d, want 1 (the erased reader's message goes too)", n)
	}
	counts, _ := db.CountSubscribers(ctx)
	if counts[herald.StatusPending][herald.Daily] != 1 {
		t.Errorf("counts %v", counts)
	}

	if err := db.AddCounter(ctx, herald.CounterBouncesSoft, 2); err != nil {
		t.Fatal(err)
	}
	if err := db.AddCounter(ctx, herald.CounterBouncesSoft, 1); err != nil {
		t.Fatal(err)
	}
	if err := db.AddCounter(ctx, "", 1); herald.ErrorCode(err) != herald.EINVALID {
		t.Errorf("empty name: %v", err)
	}
	c, _ := db.Counters(ctx)
	if c[herald.CounterBouncesSoft] != 3 {
		t.Errorf("counters %v", c)
	}
}
