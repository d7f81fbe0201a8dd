// Package herald holds the domain of the herald service: subscribers, posts,
// digest runs, outbox messages, the error type with codes, and the small
// interfaces the implementations (store, mailer, feed, digest, subscription,
// handlers) meet through. Standard library only.
package herald

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Frequency is how often a reader hears from us.
type Frequency string

const (
	Instant Frequency = "instant"
	Daily   Frequency = "daily"
	Weekly  Frequency = "weekly"
)

// Frequencies lists every valid frequency, in display order.
var Frequencies = []Frequency{Instant, Daily, Weekly}

// Valid reports whether f is one of the known frequencies.
func (f Frequency) Valid() bool {
	switch f {
	case Instant, Daily, Weekly:
		return true
	}
	return false
}

// ParseFrequency checks s and returns it as a Frequency.
func ParseFrequency(s string) (Frequency, error) {
	f := Frequency(s)
	if !f.Valid() {
		return "", Errorf(EINVALID, "unknown frequency %q (want instant, daily or weekly)", s).WithField("frequency")
	}
	return f, nil
}

// Status is where a subscriber stands.
type Status string

const (
	StatusPending      Status = "pending"
	StatusConfirmed    Status = "confirmed"
	StatusUnsubscribed Status = "unsubscribed"
	StatusBounced      Status = "bounced"
)

// Statuses lists every valid status, in display order.
var Statuses = []Status{StatusPending, StatusConfirmed, StatusUnsubscribed, StatusBounced}

// Valid reports whether s is one of the known statuses.
func (s Status) Valid() bool {
	switch s {
	case StatusPending, StatusConfirmed, StatusUnsubscribed, StatusBounced:
		return true
	}
	return false
}

// Subscriber is one reader. Email is always the normalised address
// (see NormalizeEmail); it is the unique key.
type Subscriber struct {
	ID        uint64    `json:"id"`
	Email     string    `json:"email"`
	Name      string    `json:"name"`
	Status    Status    `json:"status"`
	Frequency Frequency `json:"frequency"`
	CreatedAt time.Time `json:"created_at"`
	// ConfirmedAt is nil until the reader confirms.
	ConfirmedAt    *time.Time `json:"confirmed_at"`
	UnsubscribedAt *time.Time `json:"-"`
	UpdatedAt      time.Time  `json:"-"`

	// Nonce changes with every fresh opt-in; confirm tokens carry it, so a
	// confirm link from an earlier sign-up stops working.
	Nonce uint64 `json:"-"`
	// ConfirmsSent holds when recent confirmation emails were queued, newest
	// last, for the per-address limit. Kept short by the subscription service.
	ConfirmsSent []time.Time `json:"-"`
	// Cursor is the sequence number of the last post delivered (or skipped
	// on purpose) to this reader. The store sets it to the newest post's
	// sequence when the reader becomes confirmed.
	Cursor uint64 `json:"-"`
	// LastRunID is the newest digest run this reader is done with; run ids
	// grow, so a run R still owes this reader mail while LastRunID < R.
	LastRunID uint64 `json:"-"`
	// Bounces counts consecutive permanent delivery failures.
	Bounces int `json:"-"`
	// Source says how the record came in: "form", "api", "import".
	Source string `json:"-"`

	// Topics are the topics the reader chose, in the site's spelling
	// (digest.topics); empty: every post.
	Topics TopicList `json:"topics"`
	// Timezone is the reader's IANA time zone; "" is the site's
	// (digest.timezone). With digest.local_time the schedules run in it.
	Timezone string `json:"timezone"`
	// PausedUntil: nothing is sent to the reader before this time (see
	// Paused). The API shows it only while it is ahead.
	PausedUntil *time.Time `json:"paused_until"`
	// PausedAt is when the reader's pause began: posts that arrive from
	// then until PausedUntil are never sent to them. Zero once a digest
	// after the pause has moved the reader past those posts.
	PausedAt time.Time `json:"-"`
	// LastSlot is the local wall-clock time, written as if in UTC, of the
	// last local-time digest slot that dealt with the reader (see package
	// digest): each local time serves a reader once, however their time
	// zone changes.
	LastSlot time.Time `json:"-"`
	// Language is the reader's language code ("de"), from the form they
	// signed up on; "" = the site's default. Their emails are in it.
	Language string `json:"language"`
}

// DefaultBounceLimit is how many consecutive hard bounces make a confirmed
// reader bounced when no limit is configured (mail.bounce_limit).
const DefaultBounceLimit = 3

// HardBounce counts one permanent delivery failure against s (a 5xx at
// send time, or a relay's report) and applies the bounce rule, the one
// place it is written: a pending address becomes bounced at once (only
// its confirmation was ever sent to it, so it does not take mail), a
// confirmed reader at limit consecutive ones (never, when limit is 0). A
// delivered email sets Bounces back to 0.
func (s *Subscriber) HardBounce(limit int) {
	s.Bounces++
	switch {
	case s.Status == StatusPending:
		s.Status = StatusBounced
	case s.Status == StatusConfirmed && limit > 0 && s.Bounces >= limit:
		s.Status = StatusBounced
	}
}

// Post is one blog post. ID is its sequence number in arrival order.
// Its identity is (Feed, GUID): GUID is the item's guid, else its link,
// else a hash of its title and date (the feed package chooses).
type Post struct {
	ID          uint64    `json:"id"`
	GUID        string    `json:"guid"`
	URL         string    `json:"url"`
	Title       string    `json:"title"`
	Author      string    `json:"author"`
	Categories  []string  `json:"categories"`
	PublishedAt time.Time `json:"published_at"`
	// Summary and Content are sanitised HTML fragments.
	Summary string `json:"summary"`
	Content string `json:"-"`
	// Image is the post's lead image: its media:content, an image
	// enclosure, or the first <img> of its content; nil when it has none.
	Image *Image `json:"image,omitempty"`
	// Feed is the URL of the feed it came from, or "api".
	Feed    string    `json:"feed"`
	FoundAt time.Time `json:"-"`
	// Silent posts are recorded but not mailed: they were already in a feed
	// when it was first added, or were first seen long after they were
	// published (a site move, changed guids). SilentReason says which.
	Silent       bool   `json:"silent"`
	SilentReason string `json:"silent_reason,omitempty"`
}

// Image is a post's lead image. Width and Height are what the feed says
// (0 when it does not).
type Image struct {
	URL    string `json:"url"`
	Width  int    `json:"width,omitempty"`
	Height int    `json:"height,omitempty"`
	Alt    string `json:"alt,omitempty"`
}

// Reasons a post is silent.
const (
	SilentBacklog = "backlog: already in the feed when herald first read it"
	SilentMaxAge  = "max_age" // followed by the detail, see feed.Poller
)

// FeedState is what herald remembers of one feed between polls.
type FeedState struct {
	URL          string    `json:"url"`
	ETag         string    `json:"etag,omitempty"`
	LastModified string    `json:"last_modified,omitempty"`
	Initialized  bool      `json:"initialized"` // the backlog has been recorded
	LastPoll     time.Time `json:"last_poll"`
	LastSuccess  time.Time `json:"last_success"`
	LastError    string    `json:"last_error,omitempty"`
	LastErrorAt  time.Time `json:"last_error_at"`
	Items        int       `json:"items"`       // items in the last good fetch
	NextPoll     time.Time `json:"next_poll"`   // honours backoff and Retry-After
	Failures     int       `json:"failures"`    // consecutive failures, for backoff
	NewPosts     int       `json:"new_posts"`   // new posts found by the last poll
	TotalPosts   int       `json:"total_posts"` // posts ever recorded from it
	// Held counts the last poll's new posts recorded silent because they
	// were older than max_age.
	Held int `json:"held"`
	// Skipped names what the last good poll left out (a bad item, a field
	// of the wrong type, items beyond the limits), one line each.
	Skipped []string `json:"skipped,omitempty"`
	// Push is the feed's WebSub subscription, nil when it has no hub.
	Push *PushState `json:"push,omitempty"`
}

// PushState is where a feed's WebSub subscription stands.
type PushState struct {
	Hub   string `json:"hub"`
	Topic string `json:"topic"`
	// State is "subscribing" (asked, the hub has not verified yet),
	// "active", "denied" (the hub refused; Error says why), "failed" (the
	// hub could not be asked; polling goes on) or "unsubscribing".
	State        string    `json:"state"`
	Error        string    `json:"error,omitempty"`
	RequestedAt  time.Time `json:"requested_at"`
	VerifiedAt   time.Time `json:"verified_at"`
	LeaseExpires time.Time `json:"lease_expires"`
	LastPush     time.Time `json:"last_push"`
	Pushes       int       `json:"pushes"`
	// OldHub and OldTopic are a subscription being left (the feed moved to
	// another hub); the verification of that unsubscribe checks them.
	OldHub   string `json:"old_hub,omitempty"`
	OldTopic string `json:"old_topic,omitempty"`
}

// RunState is where a digest run stands.
type RunState string

const (
	RunQueued  RunState = "queued"
	RunRunning RunState = "running"
	RunDone    RunState = "done"
	RunFailed  RunState = "failed"
)

// Trigger says what started a run.
type Trigger string

const (
	TriggerSchedule Trigger = "schedule" // a cron schedule came due
	TriggerMissed   Trigger = "missed"   // a schedule came due while herald was down; run at start
	TriggerPoll     Trigger = "poll"     // new posts arrived, for the instant readers
	TriggerAPI      Trigger = "api"      // POST /api/v1/runs: herald send, scripts
	TriggerAdmin    Trigger = "admin"    // the admin web UI's "Send"
)

// Run is one digest run for one frequency.
type Run struct {
	ID        uint64    `json:"id"`
	Frequency Frequency `json:"frequency"`
	Trigger   Trigger   `json:"trigger"`
	DryRun    bool      `json:"dry_run"`
	State     RunState  `json:"state"`
	// Cutoff is the newest post sequence the run may carry.
	Cutoff     uint64     `json:"cutoff"`
	Total      int        `json:"total"`
	Sent       int        `json:"sent"`
	Failed     int        `json:"failed"`
	Skipped    int        `json:"skipped"`
	Retries    int        `json:"retries"`
	CreatedAt  time.Time  `json:"created_at"`
	StartedAt  *time.Time `json:"started_at"`
	FinishedAt *time.Time `json:"finished_at"`
	Error      string     `json:"error,omitempty"`
	// Failures keeps the last few permanent failures with the SMTP reply.
	Failures []RunFailure `json:"failures,omitempty"`
	// Posts are the posts the run carried to at least one reader (a dry
	// run: would carry), oldest first, at most MaxRunPosts of them; and
	// Subjects the subject lines those emails had, at most MaxRunSubjects.
	Posts    []RunPost `json:"posts,omitempty"`
	Subjects []string  `json:"subjects,omitempty"`
	// Slot is the time a local-time run was due (digest.local_time), and
	// Zones the readers' time zones whose schedule fell due then: the run
	// owes mail to the readers in those zones only. Both empty for every
	// other run, which owes mail to every reader of its frequency.
	Slot  *time.Time `json:"slot,omitempty"`
	Zones []string   `json:"zones,omitempty"`
	// PostSets counts the distinct digests the run rendered (readers with
	// the same posts share one); for a resumed run, its last part's.
	PostSets int `json:"post_sets,omitempty"`
}

// RunPost is a post a run carried.
type RunPost struct {
	ID    uint64 `json:"id"`
	Title string `json:"title"`
	URL   string `json:"url,omitempty"`
}

// How many posts and subjects a run remembers.
const (
	MaxRunPosts    = 100
	MaxRunSubjects = 10
)

// Empty: the run ended well and mailed nobody (a dry run, or nothing was
// new for anyone). The lists that ask leave such runs out; a failed run
// is never empty.
func (r *Run) Empty() bool {
	return r.State == RunDone && (r.DryRun || r.Sent+r.Failed == 0)
}

// RunFilter selects a page of runs, newest first.
type RunFilter struct {
	Limit  int
	Before uint64 // runs with ID < Before; 0: from the newest
	// SkipEmpty leaves out the runs that are over and mailed nobody.
	SkipEmpty bool
}

// RunFailure is one reader a run could not reach.
type RunFailure struct {
	Email string    `json:"email"`
	Error string    `json:"error"`
	At    time.Time `json:"at"`
}

// Outcome is what became of one reader in one run.
type Outcome string

const (
	OutcomeSent    Outcome = "sent"
	OutcomeFailed  Outcome = "failed"
	OutcomeSkipped Outcome = "skipped" // nothing new for them: the cursor moves, no email
)

// Valid reports whether o is one of the known outcomes.
func (o Outcome) Valid() bool {
	switch o {
	case OutcomeSent, OutcomeFailed, OutcomeSkipped:
		return true
	}
	return false
}

// Delivery is the outcome of one reader in one run, recorded in one
// transaction with the reader's cursor.
type Delivery struct {
	RunID        uint64
	SubscriberID uint64
	// Cursor is the reader's new cursor (unchanged on failure).
	Cursor  uint64
	Outcome Outcome
	Error   string
	// Permanent marks a permanent failure, which counts as a bounce.
	Permanent bool
	// Partial marks one post of several in an instant run: the cursor moves
	// but LastRunID does not, so the run still owes the reader the rest.
	// Replays are recognised by the cursor instead.
	Partial bool
	At      time.Time
	// Slot, for a local-time run, is the reader's local time of it (see
	// Subscriber.LastSlot); it becomes their LastSlot.
	Slot time.Time
	// EndPause: this digest took the reader past every post that arrived
	// during their pause; PausedAt is cleared.
	EndPause bool
}

// MessageKind names what an outbox message is.
type MessageKind string

const (
	KindConfirm MessageKind = "confirm"
	KindWelcome MessageKind = "welcome"
	KindTest    MessageKind = "test"
	KindDigest  MessageKind = "digest"
	KindInstant MessageKind = "instant"
	// KindLink carries a reader's preferences link, to a reader who lost
	// it (asked for it, or subscribed again while subscribed).
	KindLink MessageKind = "link"
)

// OutboxMessage is a composed email waiting in the durable outbox.
type OutboxMessage struct {
	ID           uint64      `json:"id"`
	Kind         MessageKind `json:"kind"`
	To           string      `json:"to"`
	SubscriberID uint64      `json:"subscriber_id,omitempty"`
	MessageID    string      `json:"message_id"`
	Raw          []byte      `json:"raw"`
	Attempts     int         `json:"attempts"`
	CreatedAt    time.Time   `json:"created_at"`
	NextAttempt  time.Time   `json:"next_attempt"`
	ExpiresAt    time.Time   `json:"expires_at"`
	LastError    string      `json:"last_error,omitempty"`
	// Hold, when set, keeps the message out of the sender's way until
	// the budget of confirmation emails releases it (see Hold).
	Hold Hold `json:"hold,omitempty"`
}

// Budgeted says whether emails of the kind spend the budget of
// confirmation emails (security.confirmations_per_hour): those that go
// to an address anyone can type into a form.
func (k MessageKind) Budgeted() bool { return k == KindConfirm || k == KindLink }

// Hold is why a queued confirmation is not due yet: it waits for the
// budget of confirmation emails (security.confirmations_per_hour). Held
// messages are durable in the outbox but out of the sender's queue, so
// nothing else waits behind them; the budget releases them a lane at a
// time (HoldBudget before HoldUnsolved), oldest first within a lane.
type Hold uint8

const (
	// HoldNone: due at NextAttempt, like any message.
	HoldNone Hold = iota
	// HoldBudget: the hourly budget was spent when the reader signed up.
	HoldBudget
	// HoldUnsolved: the sign-up was asked for the challenge (a flood, or
	// security.challenge = "always") and did not solve it, as a browser
	// without script can't; it goes after every HoldBudget one.
	HoldUnsolved
)

// Holds are the lanes, in the order they are released.
var Holds = []Hold{HoldBudget, HoldUnsolved}

// String names the lane in stats and metrics.
func (h Hold) String() string {
	switch h {
	case HoldNone:
		return "none"
	case HoldBudget:
		return "budget"
	case HoldUnsolved:
		return "challenge_unsolved"
	}
	return fmt.Sprintf("hold(%d)", uint8(h))
}

// Message is one email ready for a transport.
type Message struct {
	// Kind says what the email is (the file transport names files by it);
	// "" when unknown.
	Kind      MessageKind
	From      string // bare envelope sender address
	To        string // bare recipient address
	MessageID string
	Raw       []byte // the whole RFC 5322 message, CRLF line endings
}

// Transport delivers composed messages. Implementations return an error
// that SendError classifies.
type Transport interface {
	Send(ctx context.Context, m *Message) error
	Close() error
}

// SendError classifies a delivery failure. Temporary failures (4xx,
// connection trouble) are retried; permanent ones (5xx) are not.
type SendError struct {
	Temporary bool
	Code      int // SMTP reply code, 0 when there was none
	Err       error
}

func (e *SendError) Error() string {
	kind := "permanent"
	if e.Temporary {
		kind = "temporary"
	}
	if e.Code != 0 {
		return fmt.Sprintf("%s failure (%d): %v", kind, e.Code, e.Err)
	}
	return fmt.Sprintf("%s failure: %v", kind, e.Err)
}

func (e *SendError) Unwrap() error { return e.Err }

// IsPermanent reports whether err is a permanent delivery failure. Errors
// that are not SendErrors are treated as temporary: when in doubt, retry.
func IsPermanent(err error) bool {
	var se *SendError
	if errors.As(err, &se) {
		return !se.Temporary
	}
	return false
}

// Error codes, mapped to HTTP statuses in one place (handlers).
const (
	ECONFLICT     = "conflict"
	EINTERNAL     = "internal"
	EINVALID      = "invalid"
	ENOTFOUND     = "not_found"
	EUNAUTHORIZED = "unauthorized"
	EFORBIDDEN    = "forbidden"
	ERATELIMIT    = "rate_limited"
	ETOOLARGE     = "too_large"
	EMALFORMED    = "malformed" // a body that does not parse at all
	EUNAVAILABLE  = "unavailable"
)

// Error is herald's error with a code and a message safe to show a user.
type Error struct {
	Code    string
	Message string
	// Field names the input field at fault, when there is one.
	Field string
	// RetryAfter is set on ERATELIMIT errors.
	RetryAfter time.Duration
}

func (e *Error) Error() string { return e.Message }

// WithField returns e with the field at fault named.
func (e *Error) WithField(f string) *Error { e.Field = f; return e }

// Errorf returns an *Error with code and a formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the code of the first *Error in err's chain, EINTERNAL
// for any other non-nil error, and "" for nil.
func ErrorCode(err error) string {
	var e *Error
	if err == nil {
		return ""
	} else if errors.As(err, &e) {
		return e.Code
	}
	return EINTERNAL
}

// ErrorMessage returns the user-safe message of err: the *Error's message,
// or a generic one for internal errors (their detail goes to the log).
func ErrorMessage(err error) string {
	var e *Error
	if err == nil {
		return ""
	} else if errors.As(err, &e) {
		return e.Message
	}
	return "internal error"
}

// ErrorField returns the field named by err, if any.
func ErrorField(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Field
	}
	return ""
}
