package store

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/herald-dev/herald"
	bolt "go.etcd.io/bbolt"
)

// The outbox is a bucket of messages by id with three indexes: outbox_due,
// keyed by (NextAttempt, id), which DueMessages and NextDue read from the
// front; outbox_held, keyed by (Hold, id), the confirmations waiting for
// the budget, which ReleaseHeld moves to outbox_due from the front; and
// outbox_sub, keyed by (SubscriberID, id), which lets DeleteSubscriber
// drop a reader's queued mail without a scan. A message is in exactly one
// of outbox_due and outbox_held.

// maxFailed is how many failed-message records are kept for the admin.
const maxFailed = 1000

// FailedMessage records a message the outbox gave up on.
type FailedMessage struct {
	ID           uint64             `json:"id"`
	MessageID    string             `json:"message_id"`
	Kind         herald.MessageKind `json:"kind"`
	To           string             `json:"to"`
	SubscriberID uint64             `json:"subscriber_id,omitempty"`
	Attempts     int                `json:"attempts"`
	Error        string             `json:"error"`
	CreatedAt    time.Time          `json:"created_at"`
	At           time.Time          `json:"at"`
}

func dueKey(m *herald.OutboxMessage) []byte {
	return append(timeKey(m.NextAttempt), itob(m.ID)...)
}

func heldKey(m *herald.OutboxMessage) []byte {
	return append([]byte{byte(m.Hold)}, itob(m.ID)...)
}

func heldCounter(h herald.Hold) string { return herald.CounterHeldPrefix + h.String() }

// queueKey is m's entry in the index it waits in: held or due.
func queueKey(m *herald.OutboxMessage) ([]byte, []byte) {
	if m.Hold != herald.HoldNone {
		return bucketOutboxHeld, heldKey(m)
	}
	return bucketOutboxDue, dueKey(m)
}

func subMsgKey(m *herald.OutboxMessage) []byte {
	return append(itob(m.SubscriberID), itob(m.ID)...)
}

func loadMessage(tx *bolt.Tx, id uint64) (*herald.OutboxMessage, error) {
	var m herald.OutboxMessage
	ok, err := getJSON(tx.Bucket(bucketOutbox), itob(id), &m)
	if err != nil || !ok {
		return nil, err
	}
	return &m, nil
}

// putMessage saves m and its index entries. The caller removes a stale
// due or held entry first when NextAttempt or Hold changes.
func putMessage(tx *bolt.Tx, m *herald.OutboxMessage) error {
	if err := putJSON(tx.Bucket(bucketOutbox), itob(m.ID), m); err != nil {
		return err
	}
	bucket, key := queueKey(m)
	if err := tx.Bucket(bucket).Put(key, []byte{}); err != nil {
		return err
	}
	if m.SubscriberID != 0 {
		return tx.Bucket(bucketOutboxSub).Put(subMsgKey(m), []byte{})
	}
	return nil
}

// deleteMessage removes the message and its index entries, returning it
// (nil if it was not there).
func deleteMessage(tx *bolt.Tx, id uint64) (*herald.OutboxMessage, error) {
	m, err := loadMessage(tx, id)
	if err != nil || m == nil {
		return nil, err
	}
	if err := tx.Bucket(bucketOutbox).Delete(itob(id)); err != nil {
		return nil, err
	}
	if err := bumpCounter(tx, herald.CounterOutbox, -1); err != nil {
		return nil, err
	}
	bucket, key := queueKey(m)
	if err := tx.Bucket(bucket).Delete(key); err != nil {
		return nil, err
	}
	if m.Hold != herald.HoldNone {
		if err := bumpCounter(tx, heldCounter(m.Hold), -1); err != nil {
			return nil, err
		}
	}
	if m.SubscriberID != 0 {
		if err := tx.Bucket(bucketOutboxSub).Delete(subMsgKey(m)); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// enqueueTx assigns ids and saves msgs. Messages without a SubscriberID
// get sub; CreatedAt defaults to now and NextAttempt to CreatedAt.
func enqueueTx(tx *bolt.Tx, msgs []*herald.OutboxMessage, sub uint64, now time.Time) error {
	b := tx.Bucket(bucketOutbox)
	for _, m := range msgs {
		if m == nil {
			continue
		}
		id, err := b.NextSequence()
		if err != nil {
			return err
		}
		m.ID = id
		if m.SubscriberID == 0 {
			m.SubscriberID = sub
		}
		if m.CreatedAt.IsZero() {
			m.CreatedAt = now
		}
		if m.NextAttempt.IsZero() {
			m.NextAttempt = m.CreatedAt
		}
		if err := putMessage(tx, m); err != nil {
			return fmt.Errorf("message to %s: %w", m.To, err)
		}
		if err := bumpCounter(tx, herald.CounterOutbox, 1); err != nil {
			return err
		}
		if m.Hold != herald.HoldNone {
			if err := bumpCounter(tx, heldCounter(m.Hold), 1); err != nil {
				return err
			}
		} else if m.Kind.Budgeted() {
			if err := bumpCounter(tx, herald.CounterConfirmsQueued, 1); err != nil {
				return err
			}
		}
	}
	return nil
}

// Enqueue adds msgs to the outbox, assigning their IDs. Writes from
// concurrent callers share a commit.
func (db *DB) Enqueue(ctx context.Context, msgs ...*herald.OutboxMessage) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if len(msgs) == 0 {
		return nil
	}
	err := db.bolt.Batch(func(tx *bolt.Tx) error {
		return enqueueTx(tx, msgs, 0, db.now())
	})
	if err != nil {
		return fmt.Errorf("store: enqueue: %w", err)
	}
	return nil
}

// DueMessages returns up to limit (default 100, at most 10000) messages
// whose NextAttempt <= now, by NextAttempt and then id.
func (db *DB) DueMessages(ctx context.Context, now time.Time, limit int) ([]*herald.OutboxMessage, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	limit = clampLimit(limit, 100, 10000)
	end := timeKey(now)
	var out []*herald.OutboxMessage
	err := db.bolt.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketOutboxDue).Cursor()
		for k, _ := c.First(); k != nil && len(out) < limit && bytes.Compare(k[:12], end) <= 0; k, _ = c.Next() {
			m, err := loadMessage(tx, btoi(k[12:]))
			if err != nil {
				return err
			}
			if m == nil {
				return fmt.Errorf("due index points at missing message %d", btoi(k[12:]))
			}
			out = append(out, m)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: due messages: %w", err)
	}
	return out, nil
}

// NextDue returns the earliest NextAttempt of any queued message, the
// zero time if the outbox is empty.
func (db *DB) NextDue(ctx context.Context) (time.Time, error) {
	if err := ctx.Err(); err != nil {
		return time.Time{}, err
	}
	var t time.Time
	err := db.bolt.View(func(tx *bolt.Tx) error {
		if k, _ := tx.Bucket(bucketOutboxDue).Cursor().First(); k != nil {
			t = keyTime(k)
		}
		return nil
	})
	if err != nil {
		return time.Time{}, fmt.Errorf("store: next due: %w", err)
	}
	return t, nil
}

// MessageSent removes a delivered message and counts it. A message that
// is gone already (its reader was erased meanwhile) is not an error.
func (db *DB) MessageSent(ctx context.Context, id uint64) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	err := db.bolt.Batch(func(tx *bolt.Tx) error {
		m, err := deleteMessage(tx, id)
		if err != nil || m == nil {
			return err
		}
		return bumpCounter(tx, herald.CounterEmailsSent, 1)
	})
	if err != nil {
		return fmt.Errorf("store: message %d sent: %w", id, err)
	}
	return nil
}

// RetryMessage records a failed attempt and when to try next. A message
// that is gone already is left gone.
func (db *DB) RetryMessage(ctx context.Context, id uint64, next time.Time, errMsg string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	err := db.bolt.Batch(func(tx *bolt.Tx) error {
		m, err := loadMessage(tx, id)
		if err != nil || m == nil || m.Hold != herald.HoldNone {
			return err // gone, or held (never handed to a sender)
		}
		if err := tx.Bucket(bucketOutboxDue).Delete(dueKey(m)); err != nil {
			return err
		}
		m.Attempts++
		m.NextAttempt = next
		m.LastError = errMsg
		return putMessage(tx, m)
	})
	if err != nil {
		return fmt.Errorf("store: retry message %d: %w", id, err)
	}
	return nil
}

// MessageFailed removes a message that will not be delivered, counts it,
// and keeps a record of it (the newest maxFailed are kept). A message that
// is gone already is not an error.
func (db *DB) MessageFailed(ctx context.Context, id uint64, errMsg string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	err := db.bolt.Batch(func(tx *bolt.Tx) error {
		m, err := deleteMessage(tx, id)
		if err != nil || m == nil {
			return err
		}
		if err := bumpCounter(tx, herald.CounterEmailsFailed, 1); err != nil {
			return err
		}
		b := tx.Bucket(bucketFailed)
		seq, err := b.NextSequence()
		if err != nil {
			return err
		}
		f := FailedMessage{
			ID: seq, MessageID: m.MessageID, Kind: m.Kind, To: m.To, SubscriberID: m.SubscriberID,
			Attempts: m.Attempts + 1, Error: errMsg, CreatedAt: m.CreatedAt, At: db.now(),
		}
		if err := putJSON(b, itob(seq), &f); err != nil {
			return err
		}
		if seq <= maxFailed {
			return nil
		}
		// Keys are sequential: drop everything at or below seq-maxFailed.
		var old [][]byte
		c := b.Cursor()
		for k, _ := c.First(); k != nil && btoi(k) <= seq-maxFailed; k, _ = c.Next() {
			old = append(old, bytes.Clone(k))
		}
		for _, k := range old {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store: message %d failed: %w", id, err)
	}
	return nil
}

// FailedMessages returns up to limit (default 100, at most 1000) records
// of failed messages, newest first.
func (db *DB) FailedMessages(ctx context.Context, limit int) ([]*FailedMessage, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	limit = clampLimit(limit, 100, maxFailed)
	var out []*FailedMessage
	err := db.bolt.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketFailed).Cursor()
		for k, v := c.Last(); k != nil && len(out) < limit; k, v = c.Prev() {
			var f FailedMessage
			if err := json.Unmarshal(v, &f); err != nil {
				return err
			}
			out = append(out, &f)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: failed messages: %w", err)
	}
	return out, nil
}

// OutboxDepth returns how many messages are queued (a counter, not a
// walk of the outbox).
func (db *DB) OutboxDepth(ctx context.Context) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	var n int
	err := db.bolt.View(func(tx *bolt.Tx) error {
		n = int(counter(tx, herald.CounterOutbox))
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("store: outbox depth: %w", err)
	}
	return n, nil
}

// HeldCounts counts the held confirmations by lane, from counters kept
// with every write (no walk).
func (db *DB) HeldCounts(ctx context.Context) (map[herald.Hold]int, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	out := map[herald.Hold]int{}
	err := db.bolt.View(func(tx *bolt.Tx) error {
		for _, h := range herald.Holds {
			out[h] = int(counter(tx, heldCounter(h)))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: held counts: %w", err)
	}
	return out, nil
}

// ReleaseHeld makes up to n held messages due at now: the front of
// outbox_held, which sorts by lane and then by id (the order they were
// queued in), up to and including lane upto.
func (db *DB) ReleaseHeld(ctx context.Context, n int, upto herald.Hold, now time.Time) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if n <= 0 {
		return 0, nil
	}
	released := 0
	err := db.bolt.Update(func(tx *bolt.Tx) error {
		held := tx.Bucket(bucketOutboxHeld)
		var keys [][]byte
		c := held.Cursor()
		for k, _ := c.First(); k != nil && len(keys) < n && herald.Hold(k[0]) <= upto; k, _ = c.Next() {
			keys = append(keys, bytes.Clone(k))
		}
		for _, k := range keys {
			if err := held.Delete(k); err != nil {
				return err
			}
			m, err := loadMessage(tx, btoi(k[1:]))
			if err != nil {
				return err
			}
			if m == nil {
				return fmt.Errorf("held index points at missing message %d", btoi(k[1:]))
			}
			if err := bumpCounter(tx, heldCounter(m.Hold), -1); err != nil {
				return err
			}
			m.Hold = herald.HoldNone
			m.NextAttempt = now
			if err := putMessage(tx, m); err != nil {
				return err
			}
			released++
		}
		return bumpCounter(tx, herald.CounterConfirmsQueued, int64(released))
	})
	if err != nil {
		return 0, fmt.Errorf("store: release held messages: %w", err)
	}
	return released, nil
}
