package feed

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/herald-dev/herald"
)

// Poller defaults.
const (
	DefaultInterval   = 15 * time.Minute
	DefaultMaxBackoff = 6 * time.Hour
	// maxRetryAfter bounds a server's Retry-After: a typo there must not
	// silence a feed for a year.
	maxRetryAfter = 24 * time.Hour
	// storeRetry is how soon Run tries again when the store fails it.
	storeRetry = time.Minute
	// minSleep keeps Run from spinning if a clock misbehaves.
	minSleep = 50 * time.Millisecond
)

// Poll statuses.
const (
	StatusOK          = "ok"
	StatusNotModified = "not_modified"
	StatusError       = "error"
)

// FeedConfig is one feed to watch.
type FeedConfig struct {
	URL      string
	Interval time.Duration // default 15m
}

// PollerOptions configures a Poller.
type PollerOptions struct {
	Logger *slog.Logger     // nil: discard
	Now    func() time.Time // nil: time.Now
	Feeds  []FeedConfig
	// OnNewPosts is called after new, non-silent posts are committed, with
	// how many. It runs on the polling goroutine: keep it short.
	OnNewPosts func(ctx context.Context, feedURL string, n int)
	MaxBackoff time.Duration // cap on the failure backoff; default 6h
	// OnPoll hears every poll's result (for metrics); it may be nil.
	OnPoll func(res *PollResult)
}

// PollResult says what one poll found (the type is the root package's,
// the answer of POST /api/v1/feeds/poll).
type PollResult = herald.PollResult

// Poller polls feeds into a PostStore. PollOne and PollAll may be called
// while Run is running: polls of one feed never overlap.
type Poller struct {
	store      herald.PostStore
	fetcher    *Fetcher
	parser     *Parser
	log        *slog.Logger
	now        func() time.Time
	feeds      []FeedConfig
	onNew      func(ctx context.Context, feedURL string, n int)
	onPoll     func(res *PollResult)
	maxBackoff time.Duration

	mu    sync.Mutex
	locks map[string]*sync.Mutex // one per feed URL
}

// NewPoller returns a Poller with opts, defaults filled in.
func NewPoller(store herald.PostStore, fetcher *Fetcher, parser *Parser, opts PollerOptions) *Poller {
	p := &Poller{
		store:      store,
		fetcher:    fetcher,
		parser:     parser,
		log:        opts.Logger,
		now:        opts.Now,
		onNew:      opts.OnNewPosts,
		onPoll:     opts.OnPoll,
		maxBackoff: opts.MaxBackoff,
		locks:      make(map[string]*sync.Mutex),
	}
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	if p.now == nil {
		p.now = time.Now
	}
	if p.maxBackoff <= 0 {
		p.maxBackoff = DefaultMaxBackoff
	}
	for _, f := range opts.Feeds {
		if f.Interval <= 0 {
			f.Interval = DefaultInterval
		}
		p.feeds = append(p.feeds, f)
	}
	return p
}

func (p *Poller) interval(url string) time.Duration {
	for _, f := range p.feeds {
		if f.URL == url {
			return f.Interval
		}
	}
	return DefaultInterval
}

func (p *Poller) lock(url string) func() {
	p.mu.Lock()
	l, ok := p.locks[url]
	if !ok {
		l = new(sync.Mutex)
		p.locks[url] = l
	}
	p.mu.Unlock()
	l.Lock()
	return l.Unlock
}

// PollOne fetches and parses the feed at url and records what it holds.
// On failure the last good state is kept, the error recorded and the next
// poll backed off; the error is returned as well as described in the
// result.
func (p *Poller) PollOne(ctx context.Context, url string) (res *PollResult, err error) {
	defer p.lock(url)()
	defer func() {
		if p.onPoll != nil && res != nil {
			p.onPoll(res)
		}
	}()
	res = &PollResult{Feed: url}

	st, err := p.store.FeedState(ctx, url)
	if err != nil {
		return p.failed(res, fmt.Errorf("feed: load state of %s: %w", url, err))
	}
	if st == nil {
		st = &herald.FeedState{}
	}
	st.URL = url
	now := p.now()
	interval := p.interval(url)

	fr, err := p.fetcher.Fetch(ctx, url, st.ETag, st.LastModified)
	if err != nil {
		if ctx.Err() != nil {
			// Shutting down is not the feed's fault: record nothing.
			return p.failed(res, err)
		}
		return p.recordFailure(ctx, res, st, now, interval, err)
	}

	st.LastPoll = now
	if fr.NotModified {
		st.LastSuccess = now
		st.Failures = 0
		st.NewPosts = 0
		st.NextPoll = now.Add(interval)
		st.ETag, st.LastModified = fr.ETag, fr.LastModified
		if err := p.store.PutFeedState(ctx, st); err != nil {
			return p.failed(res, fmt.Errorf("feed: save state of %s: %w", url, err))
		}
		res.Status, res.Items, res.NextPoll = StatusNotModified, st.Items, st.NextPoll
		p.log.DebugContext(ctx, "feed not modified", "feed", url)
		return res, nil
	}

	posts, err := p.parser.Parse(fr.Body, fr.FinalURL)
	if err != nil {
		return p.recordFailure(ctx, res, st, now, interval, err)
	}
	backlog := !st.Initialized
	for _, post := range posts {
		post.Feed = url
		post.FoundAt = now
		post.Silent = backlog
	}
	// Posts get ids in arrival order and digests list them by id: store the
	// oldest first. Feeds list newest first; dates settle it when all have one.
	slices.Reverse(posts)
	if !slices.ContainsFunc(posts, func(p *herald.Post) bool { return p.PublishedAt.IsZero() }) {
		slices.SortStableFunc(posts, func(a, b *herald.Post) int { return a.PublishedAt.Compare(b.PublishedAt) })
	}
	created, err := p.store.UpsertPosts(ctx, posts)
	if err != nil {
		// Nothing was committed (one transaction): a store fault, not the
		// feed's, but backing off keeps a sick store from being hammered.
		return p.recordFailure(ctx, res, st, now, interval, fmt.Errorf("feed: store posts of %s: %w", url, err))
	}

	st.Initialized = true
	st.ETag, st.LastModified = fr.ETag, fr.LastModified
	st.LastSuccess = now
	st.Failures = 0
	st.Items = len(posts)
	st.NewPosts = created
	st.TotalPosts += created
	st.NextPoll = now.Add(interval)
	saveErr := p.store.PutFeedState(ctx, st)
	// The posts are committed whatever became of the state: announce them,
	// or instant readers would wait for the next new post.
	if created > 0 && !backlog && p.onNew != nil {
		p.onNew(ctx, url, created)
	}
	if saveErr != nil {
		// At worst the next poll sees the same posts again and updates them.
		return p.failed(res, fmt.Errorf("feed: save state of %s: %w", url, saveErr))
	}

	res.Status, res.Items, res.New, res.Updated = StatusOK, len(posts), created, len(posts)-created
	res.Backlog, res.NextPoll = backlog, st.NextPoll
	p.log.InfoContext(ctx, "feed polled", "feed", url, "items", len(posts), "new", created, "backlog", backlog)
	return res, nil
}

// recordFailure keeps the last good state, notes the error and backs off.
func (p *Poller) recordFailure(ctx context.Context, res *PollResult, st *herald.FeedState, now time.Time, interval time.Duration, cause error) (*PollResult, error) {
	st.LastPoll = now
	st.LastError = cause.Error()
	st.LastErrorAt = now
	st.Failures++
	st.NewPosts = 0
	st.NextPoll = now.Add(p.backoff(interval, st.Failures, cause))
	res.NextPoll = st.NextPoll
	if err := p.store.PutFeedState(ctx, st); err != nil {
		cause = errors.Join(cause, fmt.Errorf("feed: save state of %s: %w", st.URL, err))
	}
	p.log.WarnContext(ctx, "feed poll failed", "feed", st.URL, "failures", st.Failures, "next_poll", st.NextPoll, "err", cause)
	return p.failed(res, cause)
}

func (p *Poller) failed(res *PollResult, err error) (*PollResult, error) {
	res.Status = StatusError
	res.Error = err.Error()
	return res, err
}

// backoff doubles the interval with each consecutive failure, up to
// maxBackoff (or the interval, if that is longer), and waits at least as
// long as the server's Retry-After.
func (p *Poller) backoff(interval time.Duration, failures int, cause error) time.Duration {
	limit := max(p.maxBackoff, interval)
	d := interval
	for i := 0; i < failures && d < limit; i++ {
		d *= 2
	}
	d = min(d, limit)
	var herr *HTTPError
	if errors.As(cause, &herr) && herr.RetryAfter > d {
		d = min(herr.RetryAfter, max(maxRetryAfter, limit))
	}
	return d
}

// PollAll polls every configured feed now, one after another.
func (p *Poller) PollAll(ctx context.Context) []*PollResult {
	results := make([]*PollResult, 0, len(p.feeds))
	for _, f := range p.feeds {
		res, _ := p.PollOne(ctx, f.URL) // the error is in the result
		results = append(results, res)
	}
	return results
}

// Run polls each configured feed when it is due until ctx is done, and
// returns nil then. Every feed is polled at start, except one that is
// backing off (its server asked us to wait, or kept failing).
func (p *Poller) Run(ctx context.Context) error {
	started := make(map[string]bool, len(p.feeds))
	for {
		var next time.Time
		for _, f := range p.feeds {
			if ctx.Err() != nil {
				return nil
			}
			due, err := p.due(ctx, f, started[f.URL])
			if err != nil {
				p.log.ErrorContext(ctx, "feed state unavailable", "feed", f.URL, "err", err)
				due = p.now().Add(storeRetry)
			} else if !due.After(p.now()) {
				started[f.URL] = true
				res, _ := p.PollOne(ctx, f.URL)
				due = res.NextPoll
				if due.IsZero() { // the state could not be read or saved
					due = p.now().Add(storeRetry)
				}
			}
			if next.IsZero() || due.Before(next) {
				next = due
			}
		}
		if next.IsZero() { // no feeds: nothing to do but wait
			<-ctx.Done()
			return nil
		}
		t := time.NewTimer(max(next.Sub(p.now()), minSleep))
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

// due says when f should be polled next.
func (p *Poller) due(ctx context.Context, f FeedConfig, started bool) (time.Time, error) {
	st, err := p.store.FeedState(ctx, f.URL)
	if err != nil {
		return time.Time{}, err
	}
	if st == nil {
		return time.Time{}, nil
	}
	if !started && st.Failures == 0 {
		return time.Time{}, nil // first poll at start
	}
	switch {
	case !st.NextPoll.IsZero():
		return st.NextPoll, nil
	case !st.LastPoll.IsZero():
		return st.LastPoll.Add(f.Interval), nil
	}
	return time.Time{}, nil
}
