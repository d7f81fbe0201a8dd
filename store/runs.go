package store

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/herald-dev/herald"
	bolt "go.etcd.io/bbolt"
)

// maxRunFailures is how many failures a run keeps, newest last.
const maxRunFailures = 50

// Runs are stored as their JSON.
func loadRun(tx *bolt.Tx, id uint64) (*herald.Run, error) {
	var r herald.Run
	ok, err := getJSON(tx.Bucket(bucketRuns), itob(id), &r)
	if err != nil || !ok {
		return nil, err
	}
	return &r, nil
}

// putRun saves r and keeps the index of unfinished runs in step.
func putRun(tx *bolt.Tx, r *herald.Run) error {
	if err := putJSON(tx.Bucket(bucketRuns), itob(r.ID), r); err != nil {
		return err
	}
	open := tx.Bucket(bucketRunsOpen)
	if r.State == herald.RunQueued || r.State == herald.RunRunning {
		return open.Put(itob(r.ID), []byte{})
	}
	return open.Delete(itob(r.ID))
}

// CreateRun assigns r.ID and saves r. CreatedAt defaults to now and State
// to queued.
func (db *DB) CreateRun(ctx context.Context, r *herald.Run) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	err := db.bolt.Update(func(tx *bolt.Tx) error {
		id, err := tx.Bucket(bucketRuns).NextSequence()
		if err != nil {
			return err
		}
		r.ID = id
		if r.CreatedAt.IsZero() {
			r.CreatedAt = db.now()
		}
		if r.State == "" {
			r.State = herald.RunQueued
		}
		if err := bumpCounter(tx, herald.CounterRuns, 1); err != nil {
			return err
		}
		return putRun(tx, r)
	})
	if err != nil {
		return fmt.Errorf("store: create run: %w", err)
	}
	return nil
}

// Run returns the run with id; ENOTFOUND if none.
func (db *DB) Run(ctx context.Context, id uint64) (*herald.Run, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var r *herald.Run
	err := db.bolt.View(func(tx *bolt.Tx) error {
		var err error
		r, err = loadRun(tx, id)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("store: run %d: %w", id, err)
	}
	if r == nil {
		return nil, herald.Errorf(herald.ENOTFOUND, "run %d not found", id)
	}
	return r, nil
}

// ListRuns returns up to limit runs (default 20, at most 1000) with
// ID < before (0: from the newest), newest first.
func (db *DB) ListRuns(ctx context.Context, limit int, before uint64) ([]*herald.Run, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	limit = clampLimit(limit, 20, 1000)
	var out []*herald.Run
	err := db.bolt.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketRuns).Cursor()
		for k, v := seekBefore(c, before); k != nil && len(out) < limit; k, v = c.Prev() {
			var r herald.Run
			if err := json.Unmarshal(v, &r); err != nil {
				return fmt.Errorf("decode run %d: %w", btoi(k), err)
			}
			out = append(out, &r)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: list runs: %w", err)
	}
	return out, nil
}

// UpdateRun runs fn on the stored run and saves it, in one transaction.
// An error from fn is returned as it is and nothing is saved.
func (db *DB) UpdateRun(ctx context.Context, id uint64, fn func(r *herald.Run) error) (*herald.Run, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var (
		r       *herald.Run
		userErr error
	)
	err := db.bolt.Update(func(tx *bolt.Tx) error {
		var err error
		if r, err = loadRun(tx, id); err != nil {
			return err
		}
		if r == nil {
			userErr = herald.Errorf(herald.ENOTFOUND, "run %d not found", id)
			return nil
		}
		if userErr = fn(r); userErr != nil {
			return nil // nothing written yet
		}
		r.ID = id
		return putRun(tx, r)
	})
	if err != nil {
		return nil, fmt.Errorf("store: update run %d: %w", id, err)
	}
	if userErr != nil {
		return nil, userErr
	}
	return r, nil
}

// UnfinishedRuns returns the runs queued or running, oldest first.
func (db *DB) UnfinishedRuns(ctx context.Context) ([]*herald.Run, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var out []*herald.Run
	err := db.bolt.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketRunsOpen).ForEach(func(k, _ []byte) error {
			r, err := loadRun(tx, btoi(k))
			if err != nil {
				return err
			}
			if r == nil {
				return fmt.Errorf("open-run index points at missing run %d", btoi(k))
			}
			out = append(out, r)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("store: unfinished runs: %w", err)
	}
	return out, nil
}

// CountRuns returns how many runs are stored (a counter, not a walk).
func (db *DB) CountRuns(ctx context.Context) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	var n int
	err := db.bolt.View(func(tx *bolt.Tx) error {
		n = int(counter(tx, herald.CounterRuns))
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("store: count runs: %w", err)
	}
	return n, nil
}

// RecordDeliveries applies delivery outcomes to readers, runs and counters
// in one transaction, committed at once; see herald.RunStore. Its caller,
// the digest's recorder, groups the outcomes itself (one call per commit),
// so bbolt's Batch would only add its 10ms window to every call. Deliveries for erased readers are skipped. A delivery
// the reader's state shows as already applied (LastRunID >= RunID, or for
// a partial one Cursor >= d.Cursor) changes nothing, so replays after a
// crash are harmless. An unknown run is ENOTFOUND and nothing is saved.
func (db *DB) RecordDeliveries(ctx context.Context, bounceLimit int, ds ...herald.Delivery) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	for _, d := range ds {
		if !d.Outcome.Valid() {
			return herald.Errorf(herald.EINVALID, "delivery to subscriber %d: unknown outcome %q", d.SubscriberID, d.Outcome)
		}
	}
	if len(ds) == 0 {
		return nil
	}
	var userErr error
	err := db.bolt.Update(func(tx *bolt.Tx) error {
		userErr = nil
		now := db.now()
		runs := map[uint64]*herald.Run{}
		var sent, failed int64
		for _, d := range ds {
			s, err := loadSub(tx, d.SubscriberID)
			if err != nil {
				return err
			}
			if s == nil {
				continue // erased while the run was under way
			}
			if s.LastRunID >= d.RunID || (d.Partial && s.Cursor >= d.Cursor) {
				continue // already recorded
			}
			r := runs[d.RunID]
			if r == nil {
				if r, err = loadRun(tx, d.RunID); err != nil {
					return err
				}
				if r == nil {
					// Reads only so far, but earlier deliveries wrote:
					// fail the transaction and report ENOTFOUND.
					userErr = herald.Errorf(herald.ENOTFOUND, "run %d not found", d.RunID)
					return userErr
				}
				runs[d.RunID] = r
			}

			prev := *s
			if !d.Partial {
				s.LastRunID = d.RunID
			}
			if d.Outcome != herald.OutcomeFailed {
				if !d.Slot.IsZero() {
					s.LastSlot = d.Slot
				}
				if d.EndPause {
					s.PausedAt = time.Time{}
				}
			}
			switch d.Outcome {
			case herald.OutcomeSent:
				s.Cursor = max(s.Cursor, d.Cursor)
				s.Bounces = 0
				sent++
				r.Sent++
			case herald.OutcomeSkipped:
				s.Cursor = max(s.Cursor, d.Cursor)
				r.Skipped++
			case herald.OutcomeFailed:
				failed++
				r.Failed++
				if d.Permanent {
					s.HardBounce(bounceLimit)
				}
				at := d.At
				if at.IsZero() {
					at = now
				}
				r.Failures = append(r.Failures, herald.RunFailure{Email: s.Email, Error: d.Error, At: at})
				if n := len(r.Failures); n > maxRunFailures {
					r.Failures = append([]herald.RunFailure(nil), r.Failures[n-maxRunFailures:]...)
				}
			}
			s.UpdatedAt = now
			if err := db.putSub(tx, &prev, s); err != nil {
				return err
			}
		}
		for _, r := range runs {
			if err := putRun(tx, r); err != nil {
				return err
			}
		}
		if err := bumpCounter(tx, herald.CounterEmailsSent, sent); err != nil {
			return err
		}
		return bumpCounter(tx, herald.CounterEmailsFailed, failed)
	})
	if userErr != nil {
		return userErr
	}
	if err != nil {
		return fmt.Errorf("store: record deliveries: %w", err)
	}
	return nil
}
