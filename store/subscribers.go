package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/herald-dev/herald"
	bolt "go.etcd.io/bbolt"
)

// subRecord is how a subscriber was stored up to schema 2, as JSON (now
// it is binary, see subcodec.go; JSON records are still read):
// herald.Subscriber hides many fields from its JSON that the store must
// keep. It has the same fields in the same order, so the two convert into
// each other directly (and a field added to one and not the other stops
// the build).
type subRecord struct {
	ID             uint64           `json:"id"`
	Email          string           `json:"email"`
	Name           string           `json:"name,omitempty"`
	Status         herald.Status    `json:"status"`
	Frequency      herald.Frequency `json:"frequency,omitempty"`
	CreatedAt      time.Time        `json:"created_at"`
	ConfirmedAt    *time.Time       `json:"confirmed_at,omitempty"`
	UnsubscribedAt *time.Time       `json:"unsubscribed_at,omitempty"`
	UpdatedAt      time.Time        `json:"updated_at"`
	Nonce          uint64           `json:"nonce,omitempty"`
	ConfirmsSent   []time.Time      `json:"confirms_sent,omitempty"`
	Cursor         uint64           `json:"cursor,omitempty"`
	LastRunID      uint64           `json:"last_run_id,omitempty"`
	Bounces        int              `json:"bounces,omitempty"`
	Source         string           `json:"source,omitempty"`
	// No JSON record has these (schema 7 added them to the binary form);
	// they are here because the two types have the same fields.
	Topics      herald.TopicList `json:"topics,omitempty"`
	Timezone    string           `json:"timezone,omitempty"`
	PausedUntil *time.Time       `json:"paused_until,omitempty"`
	PausedAt    time.Time        `json:"paused_at"`
	LastSlot    time.Time        `json:"last_slot"`
	Language    string           `json:"language,omitempty"`
}

// subsFillPercent is how full bbolt fills a subscribers page before it
// splits it.
const subsFillPercent = 0.9

// SubscriberGeneration is a number that changes after every commit that
// changed an existing reader's status, frequency, address, topics, time
// zone, pause or language, or erased a reader. While it stays the same, a reader read earlier is as current in
// those fields as a fresh read: the digest skips its re-read before
// composing then. It counts in this process only (the database is locked
// to one), from 1.
func (db *DB) SubscriberGeneration() uint64 { return db.subsGen.Load() + 1 }

// sameOptTime: both nil, or the same instant.
func sameOptTime(a, b *time.Time) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Equal(*b)
}

// subsChanged runs after the commit of such a change (bolt's OnCommit), so
// a reader who sees the new number also sees the change.
func (db *DB) subsChanged() { db.subsGen.Add(1) }

// loadSub returns the subscriber with id, nil if there is none.
func loadSub(tx *bolt.Tx, id uint64) (*herald.Subscriber, error) {
	v := tx.Bucket(bucketSubs).Get(itob(id))
	if v == nil {
		return nil, nil
	}
	s := new(herald.Subscriber)
	if err := decodeSub(v, s); err != nil {
		return nil, fmt.Errorf("decode subscriber %d: %w", id, err)
	}
	return s, nil
}

func subIDByEmail(tx *bolt.Tx, email string) uint64 {
	return btoi(tx.Bucket(bucketSubEmail).Get([]byte(email)))
}

// putSub saves s and keeps the email index and the counts in step. prev
// is the stored record before the change (nil for a new one): a change of
// the fields a run reads moves SubscriberGeneration.
func (db *DB) putSub(tx *bolt.Tx, prev, s *herald.Subscriber) error {
	if prev != nil && (choicesDiffer(prev, s) || prev.Email != s.Email || prev.Language != s.Language || !sameOptTime(prev.PausedUntil, s.PausedUntil)) {
		tx.OnCommit(db.subsChanged)
	}
	b := tx.Bucket(bucketSubs)
	// Ids only grow, so records are appended: pages split when full rather
	// than half full (bbolt's default, right for random keys) keep the
	// file, and the pages a run rewrites, about half as many.
	b.FillPercent = subsFillPercent
	if err := b.Put(itob(s.ID), encodeSub(make([]byte, 0, 256), s)); err != nil {
		return err
	}
	idx := tx.Bucket(bucketSubEmail)
	if prev != nil && prev.Email != s.Email {
		if err := idx.Delete([]byte(prev.Email)); err != nil {
			return err
		}
	}
	if prev == nil || prev.Email != s.Email {
		if err := idx.Put([]byte(s.Email), itob(s.ID)); err != nil {
			return err
		}
	}
	if prev == nil || choicesDiffer(prev, s) {
		if prev != nil {
			if err := addChoices(tx, prev, -1); err != nil {
				return err
			}
		}
		if err := addChoices(tx, s, 1); err != nil {
			return err
		}
	}
	if prev != nil {
		if prev.Status == s.Status && prev.Frequency == s.Frequency {
			return nil
		}
		if err := addCount(tx, prev.Status, prev.Frequency, -1); err != nil {
			return err
		}
	}
	return addCount(tx, s.Status, s.Frequency, 1)
}

// deleteSub erases s, its index entry, its share of the counts and its
// queued messages.
func (db *DB) deleteSub(tx *bolt.Tx, s *herald.Subscriber) error {
	tx.OnCommit(db.subsChanged)
	if err := tx.Bucket(bucketSubs).Delete(itob(s.ID)); err != nil {
		return err
	}
	if err := tx.Bucket(bucketSubEmail).Delete([]byte(s.Email)); err != nil {
		return err
	}
	if err := addCount(tx, s.Status, s.Frequency, -1); err != nil {
		return err
	}
	if err := addChoices(tx, s, -1); err != nil {
		return err
	}
	// Collect first: deleting under a live cursor can skip keys.
	prefix := itob(s.ID)
	var ids []uint64
	c := tx.Bucket(bucketOutboxSub).Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		ids = append(ids, btoi(k[8:]))
	}
	for _, id := range ids {
		if _, err := deleteMessage(tx, id); err != nil {
			return err
		}
	}
	return nil
}

// The counts of subscribers by status and frequency are kept up to date
// in the same transaction as every subscriber write, so that /metrics and
// the stats API need not scan a million records.
func countKey(st herald.Status, f herald.Frequency) []byte {
	return []byte(string(st) + "\x00" + string(f))
}

func addCount(tx *bolt.Tx, st herald.Status, f herald.Frequency, delta int64) error {
	b := tx.Bucket(bucketSubCounts)
	k := countKey(st, f)
	n := int64(btoi(b.Get(k))) + delta
	if n <= 0 {
		return b.Delete(k)
	}
	return b.Put(k, itob(uint64(n)))
}

// MutateSubscriber runs fn on the record for email and saves what it
// returns, with its messages, in one batched transaction; see
// herald.SubscriberStore. A nil save changes nothing and returns the
// stored record (ENOTFOUND if there is none); messages returned with a nil
// save are still queued for a known reader. Messages without a
// SubscriberID get the reader's.
func (db *DB) MutateSubscriber(ctx context.Context, email string, fn herald.MutateFunc) (*herald.Subscriber, error) {
	if email == "" {
		return nil, herald.Errorf(herald.EINVALID, "email address is required").WithField("email")
	}
	return db.mutate(ctx, fn, func(tx *bolt.Tx) (*herald.Subscriber, bool, error) {
		if id := subIDByEmail(tx, email); id != 0 {
			s, err := loadSub(tx, id)
			if err != nil {
				return nil, false, err
			}
			if s == nil {
				return nil, false, fmt.Errorf("email index points at missing subscriber %d", id)
			}
			return s, false, nil
		}
		// Peek, not NextSequence: an id is only used up when a record is saved.
		id := tx.Bucket(bucketSubs).Sequence() + 1
		return &herald.Subscriber{ID: id, Email: email}, true, nil
	})
}

// MutateSubscriberByID is MutateSubscriber for a known id; ENOTFOUND if none.
func (db *DB) MutateSubscriberByID(ctx context.Context, id uint64, fn herald.MutateFunc) (*herald.Subscriber, error) {
	return db.mutate(ctx, fn, func(tx *bolt.Tx) (*herald.Subscriber, bool, error) {
		s, err := loadSub(tx, id)
		if err == nil && s == nil {
			err = herald.Errorf(herald.ENOTFOUND, "subscriber %d not found", id)
		}
		return s, false, err
	})
}

// mutate is the shared body of the Mutate methods. find returns the
// current record (or a fresh one, isNew) from inside the transaction.
func (db *DB) mutate(ctx context.Context, fn herald.MutateFunc,
	find func(tx *bolt.Tx) (cur *herald.Subscriber, isNew bool, err error)) (*herald.Subscriber, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var (
		result *herald.Subscriber
		// userErr carries errors that are the caller's business (fn's own,
		// ENOTFOUND, ECONFLICT). They are found before this call writes
		// anything, so the batch function returns nil and the rest of the
		// batch commits; returning them would make bbolt roll back and
		// re-run the whole batch, and fn once more.
		userErr error
	)
	err := db.bolt.Batch(func(tx *bolt.Tx) error {
		result, userErr = nil, nil // a batch may run this more than once
		cur, isNew, err := find(tx)
		if herald.ErrorCode(err) == herald.ENOTFOUND {
			userErr = err
			return nil
		} else if err != nil {
			return err
		}
		prev := *cur // fn may change cur in place
		save, out, err := fn(cur)
		if err != nil {
			userErr = err
			return nil
		}
		now := db.now()
		if save == nil {
			if isNew {
				if len(out) > 0 {
					return errors.New("MutateFunc returned messages but no record for a new address")
				}
				userErr = herald.Errorf(herald.ENOTFOUND, "subscriber %s not found", prev.Email)
				return nil
			}
			if err := enqueueTx(tx, out, prev.ID, now); err != nil {
				return err
			}
			// Re-read: fn may have changed cur before deciding not to save.
			result, err = loadSub(tx, prev.ID)
			return err
		}

		save.ID = prev.ID
		if save.Email == "" {
			save.Email = prev.Email
		}
		// A bug upstream, not bad input, but refuse to store it. Nothing is
		// written yet, so the rest of the batch can go on.
		if !save.Status.Valid() {
			userErr = fmt.Errorf("store: subscriber %s: invalid status %q", save.Email, save.Status)
			return nil
		}
		if save.Frequency != "" && !save.Frequency.Valid() {
			userErr = fmt.Errorf("store: subscriber %s: invalid frequency %q", save.Email, save.Frequency)
			return nil
		}
		if save.Email != prev.Email {
			if other := subIDByEmail(tx, save.Email); other != 0 && other != save.ID {
				userErr = herald.Errorf(herald.ECONFLICT, "%s is already subscribed", save.Email).WithField("email")
				return nil
			}
		}
		if isNew && save.CreatedAt.IsZero() {
			save.CreatedAt = now
		}
		save.UpdatedAt = now
		if save.Status == herald.StatusConfirmed && prev.Status != herald.StatusConfirmed {
			// From now on, not before: a new reader gets only later posts.
			save.Cursor = tx.Bucket(bucketPosts).Sequence()
		}
		var prevp *herald.Subscriber
		if isNew {
			if err := tx.Bucket(bucketSubs).SetSequence(save.ID); err != nil {
				return err
			}
		} else {
			prevp = &prev
		}
		if err := db.putSub(tx, prevp, save); err != nil {
			return err
		}
		if err := enqueueTx(tx, out, save.ID, now); err != nil {
			return err
		}
		result = save
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: mutate subscriber: %w", err)
	}
	return result, userErr
}

// SubscriberByID returns the subscriber with id; ENOTFOUND if none.
func (db *DB) SubscriberByID(ctx context.Context, id uint64) (*herald.Subscriber, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var s *herald.Subscriber
	err := db.bolt.View(func(tx *bolt.Tx) error {
		var err error
		s, err = loadSub(tx, id)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("store: subscriber %d: %w", id, err)
	}
	if s == nil {
		return nil, herald.Errorf(herald.ENOTFOUND, "subscriber %d not found", id)
	}
	return s, nil
}

// SubscriberByEmail returns the subscriber with the (normalised) address;
// ENOTFOUND if none.
func (db *DB) SubscriberByEmail(ctx context.Context, email string) (*herald.Subscriber, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var s *herald.Subscriber
	err := db.bolt.View(func(tx *bolt.Tx) error {
		id := subIDByEmail(tx, email)
		if id == 0 {
			return nil
		}
		var err error
		s, err = loadSub(tx, id)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("store: subscriber %s: %w", email, err)
	}
	if s == nil {
		return nil, herald.Errorf(herald.ENOTFOUND, "subscriber %s not found", email)
	}
	return s, nil
}

// listChunk is how many records ListSubscribers reads per read
// transaction, so a filter that matches little does not pin one
// transaction over the whole bucket.
const listChunk = 4096

// ListSubscribers returns a page of subscribers matching f, in id order
// (newest first with f.Newest), and the id to pass as f.After for the
// next page (0 when there is none).
func (db *DB) ListSubscribers(ctx context.Context, f herald.SubscriberFilter) ([]*herald.Subscriber, uint64, error) {
	limit := clampLimit(f.Limit, 100, 1000)
	q := strings.ToLower(f.Query)
	match := func(s *herald.Subscriber) bool {
		if f.Status != "" && s.Status != f.Status {
			return false
		}
		return q == "" || strings.Contains(strings.ToLower(s.Email), q) || strings.Contains(strings.ToLower(s.Name), q)
	}
	var out []*herald.Subscriber
	after := f.After
	for done := false; !done && len(out) <= limit; {
		if err := ctx.Err(); err != nil {
			return nil, 0, err
		}
		err := db.bolt.View(func(tx *bolt.Tx) error {
			c := tx.Bucket(bucketSubs).Cursor()
			var k, v []byte
			next := c.Next
			if f.Newest {
				k, v = seekBefore(c, after)
				next = c.Prev
			} else {
				k, v = seekAfter(c, after)
			}
			for n := 0; ; n++ {
				if k == nil {
					done = true
					return nil
				}
				if n == listChunk || len(out) > limit {
					return nil
				}
				s := new(herald.Subscriber)
				if err := decodeSub(v, s); err != nil {
					return fmt.Errorf("decode subscriber %d: %w", btoi(k), err)
				}
				after = s.ID
				if match(s) {
					out = append(out, s)
				}
				k, v = next()
			}
		})
		if err != nil {
			return nil, 0, fmt.Errorf("store: list subscribers: %w", err)
		}
	}
	var next uint64
	if len(out) > limit {
		out = out[:limit]
		next = out[limit-1].ID
	}
	return out, next, nil
}

// ScanSubscribers returns up to limit subscribers (default 100, at most
// 10000) with id > after, in id order, from one short read transaction.
func (db *DB) ScanSubscribers(ctx context.Context, after uint64, limit int) ([]*herald.Subscriber, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	limit = clampLimit(limit, 100, 10000)
	var out []*herald.Subscriber
	err := db.bolt.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketSubs).Cursor()
		// One allocation for the page's records, not one each.
		page := make([]herald.Subscriber, 0, min(limit, 1024))
		for k, v := seekAfter(c, after); k != nil && len(out) < limit; k, v = c.Next() {
			if len(page) == cap(page) {
				page = make([]herald.Subscriber, 0, min(limit-len(out), 1024))
			}
			page = page[:len(page)+1]
			s := &page[len(page)-1]
			if err := decodeSub(v, s); err != nil {
				return fmt.Errorf("decode subscriber %d: %w", btoi(k), err)
			}
			out = append(out, s)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: scan subscribers: %w", err)
	}
	return out, nil
}

// DeleteSubscriber erases the subscriber with the address, its index
// entry and its queued messages; ENOTFOUND if there is none.
func (db *DB) DeleteSubscriber(ctx context.Context, email string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	var found bool
	err := db.bolt.Update(func(tx *bolt.Tx) error {
		id := subIDByEmail(tx, email)
		if id == 0 {
			return nil
		}
		s, err := loadSub(tx, id)
		if err != nil || s == nil {
			return err
		}
		found = true
		return db.deleteSub(tx, s)
	})
	if err != nil {
		return fmt.Errorf("store: delete subscriber %s: %w", email, err)
	}
	if !found {
		return herald.Errorf(herald.ENOTFOUND, "subscriber %s not found", email)
	}
	return nil
}

// CountSubscribers counts subscribers by status and frequency. Every known
// status and frequency is present (zero when there are none), so metrics
// series do not vanish. It reads the counts kept with every write.
func (db *DB) CountSubscribers(ctx context.Context) (map[herald.Status]map[herald.Frequency]int, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m := make(map[herald.Status]map[herald.Frequency]int, len(herald.Statuses))
	for _, st := range herald.Statuses {
		m[st] = make(map[herald.Frequency]int, len(herald.Frequencies))
		for _, f := range herald.Frequencies {
			m[st][f] = 0
		}
	}
	err := db.bolt.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketSubCounts).ForEach(func(k, v []byte) error {
			st, f, ok := strings.Cut(string(k), "\x00")
			if !ok {
				return fmt.Errorf("bad count key %q", k)
			}
			if m[herald.Status(st)] == nil {
				m[herald.Status(st)] = map[herald.Frequency]int{}
			}
			m[herald.Status(st)][herald.Frequency(f)] = int(btoi(v))
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("store: count subscribers: %w", err)
	}
	return m, nil
}
