// Package store keeps herald's state in an embedded bbolt database:
// subscribers, the outbox, posts, feed states, digest runs, settings and
// counters. It implements the store interfaces of package herald and knows
// nothing of HTTP or SMTP.
//
// bbolt allows one writer at a time and every commit costs two fsyncs, so
// writes that many goroutines make at once (subscribes, deliveries, outbox
// updates) go through (*bolt.DB).Batch and share a commit.
package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"time"

	"github.com/herald-dev/herald"
	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// The store implements every store interface of the root package.
var (
	_ herald.SubscriberStore = (*DB)(nil)
	_ herald.OutboxStore     = (*DB)(nil)
	_ herald.HoldStore       = (*DB)(nil)
	_ herald.PostStore       = (*DB)(nil)
	_ herald.RunStore        = (*DB)(nil)
	_ herald.SettingsStore   = (*DB)(nil)
	_ herald.CounterStore    = (*DB)(nil)
	_ herald.Backupper       = (*DB)(nil)
)

// ErrLocked is returned by Open when another process holds the database.
var ErrLocked = errors.New("store: database is in use by another herald process")

// ErrSchemaTooNew is returned (wrapped) by Open when the database was
// written by a newer herald than this one.
var ErrSchemaTooNew = errors.New("store: database schema is newer than this herald")

// Options tune Open. The zero value is usable.
type Options struct {
	Logger *slog.Logger
	// Now is the clock for timestamps the store fills in; default time.Now.
	Now func() time.Time
	// LockTimeout is how long Open waits for another process to release
	// the file; default 1s.
	LockTimeout time.Duration
}

// DB is herald's database. It is safe for concurrent use.
type DB struct {
	bolt *bolt.DB
	path string
	log  *slog.Logger
	now  func() time.Time
	// subsGen counts commits that changed a reader in a way the digest
	// must see (see SubscriberGeneration).
	subsGen atomic.Uint64
}

// Bucket names.
var (
	bucketMeta      = []byte("meta")
	bucketSubs      = []byte("subscribers")
	bucketSubEmail  = []byte("subscribers_email") // email → id
	bucketSubCounts = []byte("subscriber_counts") // status \x00 frequency → int64
	bucketOutbox    = []byte("outbox")
	bucketOutboxDue = []byte("outbox_due") // time(12) id(8) → nil
	bucketOutboxSub = []byte("outbox_sub") // subscriber id(8) message id(8) → nil
	// Held confirmations (schema 6): hold lane(1) message id(8) → nil; a
	// held message has no outbox_due entry.
	bucketOutboxHeld = []byte("outbox_held")
	bucketFailed     = []byte("failed")
	bucketPosts      = []byte("posts")
	bucketPostKey    = []byte("posts_key") // feed \x00 guid → id (schema 4)
	// The post indexes of schemas 1 to 3, dropped by migration 3 → 4.
	bucketPostGUIDv3 = []byte("posts_guid") // guid → id
	bucketPostURLv3  = []byte("posts_url")  // url → id
	bucketFeeds      = []byte("feeds")
	bucketRuns       = []byte("runs")
	bucketRunsOpen   = []byte("runs_open") // id of a queued or running run → nil
	bucketSettings   = []byte("settings")
	bucketCounters   = []byte("counters")
	bucketArchive    = []byte("archive")      // run id → archive entry
	bucketArchFreq   = []byte("archive_freq") // frequency \x00 run id → nil
	keySchemaVersion = []byte("schema_version")
	// keyConvertSubs, in meta, marks subscriber records that may still be
	// JSON (schema 2 and before); Open converts them and deletes it.
	keyConvertSubs = []byte("convert_subscribers")
)

// migrations[v] brings a database at schema version v to v+1; the schema
// version this binary writes is len(migrations). Append, never edit.
var migrations = []func(tx *bolt.Tx) error{
	// 0 → 1: the initial buckets.
	func(tx *bolt.Tx) error {
		for _, name := range [][]byte{
			bucketSubs, bucketSubEmail, bucketSubCounts,
			bucketOutbox, bucketOutboxDue, bucketOutboxSub, bucketFailed,
			bucketPosts, bucketPostGUIDv3, bucketPostURLv3, bucketFeeds,
			bucketRuns, bucketRunsOpen, bucketSettings, bucketCounters,
		} {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return fmt.Errorf("create bucket %s: %w", name, err)
			}
		}
		return nil
	},
	// 1 → 2: the archive of past digests.
	func(tx *bolt.Tx) error {
		for _, name := range [][]byte{bucketArchive, bucketArchFreq} {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return fmt.Errorf("create bucket %s: %w", name, err)
			}
		}
		return nil
	},
	// 2 → 3: subscriber records are binary (subcodec.go). JSON ones are
	// still read; Open rewrites them after this, a chunk per transaction
	// (see convertSubscribers), so no one transaction holds them all.
	func(tx *bolt.Tx) error {
		return tx.Bucket(bucketMeta).Put(keyConvertSubs, []byte{1})
	},
	// 3 → 4: a post's identity is (feed, guid); see migratePostKeys.
	migratePostKeys,
	// 4 → 5: the outbox depth and the number of runs are counters, kept
	// by every write that changes them; counted here once.
	func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketCounters)
		for name, b := range map[string][]byte{herald.CounterOutbox: bucketOutbox, herald.CounterRuns: bucketRuns} {
			if err := c.Put([]byte(name), itob(uint64(tx.Bucket(b).Stats().KeyN))); err != nil {
				return err
			}
		}
		return nil
	},
	// 5 → 6: confirmations held for the budget, out of the due index.
	func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(bucketOutboxHeld)
		return err
	},
	// 6 → 7: readers' choices (topics, time zone, pause) in subscriber
	// records of version 2 (subcodec.go), and their counts. No reader
	// has chosen anything yet, so the counts start empty.
	func(tx *bolt.Tx) error {
		for _, name := range [][]byte{bucketSubTopics, bucketSubZones} {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return fmt.Errorf("create bucket %s: %w", name, err)
			}
		}
		return nil
	},
	// 7 → 8: readers' languages, in subscriber records of version 3
	// (subcodec.go). Older records read as the site's language and are
	// rewritten as they change; the number keeps an older herald, which
	// cannot read version 3, from opening the database.
	func(tx *bolt.Tx) error { return nil },
}

// SchemaVersion is the schema version this binary reads and writes.
func SchemaVersion() int { return len(migrations) }

// Open opens (creating if needed) the database at path and brings its
// schema up to date. It fails with ErrLocked when another process has the
// file open for longer than opts.LockTimeout.
func Open(ctx context.Context, path string, opts Options) (*DB, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.LockTimeout <= 0 {
		opts.LockTimeout = time.Second
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("store: create directory for %s: %w", path, err)
	}
	bopts := &bolt.Options{Timeout: opts.LockTimeout}
	if runtime.GOOS != "windows" { // where the mapping would grow the file to its size
		// Map 1 GiB of address space from the start (not memory: pages
		// are only touched as the file has them). bbolt remaps as the file
		// outgrows the mapping, and a remap waits for every read
		// transaction and holds up every write: under a stream of sign-ups
		// (each with its confirmation email in the outbox) that was a
		// stall every time the file doubled.
		bopts.InitialMmapSize = 1 << 30
	}
	bdb, err := bolt.Open(path, 0o600, bopts)
	if errors.Is(err, berrors.ErrTimeout) {
		return nil, ErrLocked
	} else if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	db := &DB{bolt: bdb, path: path, log: opts.Logger, now: opts.Now}
	if err := db.migrate(); err != nil {
		bdb.Close()
		return nil, err
	}
	if err := db.convertSubscribers(ctx); err != nil {
		bdb.Close()
		return nil, err
	}
	return db, nil
}

func (db *DB) migrate() error {
	return db.bolt.Update(func(tx *bolt.Tx) error {
		meta, err := tx.CreateBucketIfNotExists(bucketMeta)
		if err != nil {
			return fmt.Errorf("store: create meta bucket: %w", err)
		}
		var v uint64
		if b := meta.Get(keySchemaVersion); b != nil {
			if len(b) != 8 {
				return fmt.Errorf("store: %s: corrupt schema version", db.path)
			}
			v = binary.BigEndian.Uint64(b)
		}
		known := uint64(len(migrations))
		if v > known {
			return fmt.Errorf("%w: %s has schema version %d, this herald knows up to %d; run a newer herald or restore a backup",
				ErrSchemaTooNew, db.path, v, known)
		}
		if v == known {
			return nil
		}
		from := v
		for ; v < known; v++ {
			if err := migrations[v](tx); err != nil {
				return fmt.Errorf("store: migrate schema %d to %d: %w", v, v+1, err)
			}
		}
		if err := meta.Put(keySchemaVersion, itob(v)); err != nil {
			return fmt.Errorf("store: save schema version: %w", err)
		}
		db.log.Info("store: schema migrated", "path", db.path, "from", from, "to", v)
		return nil
	})
}

// Close closes the database; pending batched writes finish first.
func (db *DB) Close() error {
	if err := db.bolt.Close(); err != nil {
		return fmt.Errorf("store: close: %w", err)
	}
	return nil
}

// Path returns the database file's path.
func (db *DB) Path() string { return db.path }

// Ping checks that the database answers (for /healthz).
func (db *DB) Ping(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := db.bolt.View(func(tx *bolt.Tx) error {
		if tx.Bucket(bucketMeta) == nil {
			return errors.New("meta bucket missing")
		}
		return nil
	}); err != nil {
		return fmt.Errorf("store: ping: %w", err)
	}
	return nil
}

// Backup writes a consistent snapshot of the whole database to w while
// the database keeps serving, and returns the bytes written.
func (db *DB) Backup(ctx context.Context, w io.Writer) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	var n int64
	err := db.bolt.View(func(tx *bolt.Tx) error {
		var err error
		n, err = tx.WriteTo(ctxWriter{ctx, w})
		return err
	})
	if err != nil {
		return n, fmt.Errorf("store: backup: %w", err)
	}
	return n, nil
}

// ctxWriter stops a long backup when its client goes away, so the read
// transaction it holds does not outlive the request.
type ctxWriter struct {
	ctx context.Context
	w   io.Writer
}

func (c ctxWriter) Write(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.w.Write(p)
}

// Setting returns the value stored under key, nil if unset.
func (db *DB) Setting(ctx context.Context, key string) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var val []byte
	err := db.bolt.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bucketSettings).Get([]byte(key)); v != nil {
			val = bytes.Clone(v) // v is only valid inside the tx
			if val == nil {
				val = []byte{}
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: setting %q: %w", key, err)
	}
	return val, nil
}

// PutSetting stores val under key; a nil val deletes the key.
func (db *DB) PutSetting(ctx context.Context, key string, val []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if key == "" {
		return herald.Errorf(herald.EINVALID, "setting key is empty")
	}
	err := db.bolt.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketSettings)
		if val == nil {
			return b.Delete([]byte(key))
		}
		return b.Put([]byte(key), val)
	})
	if err != nil {
		return fmt.Errorf("store: put setting %q: %w", key, err)
	}
	return nil
}

// Counters returns every durable counter; the email counters are always
// present, zero until bumped.
func (db *DB) Counters(ctx context.Context) (map[string]int64, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m := map[string]int64{herald.CounterEmailsSent: 0, herald.CounterEmailsFailed: 0}
	err := db.bolt.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketCounters).ForEach(func(k, v []byte) error {
			m[string(k)] = int64(btoi(v))
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("store: counters: %w", err)
	}
	return m, nil
}

// bumpCounter adds delta to the named counter inside tx.
func bumpCounter(tx *bolt.Tx, name string, delta int64) error {
	if delta == 0 {
		return nil
	}
	b := tx.Bucket(bucketCounters)
	v := int64(btoi(b.Get([]byte(name)))) + delta
	return b.Put([]byte(name), itob(uint64(v)))
}

// counter reads the named counter inside tx.
func counter(tx *bolt.Tx, name string) int64 {
	return int64(btoi(tx.Bucket(bucketCounters).Get([]byte(name))))
}

// itob encodes an id as a big-endian key, so keys sort as numbers.
func itob(v uint64) []byte {
	b := make([]byte, 8)
	binary.BigEndian.PutUint64(b, v)
	return b
}

// btoi decodes a key made by itob; nil or short input is 0.
func btoi(b []byte) uint64 {
	if len(b) < 8 {
		return 0
	}
	return binary.BigEndian.Uint64(b)
}

// timeKey encodes t so that keys sort by time, including times before
// 1970 and the zero time (which UnixNano cannot represent).
func timeKey(t time.Time) []byte {
	b := make([]byte, 12)
	binary.BigEndian.PutUint64(b, uint64(t.Unix())^(1<<63))
	binary.BigEndian.PutUint32(b[8:], uint32(t.Nanosecond()))
	return b
}

// keyTime decodes the first 12 bytes of a timeKey.
func keyTime(b []byte) time.Time {
	sec := int64(binary.BigEndian.Uint64(b) ^ (1 << 63))
	return time.Unix(sec, int64(binary.BigEndian.Uint32(b[8:])))
}

func putJSON(b *bolt.Bucket, key []byte, v any) error {
	buf, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode: %w", err)
	}
	return b.Put(key, buf)
}

// getJSON decodes the value at key into v; it reports false when absent.
// json.Unmarshal copies what it keeps, so v is safe after the tx.
func getJSON(b *bolt.Bucket, key []byte, v any) (bool, error) {
	buf := b.Get(key)
	if buf == nil {
		return false, nil
	}
	if err := json.Unmarshal(buf, v); err != nil {
		return true, fmt.Errorf("decode key %x: %w", key, err)
	}
	return true, nil
}

// clampLimit applies a default and a maximum to a page size.
func clampLimit(limit, def, max int) int {
	if limit <= 0 {
		return def
	}
	return min(limit, max)
}
