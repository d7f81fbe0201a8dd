package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/herald-dev/herald"
	bolt "go.etcd.io/bbolt"
)

// backupOf writes a backup of db to a file and returns its path.
func backupOf(t *testing.T, db *DB) string {
	t.Helper()
	var buf bytes.Buffer
	if _, err := db.Backup(context.Background(), &buf); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "backup.db")
	if err := os.WriteFile(p, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestVerify(t *testing.T) {
	ctx := context.Background()
	db := openTest(t, "", nil)
	bulkInsert(t, db, 25, func(i int) *herald.Subscriber {
		return &herald.Subscriber{Email: fmt.Sprintf("r%d@example.org", i), Status: herald.StatusConfirmed, Frequency: herald.Daily}
	})
	good := backupOf(t, db)
	info, err := Verify(ctx, good)
	if err != nil {
		t.Fatal(err)
	}
	if info.Schema != SchemaVersion() || info.Subscribers != 25 {
		t.Fatalf("info %+v", info)
	}

	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	orig, _ := os.ReadFile(good)
	// Damaged pages: garble the header of every page past the two meta
	// pages (a disk that lost writes).
	damaged := bytes.Clone(orig)
	pageSize := os.Getpagesize()
	for off := 2 * pageSize; off+16 <= len(damaged); off += pageSize {
		for i := off; i < off+16; i++ {
			damaged[i] ^= 0x5a
		}
	}
	// A bbolt file that is not herald's.
	other := filepath.Join(dir, "other.db")
	bdb, err := bolt.Open(other, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	_ = bdb.Update(func(tx *bolt.Tx) error { _, err := tx.CreateBucket([]byte("things")); return err })
	bdb.Close()
	// A herald database from a newer herald.
	newer := write("newer.db", orig)
	bdb, err = bolt.Open(newer, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	_ = bdb.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketMeta).Put(keySchemaVersion, itob(uint64(SchemaVersion()+1)))
	})
	bdb.Close()
	// A herald database missing a bucket of its schema.
	partial := write("partial.db", orig)
	bdb, err = bolt.Open(partial, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	_ = bdb.Update(func(tx *bolt.Tx) error { return tx.DeleteBucket(bucketRunsOpen) })
	bdb.Close()

	for name, tc := range map[string]struct {
		path string
		want string
	}{
		"empty":     {write("empty.db", nil), "not a database file"},
		"text":      {write("text.db", []byte(strings.Repeat("not a database\n", 500))), "not a valid database"},
		"truncated": {write("truncated.db", orig[:len(orig)/3]), ""},
		"damaged":   {write("damaged.db", damaged), ""},
		"other":     {other, "not a herald database"},
		"newer":     {newer, "schema version"},
		"partial":   {partial, "missing"},
		"missing":   {filepath.Join(dir, "nope.db"), "no such file"},
	} {
		t.Run(name, func(t *testing.T) {
			before, _ := os.ReadFile(tc.path)
			_, err := Verify(ctx, tc.path)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Verify: %v, want an error containing %q", err, tc.want)
			}
			if after, _ := os.ReadFile(tc.path); !bytes.Equal(before, after) {
				t.Fatal("Verify changed the file")
			}
		})
	}
	if _, err := Verify(ctx, newer); !errors.Is(err, ErrSchemaTooNew) {
		t.Fatalf("newer schema: %v, want ErrSchemaTooNew", err)
	}
	// The live database, held by its process: locked.
	if _, err := Verify(ctx, db.Path()); !errors.Is(err, ErrLocked) {
		t.Fatalf("Verify of an open database: %v, want ErrLocked", err)
	}
}

func TestRestore(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	live := filepath.Join(dir, "herald.db")
	db := openTest(t, live, nil)
	bulkInsert(t, db, 10, func(i int) *herald.Subscriber {
		return &herald.Subscriber{Email: fmt.Sprintf("r%d@example.org", i), Status: herald.StatusConfirmed, Frequency: herald.Daily}
	})
	backup := backupOf(t, db)
	bulkInsert(t, db, 5, func(i int) *herald.Subscriber {
		return &herald.Subscriber{Email: fmt.Sprintf("late%d@example.org", i), Status: herald.StatusConfirmed, Frequency: herald.Daily}
	})

	// Refused while the database is open, and nothing changes.
	before, _ := os.ReadFile(live)
	if _, _, err := Restore(ctx, backup, live); !errors.Is(err, ErrLocked) {
		t.Fatalf("Restore over an open database: %v, want ErrLocked", err)
	}
	if after, _ := os.ReadFile(live); !bytes.Equal(before, after) {
		t.Fatal("a refused restore changed the database")
	}
	db.Close()

	// A bad backup is refused and the live database stays.
	bad := filepath.Join(dir, "bad.db")
	os.WriteFile(bad, []byte("junk"), 0o600)
	if _, _, err := Restore(ctx, bad, live); err == nil {
		t.Fatal("a junk backup was restored")
	}
	if after, _ := os.ReadFile(live); !bytes.Equal(before, after) {
		t.Fatal("a refused restore changed the database")
	}

	info, kept, err := Restore(ctx, backup, live)
	if err != nil {
		t.Fatal(err)
	}
	if info.Subscribers != 10 || kept == "" {
		t.Fatalf("info %+v, kept %q", info, kept)
	}
	if k, _ := os.ReadFile(kept); !bytes.Equal(k, before) {
		t.Fatal("the replaced database was not kept as it was")
	}
	db, err = Open(ctx, live, Options{LockTimeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	counts, err := db.CountSubscribers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n := counts[herald.StatusConfirmed][herald.Daily]; n != 10 {
		t.Fatalf("after restore %d readers, want the backup's 10", n)
	}

	// Restoring where there is no database yet (a new machine).
	fresh := filepath.Join(t.TempDir(), "sub", "herald.db")
	if _, kept, err := Restore(ctx, backup, fresh); err != nil || kept != "" {
		t.Fatalf("restore to a new place: %v %q", err, kept)
	}
	if _, err := Verify(ctx, fresh); err != nil {
		t.Fatal(err)
	}
}

// FuzzVerify: whatever a file holds, Verify answers (an error or Info),
// never crashes, and never changes the file.
func FuzzVerify(f *testing.F) {
	dir := f.TempDir()
	db, err := Open(context.Background(), filepath.Join(dir, "seed.db"), Options{})
	if err != nil {
		f.Fatal(err)
	}
	_, _ = db.MutateSubscriber(context.Background(), "seed@example.org", func(cur *herald.Subscriber) (*herald.Subscriber, []*herald.OutboxMessage, error) {
		cur.Status, cur.Frequency = herald.StatusConfirmed, herald.Daily
		return cur, nil, nil
	})
	var buf bytes.Buffer
	if _, err := db.Backup(context.Background(), &buf); err != nil {
		f.Fatal(err)
	}
	db.Close()
	f.Add(buf.Bytes())
	f.Add(buf.Bytes()[:buf.Len()/2])
	f.Add([]byte("not a database"))
	f.Fuzz(func(t *testing.T, b []byte) {
		p := filepath.Join(t.TempDir(), "f.db")
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		_, _ = Verify(context.Background(), p)
		if after, _ := os.ReadFile(p); !bytes.Equal(after, b) {
			t.Fatal("Verify changed the file")
		}
	})
}
