package herald

// The stores: what the services keep their state in. store.DB implements
// every one over bbolt.

import (
	"context"
	"io"
	"time"
)

// SubscriberFilter selects a page of subscribers.
type SubscriberFilter struct {
	Status Status // "" = any
	// Query matches a substring of the address or the name, case-insensitively.
	Query string
	Limit int // 0 = 100; capped at 1000
	// After is where the previous page ended: ids ascend, or, with
	// Newest, descend from the newest (After: ids below it).
	After  uint64
	Newest bool
}

// MutateFunc decides a subscriber's new state inside one write transaction.
// cur is the current record; when the address is not known yet, cur has a
// freshly allocated ID, the normalised Email and an empty Status. It returns
// the record to save (nil: change nothing) and messages to enqueue in the
// same transaction. It may run more than once (bbolt Batch): no side effects.
type MutateFunc func(cur *Subscriber) (save *Subscriber, out []*OutboxMessage, err error)

// SubscriberStore keeps readers. Every write is durable when it returns.
type SubscriberStore interface {
	// MutateSubscriber runs fn on the record for email (normalised by the
	// caller) and saves what it returns, together with the messages, in one
	// transaction. When the saved record becomes confirmed (it was not
	// before), the store sets its Cursor to the newest post sequence in that
	// same transaction. It returns the saved (or current) record.
	MutateSubscriber(ctx context.Context, email string, fn MutateFunc) (*Subscriber, error)
	// MutateSubscriberByID is MutateSubscriber for a known id; ENOTFOUND if none.
	MutateSubscriberByID(ctx context.Context, id uint64, fn MutateFunc) (*Subscriber, error)
	SubscriberByID(ctx context.Context, id uint64) (*Subscriber, error)
	SubscriberByEmail(ctx context.Context, email string) (*Subscriber, error)
	// ListSubscribers returns a page and the id to pass as After for the
	// next one (0 when there is none).
	ListSubscribers(ctx context.Context, f SubscriberFilter) ([]*Subscriber, uint64, error)
	// ScanSubscribers returns up to limit subscribers with id > after, in id
	// order, from one short read transaction. Used to page through them all.
	ScanSubscribers(ctx context.Context, after uint64, limit int) ([]*Subscriber, error)
	// DeleteSubscriber erases the subscriber and its queued messages.
	DeleteSubscriber(ctx context.Context, email string) error
	// CountSubscribers counts by status and frequency.
	CountSubscribers(ctx context.Context) (map[Status]map[Frequency]int, error)
	// CountZones counts the confirmed readers of freq by the time zone
	// they chose (readers in the site's zone are not counted).
	CountZones(ctx context.Context, freq Frequency) (map[string]int, error)
}

// OutboxStore is the durable queue of composed messages.
type OutboxStore interface {
	Enqueue(ctx context.Context, msgs ...*OutboxMessage) error
	// DueMessages returns up to limit messages whose NextAttempt <= now,
	// oldest first.
	DueMessages(ctx context.Context, now time.Time, limit int) ([]*OutboxMessage, error)
	// NextDue returns the earliest NextAttempt of any queued message, zero if empty.
	NextDue(ctx context.Context) (time.Time, error)
	// MessageSent removes a delivered message.
	MessageSent(ctx context.Context, id uint64) error
	// RetryMessage records a failed attempt and when to try next.
	RetryMessage(ctx context.Context, id uint64, next time.Time, errMsg string) error
	// MessageFailed removes a message that will not be delivered and keeps a
	// record of it (kind, to, error, when) for the admin.
	MessageFailed(ctx context.Context, id uint64, errMsg string) error
	OutboxDepth(ctx context.Context) (int, error)
}

// HoldStore keeps the confirmations that wait for the budget: messages
// enqueued with a Hold, kept in the outbox (so they survive restarts and
// go with their reader when erased) but not due until released.
type HoldStore interface {
	// HeldCounts counts held messages by lane (every lane present).
	HeldCounts(ctx context.Context) (map[Hold]int, error)
	// ReleaseHeld makes up to n held messages due at now, in one
	// transaction: lane by lane (HoldBudget first) up to and including
	// lane upto, oldest first within a lane. It returns how many.
	ReleaseHeld(ctx context.Context, n int, upto Hold, now time.Time) (int, error)
}

// PostStore keeps posts and feed state.
type PostStore interface {
	// UpsertPost saves p. A post with the same identity (Feed, GUID; the
	// URL stands in for an empty GUID) as a stored one updates it (keeping
	// its ID, FoundAt, Silent and SilentReason) and created is false;
	// otherwise p gets the next sequence number as its ID and created is
	// true. p.ID is set on return.
	UpsertPost(ctx context.Context, p *Post) (created bool, err error)
	// UpsertPosts is UpsertPost for many posts in one transaction.
	UpsertPosts(ctx context.Context, ps []*Post) (created int, err error)
	PostByID(ctx context.Context, id uint64) (*Post, error)
	// PostsBetween returns the posts with after < ID <= upto, oldest first.
	PostsBetween(ctx context.Context, after, upto uint64) ([]*Post, error)
	// ListPosts returns up to limit posts with ID < before (0: from the
	// newest), newest first, and the next before value (0: no more).
	ListPosts(ctx context.Context, limit int, before uint64) ([]*Post, uint64, error)
	LastPostID(ctx context.Context) (uint64, error)
	// ReleasePost makes a silent post mailable: it gets the next sequence
	// number (readers' cursors are past its old one) and loses Silent.
	// ENOTFOUND if there is no such post, ECONFLICT if it is not silent.
	ReleasePost(ctx context.Context, id uint64) (*Post, error)
	CountPosts(ctx context.Context) (int, error)

	FeedState(ctx context.Context, url string) (*FeedState, error) // zero state if unknown
	PutFeedState(ctx context.Context, st *FeedState) error
	// UpdateFeedState runs fn on the stored state of the feed at url (a
	// zero state with URL set when there is none) and saves it, in one
	// transaction: a poll and a WebSub callback of one feed can then each
	// change their part without losing the other's.
	UpdateFeedState(ctx context.Context, url string, fn func(st *FeedState) error) (*FeedState, error)
	FeedStates(ctx context.Context) ([]*FeedState, error)
}

// RunStore keeps digest runs and their progress.
type RunStore interface {
	// CreateRun assigns r.ID and saves it.
	CreateRun(ctx context.Context, r *Run) error
	Run(ctx context.Context, id uint64) (*Run, error)
	// ListRuns returns up to limit runs with ID < before (0: newest), newest first.
	ListRuns(ctx context.Context, limit int, before uint64) ([]*Run, error)
	// UpdateRun runs fn on the stored run and saves it, in one transaction.
	UpdateRun(ctx context.Context, id uint64, fn func(r *Run) error) (*Run, error)
	// UnfinishedRuns returns runs queued or running, oldest first.
	UnfinishedRuns(ctx context.Context) ([]*Run, error)
	// RecordDeliveries applies outcomes in one transaction (callers group
	// them: one call, one commit): for each, the subscriber's LastRunID becomes RunID, its
	// Cursor becomes d.Cursor when the outcome is sent or skipped, its
	// Bounces counter resets on sent and grows on a permanent failure
	// (Subscriber.HardBounce with bounceLimit), and the run's counters grow.
	// A subscriber already at LastRunID >= RunID is left as it is and the
	// run's counters do not change for it (idempotent on replay).
	RecordDeliveries(ctx context.Context, bounceLimit int, ds ...Delivery) error
	CountRuns(ctx context.Context) (int, error)
}

// Counter names kept by the store, for stats and metrics.
const (
	CounterEmailsSent   = "emails_sent"
	CounterEmailsFailed = "emails_failed"
	// CounterOutbox is how many messages wait in the outbox, and
	// CounterRuns how many runs are stored: kept with every write, so a
	// scrape reads one key instead of walking a bucket.
	CounterOutbox = "outbox"
	CounterRuns   = "runs"
	// CounterHeldPrefix + Hold.String() counts the outbox messages held
	// in that lane (a part of CounterOutbox).
	CounterHeldPrefix = "held_"
	// CounterConfirmsQueued counts, for the life of the database, the
	// emails of a Budgeted kind that entered the send queue (queued due,
	// or released from a hold): what the budget spent, durable with the
	// spending.
	CounterConfirmsQueued = "confirms_queued"
)

// CounterStore keeps durable counters. RecordDeliveries, MessageSent and
// MessageFailed bump the email counters in their own transactions.
type CounterStore interface {
	Counters(ctx context.Context) (map[string]int64, error)
}

// SettingsStore keeps small named values (the HMAC secret, last schedule times).
type SettingsStore interface {
	Setting(ctx context.Context, key string) ([]byte, error) // nil if unset
	PutSetting(ctx context.Context, key string, val []byte) error
}

// Backupper writes a consistent snapshot of the database.
type Backupper interface {
	Backup(ctx context.Context, w io.Writer) (int64, error)
}
