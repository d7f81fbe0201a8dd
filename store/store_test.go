package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/herald-dev/herald"
	bolt "go.etcd.io/bbolt"
)

// testClock is a settable clock for Options.Now.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *testClock {
	return &testClock{t: time.Date(2025, 3, 1, 7, 0, 0, 0, time.UTC)}
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// waitFor polls cond until it holds, a minute at most.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within a minute", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func openTest(t testing.TB, path string, clock *testClock) *DB {
	t.Helper()
	if path == "" {
		path = filepath.Join(t.TempDir(), "herald.db")
	}
	opts := Options{LockTimeout: 100 * time.Millisecond}
	if clock != nil {
		opts.Now = clock.Now
	}
	db, err := Open(context.Background(), path, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	// Sequential callers would each wait out the 10ms batch window;
	// concurrent tests still share batches at 1ms.
	db.bolt.MaxBatchDelay = time.Millisecond
	t.Cleanup(func() { db.Close() })
	return db
}

// create makes a subscriber through MutateSubscriber.
func create(t testing.TB, db *DB, email string, st herald.Status, f herald.Frequency) *herald.Subscriber {
	t.Helper()
	s, err := db.MutateSubscriber(context.Background(), email, func(cur *herald.Subscriber) (*herald.Subscriber, []*herald.OutboxMessage, error) {
		cur.Status, cur.Frequency = st, f
		return cur, nil, nil
	})
	if err != nil {
		t.Fatalf("create %s: %v", email, err)
	}
	return s
}

// bulkInsert writes many subscribers in one transaction, through the same
// putSub as MutateSubscriber, for tests that need thousands.
func bulkInsert(t testing.TB, db *DB, n int, mk func(i int) *herald.Subscriber) {
	t.Helper()
	err := db.bolt.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketSubs)
		for i := range n {
			s := mk(i)
			id, err := b.NextSequence()
			if err != nil {
				return err
			}
			s.ID = id
			if err := db.putSub(tx, nil, s); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestOpenCreatesDirAndReopenKeepsData(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "a", "b", "herald.db")
	db, err := Open(ctx, path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if db.Path() != path {
		t.Errorf("Path = %q, want %q", db.Path(), path)
	}
	fi, err := os.Stat(filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o700 {
		t.Errorf("dir mode = %v, want 0700", fi.Mode().Perm())
	}
	confirmed := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	want := &herald.Subscriber{
		Email: "ann@example.org", Name: "Ann", Status: herald.StatusConfirmed, Frequency: herald.Weekly,
		ConfirmedAt: &confirmed, UnsubscribedAt: &confirmed, Nonce: 42,
		ConfirmsSent: []time.Time{confirmed}, LastRunID: 7, Bounces: 2, Source: "import",
	}
	if _, err := db.UpsertPost(ctx, &herald.Post{GUID: "g1", URL: "https://b/1", Title: "One", Content: "<p>body</p>", Silent: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.MutateSubscriber(ctx, want.Email, func(cur *herald.Subscriber) (*herald.Subscriber, []*herald.OutboxMessage, error) {
		s := *want
		return &s, []*herald.OutboxMessage{{Kind: herald.KindWelcome, To: want.Email, Raw: []byte("hi\r\n")}}, nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := db.PutSetting(ctx, "secret", []byte{0, 1, 2}); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	db = openTest(t, path, nil)
	got, err := db.SubscriberByEmail(ctx, want.Email)
	if err != nil {
		t.Fatal(err)
	}
	if got.Name != "Ann" || got.Status != herald.StatusConfirmed || got.Frequency != herald.Weekly ||
		got.Nonce != 42 || got.LastRunID != 7 || got.Bounces != 2 || got.Source != "import" ||
		got.Cursor != 1 || got.UnsubscribedAt == nil || !got.UnsubscribedAt.Equal(confirmed) ||
		len(got.ConfirmsSent) != 1 || got.UpdatedAt.IsZero() || got.CreatedAt.IsZero() {
		t.Errorf("after reopen: %+v", got)
	}
	p, err := db.PostByID(ctx, 1)
	if err != nil || p.Content != "<p>body</p>" || !p.Silent || p.FoundAt.IsZero() {
		t.Errorf("post after reopen: %+v, %v", p, err)
	}
	if v, _ := db.Setting(ctx, "secret"); !bytes.Equal(v, []byte{0, 1, 2}) {
		t.Errorf("setting after reopen = %v", v)
	}
	if n, _ := db.OutboxDepth(ctx); n != 1 {
		t.Errorf("outbox depth after reopen = %d", n)
	}
}

func TestOpenLocked(t *testing.T) {
	path := filepath.Join(t.TempDir(), "herald.db")
	openTest(t, path, nil)
	// bbolt waits for the lock for ever without the timeout: that Open
	// returns at all is the timeout working.
	var db2 *DB
	var err error
	opened := make(chan struct{})
	go func() {
		defer close(opened)
		db2, err = Open(context.Background(), path, Options{LockTimeout: 100 * time.Millisecond})
	}()
	select {
	case <-opened:
	case <-time.After(time.Minute):
		t.Fatal("the second Open is still waiting for the lock")
	}
	if err == nil {
		db2.Close()
		t.Fatal("second Open succeeded")
	}
	if !errors.Is(err, ErrLocked) {
		t.Errorf("err = %v, want ErrLocked", err)
	}
	if err.Error() != "store: database is in use by another herald process" {
		t.Errorf("message = %q", err.Error())
	}
}

func TestOpenRefusesNewerSchema(t *testing.T) {
	path := filepath.Join(t.TempDir(), "herald.db")
	db := openTest(t, path, nil)
	db.Close()

	bdb, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = bdb.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketMeta).Put(keySchemaVersion, itob(uint64(SchemaVersion()+1)))
	})
	bdb.Close()
	if err != nil {
		t.Fatal(err)
	}

	_, err = Open(context.Background(), path, Options{})
	if !errors.Is(err, ErrSchemaTooNew) {
		t.Fatalf("err = %v, want ErrSchemaTooNew", err)
	}
	want := fmt.Sprintf("schema version %d, this herald knows up to %d", SchemaVersion()+1, SchemaVersion())
	if !bytes.Contains([]byte(err.Error()), []byte(want)) {
		t.Errorf("message %q lacks %q", err, want)
	}
	// The refusal must leave the file unlocked and untouched.
	bdb, err = bolt.Open(path, 0o600, &bolt.Options{Timeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer bdb.Close()
	bdb.View(func(tx *bolt.Tx) error {
		if v := btoi(tx.Bucket(bucketMeta).Get(keySchemaVersion)); v != uint64(SchemaVersion()+1) {
			t.Errorf("version rewritten to %d", v)
		}
		return nil
	})
}

func TestOpenWritesSchemaVersion(t *testing.T) {
	db := openTest(t, "", nil)
	db.bolt.View(func(tx *bolt.Tx) error {
		if v := btoi(tx.Bucket(bucketMeta).Get(keySchemaVersion)); v != uint64(SchemaVersion()) || v == 0 {
			t.Errorf("schema version = %d, want %d", v, SchemaVersion())
		}
		return nil
	})
}

func TestOpenRejectsGarbage(t *testing.T) {
	path := filepath.Join(t.TempDir(), "herald.db")
	if err := os.WriteFile(path, bytes.Repeat([]byte("not a database "), 1000), 0o600); err != nil {
		t.Fatal(err)
	}
	if db, err := Open(context.Background(), path, Options{}); err == nil {
		db.Close()
		t.Fatal("Open of a garbage file succeeded")
	}
}

func TestPing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "herald.db")
	db, err := Open(context.Background(), path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Ping(context.Background()); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	db.Close()
	if err := db.Ping(context.Background()); err == nil {
		t.Fatal("Ping after Close succeeded")
	}
}

func TestSettings(t *testing.T) {
	ctx := context.Background()
	db := openTest(t, "", nil)
	if v, err := db.Setting(ctx, "missing"); v != nil || err != nil {
		t.Fatalf("unset = %v, %v", v, err)
	}
	if err := db.PutSetting(ctx, "k", []byte("v1")); err != nil {
		t.Fatal(err)
	}
	if err := db.PutSetting(ctx, "k", []byte("v2")); err != nil {
		t.Fatal(err)
	}
	if v, _ := db.Setting(ctx, "k"); string(v) != "v2" {
		t.Fatalf("k = %q", v)
	}
	if err := db.PutSetting(ctx, "empty", []byte{}); err != nil {
		t.Fatal(err)
	}
	if v, _ := db.Setting(ctx, "empty"); v == nil || len(v) != 0 {
		t.Fatalf("empty = %#v, want non-nil empty", v)
	}
	if err := db.PutSetting(ctx, "k", nil); err != nil {
		t.Fatal(err)
	}
	if v, _ := db.Setting(ctx, "k"); v != nil {
		t.Fatalf("deleted k = %q", v)
	}
	if err := db.PutSetting(ctx, "", []byte("x")); herald.ErrorCode(err) != herald.EINVALID {
		t.Fatalf("empty key: %v", err)
	}
}

func TestCountersStartAtZero(t *testing.T) {
	db := openTest(t, "", nil)
	m, err := db.Counters(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{herald.CounterEmailsSent, herald.CounterEmailsFailed, herald.CounterOutbox, herald.CounterRuns} {
		if n, ok := m[k]; !ok || n != 0 {
			t.Fatalf("counters = %v", m)
		}
	}
	if len(m) != 4 {
		t.Fatalf("counters = %v", m)
	}
}

func TestCanceledContext(t *testing.T) {
	db := openTest(t, "", nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := db.SubscriberByID(ctx, 1); !errors.Is(err, context.Canceled) {
		t.Errorf("SubscriberByID: %v", err)
	}
	if _, err := db.MutateSubscriber(ctx, "a@b.co", nil); !errors.Is(err, context.Canceled) {
		t.Errorf("MutateSubscriber: %v", err)
	}
	if _, err := Open(ctx, filepath.Join(t.TempDir(), "x.db"), Options{}); !errors.Is(err, context.Canceled) {
		t.Errorf("Open: %v", err)
	}
}

func TestBackupWhileWriting(t *testing.T) {
	ctx := context.Background()
	db := openTest(t, "", nil)
	const before = 2000
	bulkInsert(t, db, before, func(i int) *herald.Subscriber {
		return &herald.Subscriber{Email: fmt.Sprintf("pre%d@example.org", i), Status: herald.StatusConfirmed, Frequency: herald.Daily}
	})

	// A writer keeps adding readers while the backup runs.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var written atomic.Int64
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				_, err := db.MutateSubscriber(ctx, fmt.Sprintf("live%d-%d@example.org", w, i),
					func(cur *herald.Subscriber) (*herald.Subscriber, []*herald.OutboxMessage, error) {
						cur.Status, cur.Frequency = herald.StatusPending, herald.Instant
						return cur, nil, nil
					})
				if err != nil {
					t.Error(err)
					return
				}
				written.Add(1)
			}
		}()
	}
	waitFor(t, "the first writes", func() bool { return written.Load() >= 20 })
	path := filepath.Join(t.TempDir(), "backup.db")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	n, err := db.Backup(ctx, f)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	w0 := written.Load()
	waitFor(t, "writes after the backup", func() bool { return written.Load() >= w0+10 }) // it goes on writing
	close(stop)
	wg.Wait()
	if fi, _ := os.Stat(path); fi.Size() != n {
		t.Errorf("Backup returned %d, file has %d bytes", n, fi.Size())
	}

	// The copy is a whole database: bolt opens it, and the store's own
	// invariants (index, counts) hold in it.
	bdb, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatalf("backup does not open: %v", err)
	}
	var inBackup int
	bdb.View(func(tx *bolt.Tx) error {
		inBackup = tx.Bucket(bucketSubs).Stats().KeyN
		for i := range before {
			if tx.Bucket(bucketSubEmail).Get(fmt.Appendf(nil, "pre%d@example.org", i)) == nil {
				t.Errorf("backup lacks pre%d", i)
				break
			}
		}
		return nil
	})
	bdb.Close()
	if inBackup < before+20 {
		t.Errorf("backup has %d subscribers, want at least %d", inBackup, before+20)
	}
	if inBackup >= before+int(written.Load()) {
		t.Errorf("backup has %d subscribers, all %d: not taken while writing", inBackup, before+written.Load())
	}
	cp := openTest(t, path, nil)
	checkCounts(t, cp)
}
