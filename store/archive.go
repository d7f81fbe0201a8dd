package store

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"

	"github.com/herald-dev/herald"
	bolt "go.etcd.io/bbolt"
)

var _ herald.ArchiveStore = (*DB)(nil)

func archFreqKey(f herald.Frequency, id uint64) []byte {
	return append([]byte(string(f)+"\x00"), itob(id)...)
}

// PutArchive saves e under e.ID, replacing an entry with that id (so a
// run archived twice keeps one entry).
func (db *DB) PutArchive(ctx context.Context, e *herald.ArchiveEntry) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if e.ID == 0 {
		return herald.Errorf(herald.EINVALID, "archive entry has no run id")
	}
	if !e.Frequency.Valid() {
		return herald.Errorf(herald.EINVALID, "archive entry %d: invalid frequency %q", e.ID, e.Frequency)
	}
	err := db.bolt.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketArchive)
		var old herald.ArchiveEntry
		if ok, err := getJSON(b, itob(e.ID), &old); err != nil {
			return err
		} else if ok && old.Frequency != e.Frequency {
			if err := tx.Bucket(bucketArchFreq).Delete(archFreqKey(old.Frequency, old.ID)); err != nil {
				return err
			}
		}
		if err := putJSON(b, itob(e.ID), e); err != nil {
			return err
		}
		return tx.Bucket(bucketArchFreq).Put(archFreqKey(e.Frequency, e.ID), []byte{})
	})
	if err != nil {
		return fmt.Errorf("store: put archive %d: %w", e.ID, err)
	}
	return nil
}

// Archive returns the entry with id; ENOTFOUND if none.
func (db *DB) Archive(ctx context.Context, id uint64) (*herald.ArchiveEntry, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var e herald.ArchiveEntry
	var found bool
	err := db.bolt.View(func(tx *bolt.Tx) error {
		var err error
		found, err = getJSON(tx.Bucket(bucketArchive), itob(id), &e)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("store: archive %d: %w", id, err)
	}
	if !found {
		return nil, herald.Errorf(herald.ENOTFOUND, "archive entry %d not found", id)
	}
	return &e, nil
}

// ListArchive returns up to limit entries (default 20, at most 100) with
// ID < before (0: from the newest), newest first, and the before value of
// the next page (0: no more).
func (db *DB) ListArchive(ctx context.Context, limit int, before uint64) ([]*herald.ArchiveEntry, uint64, error) {
	if err := ctx.Err(); err != nil {
		return nil, 0, err
	}
	limit = clampLimit(limit, 20, 100)
	var out []*herald.ArchiveEntry
	var next uint64
	err := db.bolt.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketArchive).Cursor()
		for k, v := seekBefore(c, before); k != nil; k, v = c.Prev() {
			if len(out) == limit {
				next = out[len(out)-1].ID
				return nil
			}
			var e herald.ArchiveEntry
			if err := json.Unmarshal(v, &e); err != nil {
				return fmt.Errorf("decode archive entry %d: %w", btoi(k), err)
			}
			out = append(out, &e)
		}
		return nil
	})
	if err != nil {
		return nil, 0, fmt.Errorf("store: list archive: %w", err)
	}
	return out, next, nil
}

// LatestArchive returns the newest entry of freq, nil if there is none.
func (db *DB) LatestArchive(ctx context.Context, freq herald.Frequency) (*herald.ArchiveEntry, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var e *herald.ArchiveEntry
	err := db.bolt.View(func(tx *bolt.Tx) error {
		prefix := []byte(string(freq) + "\x00")
		c := tx.Bucket(bucketArchFreq).Cursor()
		// The last key with the prefix: seek past it, step back.
		k, _ := c.Seek(append(bytes.Clone(prefix), bytes.Repeat([]byte{0xff}, 9)...))
		if k == nil {
			k, _ = c.Last()
		} else {
			k, _ = c.Prev()
		}
		if k == nil || !bytes.HasPrefix(k, prefix) || len(k) != len(prefix)+8 {
			return nil
		}
		id := btoi(k[len(prefix):])
		var got herald.ArchiveEntry
		ok, err := getJSON(tx.Bucket(bucketArchive), itob(id), &got)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("archive index points at missing entry %d", id)
		}
		e = &got
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: latest %s archive: %w", freq, err)
	}
	return e, nil
}

// AddCounter adds delta to the durable counter name (bounce reports and
// the like; the email counters are kept by the store itself).
func (db *DB) AddCounter(ctx context.Context, name string, delta int64) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if name == "" {
		return herald.Errorf(herald.EINVALID, "counter name is empty")
	}
	err := db.bolt.Batch(func(tx *bolt.Tx) error { return bumpCounter(tx, name, delta) })
	if err != nil {
		return fmt.Errorf("store: add counter %s: %w", name, err)
	}
	return nil
}

// DeleteSubscriberIf erases the subscriber with the address, as
// DeleteSubscriber does, but only when cond holds for the record as it is
// inside the deleting transaction; it reports whether it deleted. A
// missing address is not an error (false). cond may run more than once.
func (db *DB) DeleteSubscriberIf(ctx context.Context, email string, cond func(*herald.Subscriber) bool) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	var deleted bool
	err := db.bolt.Batch(func(tx *bolt.Tx) error {
		deleted = false
		id := subIDByEmail(tx, email)
		if id == 0 {
			return nil
		}
		s, err := loadSub(tx, id)
		if err != nil || s == nil {
			return err
		}
		if !cond(s) {
			return nil
		}
		deleted = true
		return db.deleteSub(tx, s)
	})
	if err != nil {
		return false, fmt.Errorf("store: delete subscriber %s: %w", email, err)
	}
	return deleted, nil
}
