package subscription

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/herald-dev/herald"
)

// JanitorStore is what the janitor needs of the database.
type JanitorStore interface {
	ScanSubscribers(ctx context.Context, after uint64, limit int) ([]*herald.Subscriber, error)
	// DeleteSubscriberIf erases the address only if cond still holds in
	// the deleting transaction (a sign-up confirmed meanwhile stays).
	DeleteSubscriberIf(ctx context.Context, email string, cond func(*herald.Subscriber) bool) (bool, error)
}

// JanitorOptions configure a Janitor.
type JanitorOptions struct {
	// TTL is security.confirm_ttl: a sign-up whose newest confirmation
	// link is older than this can no longer be confirmed (default 168h).
	TTL time.Duration
	// Every is the time between sweeps (default 1h).
	Every time.Duration
	// Page is how many records one read transaction scans (default 1000).
	Page   int
	Now    func() time.Time
	Logger *slog.Logger
}

// Janitor erases sign-ups that can no longer be confirmed: pending ones
// whose newest confirmation link expired, and those whose confirmation
// bounced (they never opted in either). It keeps nobody's address longer
// than the opt-in needs.
type Janitor struct {
	store JanitorStore
	opt   JanitorOptions
	log   *slog.Logger
}

// NewJanitor returns a Janitor; Run starts it.
func NewJanitor(store JanitorStore, opt JanitorOptions) *Janitor {
	if opt.TTL <= 0 {
		opt.TTL = 168 * time.Hour
	}
	if opt.Every <= 0 {
		opt.Every = time.Hour
	}
	if opt.Page <= 0 {
		opt.Page = 1000
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	return &Janitor{store: store, opt: opt, log: opt.Logger.With("component", "janitor")}
}

// Run sweeps at once and then every opt.Every until ctx is done.
func (j *Janitor) Run(ctx context.Context) error {
	t := time.NewTicker(j.opt.Every)
	defer t.Stop()
	for {
		if n, err := j.Purge(ctx); err != nil && ctx.Err() == nil {
			j.log.Error("purging stale sign-ups", "err", err, "purged", n)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Stale reports whether sub is a sign-up that can no longer be confirmed
// at now: never confirmed, pending (or bounced on its confirmation), and
// its newest confirmation link older than ttl.
func Stale(sub *herald.Subscriber, now time.Time, ttl time.Duration) bool {
	switch {
	case sub.Status == herald.StatusPending:
	case sub.Status == herald.StatusBounced && sub.ConfirmedAt == nil:
	default:
		return false
	}
	last := sub.CreatedAt
	for _, t := range sub.ConfirmsSent {
		if t.After(last) {
			last = t
		}
	}
	return now.Sub(last) >= ttl
}

// Purge erases every stale sign-up, a page at a time, and returns how
// many it erased.
func (j *Janitor) Purge(ctx context.Context) (int, error) {
	now := j.opt.Now()
	stale := func(s *herald.Subscriber) bool { return Stale(s, now, j.opt.TTL) }
	var after uint64
	n := 0
	for {
		subs, err := j.store.ScanSubscribers(ctx, after, j.opt.Page)
		if err != nil {
			return n, fmt.Errorf("subscription: janitor: %w", err)
		}
		if len(subs) == 0 {
			break
		}
		after = subs[len(subs)-1].ID
		for _, s := range subs {
			if !stale(s) {
				continue
			}
			ok, err := j.store.DeleteSubscriberIf(ctx, s.Email, stale)
			if err != nil {
				return n, fmt.Errorf("subscription: janitor: %w", err)
			}
			if ok {
				n++
			}
		}
	}
	if n > 0 {
		j.log.Info("purged stale sign-ups", "count", n, "ttl", j.opt.TTL)
	}
	return n, nil
}
