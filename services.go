package herald

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"time"
)

// The services: what the HTTP handlers, the admin UI (through the admin
// API) and the command line call. Each holds its rules; the handlers
// decode a request, call one, and encode the answer. Errors are *Error
// with a code, mapped to an HTTP status in one place (package handlers).

// SubscribeRequest is a subscription as typed into the form, or sent as
// JSON to the API.
type SubscribeRequest struct {
	Email     string `json:"email"`
	Name      string `json:"name"`
	Frequency string `json:"frequency"`
	// Language is the reader's language code ("de"); "" = the site's.
	// The form sends the page's language.
	Language string `json:"language"`
	// Topics are the topics chosen (none: every post); Timezone the
	// reader's IANA zone ("": the site's).
	Topics   []string `json:"topics,omitempty"`
	Timezone string   `json:"timezone,omitempty"`
	// Source: "form", "api", "import".
	Source string `json:"-"`
	// Confirmed skips the opt-in (admin migrations only).
	Confirmed bool `json:"confirmed"`
	// Solved: the visitor solved the sign-up challenge (the handlers
	// verified it). A public sign-up ("form") asked for one and without
	// it has its confirmation wait behind the solved ones.
	Solved bool `json:"-"`
}

// SubscriptionService holds the subscription rules: the double opt-in and
// the reader's own changes through the signed links in their emails (the
// public pages), and the admin's view of the readers (the API).
type SubscriptionService interface {
	// Subscribe starts (or restarts) the opt-in; the answer is the same
	// whether the address was new, pending or subscribed already (a
	// subscribed reader is sent their preferences link instead).
	Subscribe(ctx context.Context, r SubscribeRequest) (*Subscriber, error)
	// SendLink sends the owner of an address the link they need: the
	// confirmation again to a pending address, the preferences link to
	// any other known one, within the per-address limit; nothing to an
	// unknown address, and the caller can't tell which it was. It is
	// the public pages' button: a confirmation it sends is a sign-up
	// without a challenge solution (see Subscribe's Solved).
	SendLink(ctx context.Context, email string) error
	// CheckConfirmToken checks a confirm link without changing anything
	// (GET pages change nothing: mail scanners follow links).
	CheckConfirmToken(token string) error
	Confirm(ctx context.Context, token string) (*Subscriber, error)
	ForUnsubscribe(ctx context.Context, token string) (*Subscriber, error)
	ForPreferences(ctx context.Context, token string) (*Subscriber, error)
	Unsubscribe(ctx context.Context, token string) (*Subscriber, error)
	UnsubscribeFromPreferences(ctx context.Context, token string) (*Subscriber, error)
	// Resubscribe makes a reader who left (or bounced) subscribed again
	// with one press, keeping their name and choices; freq, when not "",
	// is the frequency they chose on the way. The preferences token
	// proves the address, so there is no new opt-in.
	Resubscribe(ctx context.Context, token, freq string) (*Subscriber, error)
	// SavePreferences applies the preferences page's form (preferences
	// token): frequency, topics, time zone; changed is false when the
	// reader had those already. A reader who left is ECONFLICT: they
	// subscribe again first.
	SavePreferences(ctx context.Context, token string, p Preferences) (sub *Subscriber, changed bool, err error)
	// Pause stops all mail to the reader for weeks (one of PauseWeeks);
	// the posts that arrive meanwhile are never sent to them.
	Pause(ctx context.Context, token string, weeks int) (*Subscriber, error)
	// Resume ends a pause now.
	Resume(ctx context.Context, token string) (*Subscriber, error)
	// ManageToken is the token of a reader's preferences link.
	ManageToken(id uint64) string

	// ListSubscribers returns a page and the After of the next (0: none).
	ListSubscribers(ctx context.Context, f SubscriberFilter) ([]*Subscriber, uint64, error)
	// ScanSubscribers returns up to limit readers with id > after, in id
	// order: every reader, a page at a time (the CSV export).
	ScanSubscribers(ctx context.Context, after uint64, limit int) ([]*Subscriber, error)
	// Subscriber returns the reader with the address; ENOTFOUND if none.
	Subscriber(ctx context.Context, email string) (*Subscriber, error)
	// AddSubscriber is an admin adding one reader (Subscribe with source
	// "api"); an address known already is ECONFLICT, returned with the
	// reader as they are.
	AddSubscriber(ctx context.Context, r SubscribeRequest) (*Subscriber, error)
	// DeleteSubscriber erases the reader and their queued mail.
	DeleteSubscriber(ctx context.Context, email string) error
	// Bounce applies a relay's report; an unknown address is ENOTFOUND.
	Bounce(ctx context.Context, email string, kind BounceKind) (*Subscriber, error)
	// Reactivate makes a bounced reader confirmed again (ECONFLICT from
	// any other status).
	Reactivate(ctx context.Context, email string) (*Subscriber, error)
	// UpdateSubscriber applies an admin's change to a reader; a bad field
	// is EINVALID naming it, an unknown address ENOTFOUND.
	UpdateSubscriber(ctx context.Context, email string, p SubscriberPatch) (*Subscriber, error)
	// ResendConfirmation queues the confirmation email again for a
	// pending reader (ECONFLICT for any other status, ERATELIMIT at the
	// per-address limit).
	ResendConfirmation(ctx context.Context, email string) (*Subscriber, error)
}

// Preferences are what the preferences page's form sends.
type Preferences struct {
	Frequency string
	Topics    []string // none: every post
	Timezone  string   // "": the site's
}

// ImportRow is one row of an import file, checked and normalised. Empty
// fields mean "not given".
type ImportRow struct {
	Line      int
	Email     string
	Name      string
	Frequency Frequency
	// Topics and Timezone as the file has them (checked against the
	// site's by the import); PausedUntil zero: not paused.
	Topics      []string
	Timezone    string
	PausedUntil time.Time
	// Status is the file's status mapped onto herald's (see package subcsv).
	Status      Status
	CreatedAt   time.Time
	ConfirmedAt time.Time
	// Language is the file's language column as written (the import
	// checks it).
	Language string
}

// RowError is a row the import refuses; reading goes on after it.
type RowError struct {
	Line int
	Msg  string
}

func (e *RowError) Error() string { return fmt.Sprintf("line %d: %s", e.Line, e.Msg) }

// RowReader gives an import its rows: io.EOF at the end, a *RowError for a
// bad row (reading goes on), any other error when the file cannot be read
// further.
type RowReader interface {
	Next() (ImportRow, error)
}

// ImportReport is the answer to an import.
type ImportReport struct {
	Added   int `json:"added"`
	Updated int `json:"updated"`
	Skipped int `json:"skipped"`
	// Invalid lists the first bad rows by line (up to 1000).
	Invalid []ImportProblem `json:"invalid"`
	// InvalidTotal counts every bad row.
	InvalidTotal int `json:"invalid_total"`
	// Confirmations counts the added rows that went through the opt-in
	// (a confirmation email was queued).
	Confirmations int `json:"confirmations"`
	// Rows counts the data rows read (blank rows aside).
	Rows int `json:"rows"`
}

// ImportProblem is one row that was not imported.
type ImportProblem struct {
	Line  int    `json:"line"`
	Error string `json:"error"`
}

// ImportService applies a list of readers from another tool.
type ImportService interface {
	// Import applies every row. confirmed: new readers are confirmed at
	// once (they opted in elsewhere) instead of being sent the opt-in. A
	// nil report with an error: nothing was imported; a report with an
	// error: the import stopped part-way, the rows before it are in.
	Import(ctx context.Context, rows RowReader, confirmed bool) (*ImportReport, error)
}

// DigestService starts digest runs and shows what they would send.
type DigestService interface {
	// StartRun creates a durable run for freq and has it sent in the
	// background. A run already queued or running for freq: ECONFLICT.
	StartRun(ctx context.Context, freq Frequency, trigger Trigger, dryRun bool) (*Run, error)
	// RunByID returns a run; ENOTFOUND if none.
	RunByID(ctx context.Context, id uint64) (*Run, error)
	// ListRuns returns a page of runs, newest first, and the Before of
	// the next page (0: none).
	ListRuns(ctx context.Context, f RunFilter) ([]*Run, uint64, error)
	// Preview renders the HTML digest the subscriber would get if a run
	// started now; ok is false when nothing is new for them.
	Preview(ctx context.Context, email string) (html string, ok bool, err error)
	// PreviewLatest renders a digest of the latest posts (sample posts
	// when there are none) in language lang: the blog's look, as the
	// admin UI shows it.
	PreviewLatest(ctx context.Context, lang string) (string, error)
	// SendTest queues a sample digest of the latest posts to any address,
	// marked as a test; no reader's cursor moves. With topics, of the
	// latest posts a reader with those topics would get.
	SendTest(ctx context.Context, to string, topics []string) error
	// Timetable says when runs start by themselves: the next time of
	// each frequency's cron schedule, and with digest.local_time of each
	// slot, from the schedules that fire the runs.
	Timetable(ctx context.Context) (*Timetable, error)
	// NewPosts tells the digest side that posts arrived (instant readers).
	NewPosts()
}

// Timetable is when runs start by themselves.
type Timetable struct {
	// Timezone is digest.timezone, an IANA name ("UTC" by default): the
	// schedules' zone, and the zone of readers who chose none.
	Timezone string `json:"timezone"`
	// LocalTime: daily and weekly run in each reader's own time zone
	// (digest.local_time); see Schedule.Slots.
	LocalTime bool       `json:"local_time"`
	Schedules []Schedule `json:"schedules"`
}

// Schedule is one frequency's place in the timetable.
type Schedule struct {
	Frequency Frequency `json:"frequency"`
	// Cron is the expression, "" when runs of this frequency start only
	// when posts arrive (instant) or by hand (no schedule set).
	Cron string `json:"cron"`
	// Next is when the schedule fires next (with local time, its soonest
	// slot); nil without a schedule.
	Next *time.Time `json:"next"`
	// Slots, with local time, are the next time of each slot: a time the
	// schedule comes due in the zones of some readers, soonest first.
	Slots []Slot `json:"slots,omitempty"`
}

// Slot is one time a local-time schedule comes due, and for whom.
type Slot struct {
	At time.Time `json:"at"`
	// Zones are the readers' time zones it comes due in.
	Zones []string `json:"zones"`
	// Readers counts the confirmed readers in those zones.
	Readers int `json:"readers"`
}

// PostInput is a post sent to the API (a CMS webhook, an admin).
type PostInput struct {
	GUID        string   `json:"guid"`
	URL         string   `json:"url"`
	Title       string   `json:"title"`
	Summary     string   `json:"summary"`
	Content     string   `json:"content"`
	Author      string   `json:"author"`
	Categories  []string `json:"categories"`
	PublishedAt string   `json:"published_at"` // RFC 3339
}

// PostRuns is a post with the runs that carried it: for each frequency,
// the first real run whose cut-off took it in.
type PostRuns struct {
	*Post
	Runs []uint64 `json:"runs"`
}

// PollResult says what one poll (or one WebSub push) of a feed found.
type PollResult struct {
	Feed    string `json:"feed"`
	Status  string `json:"status"` // "ok", "not_modified" or "error"
	Items   int    `json:"items"`  // posts the document held
	New     int    `json:"new"`    // posts created
	Updated int    `json:"updated"`
	// Held counts new posts recorded silent because they were dated more
	// than max_age before herald first saw them.
	Held int `json:"held"`
	// Skipped names what the document held that was left out, one line
	// each (a bad item, a field of the wrong type, items over a limit).
	Skipped []string `json:"skipped,omitempty"`
	Error   string   `json:"error,omitempty"`
	// Backlog is true when this was the feed's first good poll: its posts
	// were recorded silently, not mailed.
	Backlog  bool      `json:"backlog"`
	NextPoll time.Time `json:"next_poll"`
	// Push is true for a result of a WebSub push, not a poll.
	Push bool `json:"push,omitempty"`
}

// PostService is the admin's view of the posts and the feeds.
type PostService interface {
	// ListPosts returns up to limit posts with ID < before (0: the
	// newest), newest first, each with the runs that carried it, and the
	// next before (0: no more).
	ListPosts(ctx context.Context, limit int, before uint64) ([]*PostRuns, uint64, error)
	// AddPost checks and cleans a post as feed posts are, and stores it;
	// created is false when it updated a known post (same GUID or URL).
	AddPost(ctx context.Context, in PostInput) (p *Post, created bool, err error)
	// Feeds returns what is known of every feed.
	Feeds(ctx context.Context) ([]*FeedState, error)
	// PollFeeds polls every feed now.
	PollFeeds(ctx context.Context) ([]*PollResult, error)
	// SendPost makes a silent post (a feed's backlog, older than max_age)
	// go out: it becomes the newest post, for every reader's next email.
	SendPost(ctx context.Context, id uint64) (*Post, error)
}

// PushService takes a WebSub hub's callbacks for the feeds that have one
// (feed.Poller): the verification of intent and the content distribution.
type PushService interface {
	// VerifyIntent returns the challenge to echo; ENOTFOUND when herald
	// did not ask for what the hub verifies.
	VerifyIntent(ctx context.Context, feedID string, q url.Values) (string, error)
	// Push takes a distributed body; EFORBIDDEN for a bad or missing
	// signature. It returns what the body brought.
	Push(ctx context.Context, feedID, signature, contentType string, body []byte) (*PollResult, error)
}

// WebhookService takes the email providers' bounce and complaint events
// (POST /webhooks/{provider}), each authenticated the provider's way, and
// applies them through the SubscriptionService.
type WebhookService interface {
	// Webhook authenticates one call and applies the events in it.
	// Nothing changes unless the call is authentic: a bad signature or
	// password is EUNAUTHORIZED, a provider not configured ENOTFOUND, a
	// body that does not parse EMALFORMED.
	Webhook(ctx context.Context, provider string, h http.Header, body []byte) (*WebhookResult, error)
}

// Stats are the figures of GET /api/v1/stats, the dashboard and /metrics.
type Stats struct {
	Subscribers SubscriberStats `json:"subscribers"`
	Posts       int             `json:"posts"`
	Runs        int             `json:"runs"`
	Emails      EmailStats      `json:"emails"`
	// Outbox is how many messages wait in the outbox (the held
	// confirmations among them).
	Outbox int `json:"outbox"`
	// Routes: sent, failed, deferred and set-aside per relay or provider
	// since the process started (none with the file transport).
	Routes []RouteStats `json:"routes,omitempty"`
	// Confirmations is the budget of confirmation emails and what waits
	// for it.
	Confirmations ConfirmationStats `json:"confirmations"`
}

// ConfirmationStats: the budget of confirmation emails
// (security.confirmations_per_hour), the confirmations waiting for it and
// why, and the sign-up challenge.
type ConfirmationStats struct {
	// Waiting counts the held confirmations; WaitingByReason splits them
	// by lane (Hold.String(): "budget", "challenge_unsolved"), every lane
	// present.
	Waiting         int            `json:"waiting"`
	WaitingByReason map[string]int `json:"waiting_by_reason"`
	// Reason says in words why they wait ("" when none do).
	Reason string `json:"reason,omitempty"`
	// PerHour is the cap (0: none); Available how many confirmations it
	// would let go now.
	PerHour   int `json:"per_hour"`
	Available int `json:"available"`
	// NextRelease is when the budget frees the next one, while some wait.
	NextRelease *time.Time `json:"next_release,omitempty"`
	// Challenge is security.challenge (off, auto, always), and
	// ChallengeActive whether sign-ups are asked to solve it now.
	Challenge       string `json:"challenge"`
	ChallengeActive bool   `json:"challenge_active"`
}

// Challenge is a proof of work for a sign-up: find a decimal Solution
// such that SHA-256(Challenge + ":" + Solution) starts with Difficulty
// zero bits. The challenge is signed by herald and expires; a solution
// counts once.
type Challenge struct {
	Challenge  string    `json:"challenge"`
	Difficulty int       `json:"difficulty"`
	ExpiresAt  time.Time `json:"expires_at"`
}

// ChallengeService issues and checks sign-up challenges.
type ChallengeService interface {
	// Required says whether sign-ups are asked to solve one now
	// (security.challenge, and under "auto" whether confirmations wait
	// for the budget).
	Required() bool
	// Issue returns a fresh challenge.
	Issue() Challenge
	// Verify checks a solution: EINVALID saying why when it does not
	// count (malformed, forged, expired, too little work, used already).
	// A solution that counts is spent.
	Verify(challenge, solution string) error
}

// SubscriberStats counts subscribers. Every status and frequency is
// present, zero when there are none.
type SubscriberStats struct {
	Total                int                          `json:"total"`
	ByStatus             map[Status]int               `json:"by_status"`
	ByFrequency          map[Frequency]int            `json:"by_frequency"`
	ConfirmedByFrequency map[Frequency]int            `json:"confirmed_by_frequency"`
	ByStatusAndFrequency map[Status]map[Frequency]int `json:"by_status_and_frequency"`
	// ByTopic counts the confirmed readers who chose each topic, and
	// WithTopics those who chose any: the other confirmed readers get
	// every post.
	ByTopic    map[string]int `json:"by_topic"`
	WithTopics int            `json:"with_topics"`
}

// NewSubscriberStats sums counts by status and frequency into every view
// of them.
func NewSubscriberStats(counts map[Status]map[Frequency]int) SubscriberStats {
	st := SubscriberStats{
		ByStatus:             map[Status]int{},
		ByFrequency:          map[Frequency]int{},
		ConfirmedByFrequency: map[Frequency]int{},
		ByStatusAndFrequency: map[Status]map[Frequency]int{},
		ByTopic:              map[string]int{},
	}
	for _, s := range Statuses {
		st.ByStatus[s] = 0
		st.ByStatusAndFrequency[s] = map[Frequency]int{}
		for _, f := range Frequencies {
			st.ByStatusAndFrequency[s][f] = 0
		}
	}
	for _, f := range Frequencies {
		st.ByFrequency[f] = 0
		st.ConfirmedByFrequency[f] = 0
	}
	for s, byFreq := range counts {
		if st.ByStatusAndFrequency[s] == nil {
			st.ByStatusAndFrequency[s] = map[Frequency]int{}
		}
		for f, n := range byFreq {
			st.ByStatusAndFrequency[s][f] += n
			st.Total += n
			st.ByStatus[s] += n
			st.ByFrequency[f] += n
			if s == StatusConfirmed {
				st.ConfirmedByFrequency[f] += n
			}
		}
	}
	return st
}

// EmailStats are the durable counters of delivered and failed emails
// (every kind).
type EmailStats struct {
	Sent   int64 `json:"sent"`
	Failed int64 `json:"failed"`
}

// StatsService counts.
type StatsService interface {
	Stats(ctx context.Context) (*Stats, error)
}

// ArchiveService is the public archive of past digests, read side.
type ArchiveService interface {
	// Archive returns the entry with id; ENOTFOUND if none.
	Archive(ctx context.Context, id uint64) (*ArchiveEntry, error)
	// ListArchive returns up to limit entries with ID < before (0: the
	// newest), newest first, and the before of the next page (0: none).
	ListArchive(ctx context.Context, limit int, before uint64) ([]*ArchiveEntry, uint64, error)
}
