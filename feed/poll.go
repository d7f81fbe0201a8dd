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
	// DefaultMaxAge: a post first seen longer than this after its date is
	// recorded, not mailed.
	DefaultMaxAge = 72 * time.Hour
	// DefaultConcurrency is how many feeds are fetched at once.
	DefaultConcurrency = 4
	// pollGrace is what a manual poll of every feed may take beyond the
	// fetch timeout: parsing and storing.
	pollGrace = 5 * time.Second
	// maxRetryAfter bounds a server's Retry-After: a typo there must not
	// silence a feed for a year.
	maxRetryAfter = 24 * time.Hour
	// storeRetry is how soon Run tries again when the store fails it.
	storeRetry = time.Minute
	// minSleep keeps Run from spinning if a clock misbehaves.
	minSleep = 50 * time.Millisecond
	// maxSkippedLines bounds what a poll result and a feed state name.
	maxSkippedLines = 50
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
	// MaxAge: a new post dated longer ago than this is recorded silent
	// (a site move or changed guids must not re-mail the archive).
	// Default 72h.
	MaxAge time.Duration
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
	// Concurrency bounds the feeds fetched at once; default 4.
	Concurrency int
	// OnPoll hears every poll's result (for metrics); it may be nil.
	OnPoll func(res *PollResult)
	// WebSub turns on WebSub subscriptions for feeds that advertise a
	// hub; zero (no CallbackBase): polling only.
	WebSub WebSubOptions
}

// PollResult says what one poll (or one WebSub push) found; the type is
// the root package's, the answer of POST /api/v1/feeds/poll.
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
	sem        chan struct{} // bounds concurrent fetches
	websub     *webSub       // nil: polling only

	mu    sync.Mutex
	locks map[string]chan struct{} // one per feed URL, held while it is polled
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
		locks:      make(map[string]chan struct{}),
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
	if opts.Concurrency <= 0 {
		opts.Concurrency = DefaultConcurrency
	}
	p.sem = make(chan struct{}, opts.Concurrency)
	for _, f := range opts.Feeds {
		if f.Interval <= 0 {
			f.Interval = DefaultInterval
		}
		if f.MaxAge <= 0 {
			f.MaxAge = DefaultMaxAge
		}
		p.feeds = append(p.feeds, f)
	}
	if opts.WebSub.CallbackBase != "" {
		p.websub = newWebSub(p, opts.WebSub)
	}
	return p
}

func (p *Poller) config(url string) FeedConfig {
	for _, f := range p.feeds {
		if f.URL == url {
			return f
		}
	}
	return FeedConfig{URL: url, Interval: DefaultInterval, MaxAge: DefaultMaxAge}
}

// lock takes the feed's lock, or gives up when ctx is done.
func (p *Poller) lock(ctx context.Context, url string) (func(), error) {
	p.mu.Lock()
	l, ok := p.locks[url]
	if !ok {
		l = make(chan struct{}, 1)
		p.locks[url] = l
	}
	p.mu.Unlock()
	select {
	case l <- struct{}{}:
		return func() { <-l }, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("feed: %s: another poll of this feed is still running: %w", url, ctx.Err())
	}
}

// slot takes one of the concurrent fetch slots, or gives up when ctx is done.
func (p *Poller) slot(ctx context.Context) (func(), error) {
	select {
	case p.sem <- struct{}{}:
		return func() { <-p.sem }, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("feed: every fetch slot is busy: %w", ctx.Err())
	}
}

// PollOne fetches and parses the feed at url and records what it holds.
// On failure the last good state is kept, the error recorded and the next
// poll backed off; the error is returned as well as described in the
// result.
func (p *Poller) PollOne(ctx context.Context, url string) (res *PollResult, err error) {
	res = &PollResult{Feed: url}
	defer func() {
		if p.onPoll != nil && res != nil {
			p.onPoll(res)
		}
	}()
	unlock, err := p.lock(ctx, url)
	if err != nil {
		return p.failed(res, err)
	}
	defer unlock()
	release, err := p.slot(ctx)
	if err != nil {
		return p.failed(res, err)
	}
	defer release()

	st, err := p.store.FeedState(ctx, url)
	if err != nil {
		return p.failed(res, fmt.Errorf("feed: load state of %s: %w", url, err))
	}
	if st == nil {
		st = &herald.FeedState{}
	}
	st.URL = url
	now := p.now()
	cfg := p.config(url)

	fr, err := p.fetcher.Fetch(ctx, url, st.ETag, st.LastModified)
	if err != nil {
		if ctx.Err() != nil {
			// Shutting down, or a manual poll out of time: not the
			// feed's fault, record nothing.
			return p.failed(res, err)
		}
		return p.recordFailure(ctx, res, st, now, cfg.Interval, err)
	}

	st.LastPoll = now
	if fr.NotModified {
		st.LastSuccess = now
		st.Failures = 0
		st.NewPosts = 0
		st.Held = 0
		st.NextPoll = now.Add(cfg.Interval)
		st.ETag, st.LastModified = fr.ETag, fr.LastModified
		if err := p.saveState(ctx, st); err != nil {
			return p.failed(res, fmt.Errorf("feed: save state of %s: %w", url, err))
		}
		res.Status, res.Items, res.NextPoll = StatusNotModified, st.Items, st.NextPoll
		p.log.DebugContext(ctx, "feed not modified", "feed", url)
		p.afterPoll(ctx, url, fr, nil)
		return res, nil
	}

	parsed, err := p.parser.Parse(fr.Body, fr.FinalURL)
	if err != nil {
		return p.recordFailure(ctx, res, st, now, cfg.Interval, err)
	}
	if err := p.ingest(ctx, res, st, cfg, parsed, now); err != nil {
		return p.recordFailure(ctx, res, st, now, cfg.Interval, err)
	}
	st.ETag, st.LastModified = fr.ETag, fr.LastModified
	st.LastSuccess = now
	st.Failures = 0
	st.Items = len(parsed.Posts)
	st.NextPoll = now.Add(cfg.Interval)
	res.NextPoll = st.NextPoll
	if err := p.saveState(ctx, st); err != nil {
		// At worst the next poll sees the same posts again and updates them.
		return p.failed(res, fmt.Errorf("feed: save state of %s: %w", url, err))
	}
	p.log.InfoContext(ctx, "feed polled", "feed", url, "items", res.Items, "new", res.New,
		"held", res.Held, "skipped", len(res.Skipped), "backlog", res.Backlog)
	p.afterPoll(ctx, url, fr, parsed)
	return res, nil
}

// ingest stores what a feed document holds: the one path for a polled
// body and a pushed one. It fills res and the counters of st (which the
// caller saves), and announces new posts.
func (p *Poller) ingest(ctx context.Context, res *PollResult, st *herald.FeedState, cfg FeedConfig, parsed *Parsed, now time.Time) error {
	posts := parsed.Posts
	backlog := !st.Initialized
	for _, post := range posts {
		post.Feed = cfg.URL
		post.FoundAt = now
		switch {
		case backlog:
			post.Silent, post.SilentReason = true, herald.SilentBacklog
		case !post.PublishedAt.IsZero() && now.Sub(post.PublishedAt) > cfg.MaxAge:
			post.Silent = true
			post.SilentReason = fmt.Sprintf("%s: published %s, first seen %s later (max_age %s)",
				herald.SilentMaxAge, post.PublishedAt.Format("2006-01-02 15:04 MST"), roundAge(now.Sub(post.PublishedAt)), cfg.MaxAge)
		}
	}
	if parsed.Hashed > 0 {
		p.log.InfoContext(ctx, "feed items without guid or link, known by a hash of title and date", "feed", cfg.URL, "items", parsed.Hashed)
	}
	for _, s := range parsed.Skipped {
		p.log.WarnContext(ctx, "feed item skipped", "feed", cfg.URL, "why", s)
	}
	// Posts get ids in arrival order and digests list them by id: store the
	// oldest first. Feeds list newest first; dates settle it when all have one.
	posts = slices.Clone(posts)
	slices.Reverse(posts)
	if !slices.ContainsFunc(posts, func(p *herald.Post) bool { return p.PublishedAt.IsZero() }) {
		slices.SortStableFunc(posts, func(a, b *herald.Post) int { return a.PublishedAt.Compare(b.PublishedAt) })
	}
	// Posts created by the upsert get ids above the newest before it; the
	// ones it updated keep theirs.
	last, err := p.store.LastPostID(ctx)
	if err != nil {
		return fmt.Errorf("feed: store posts of %s: %w", cfg.URL, err)
	}
	created, err := p.store.UpsertPosts(ctx, posts)
	if err != nil {
		// Nothing was committed (one transaction): a store fault, not the
		// feed's, but backing off keeps a sick store from being hammered.
		return fmt.Errorf("feed: store posts of %s: %w", cfg.URL, err)
	}
	held := 0
	for _, post := range posts {
		if post.ID > last && post.Silent && !backlog {
			held++
		}
	}
	skipped := parsed.Skipped
	if len(skipped) > maxSkippedLines {
		skipped = append(slices.Clone(skipped[:maxSkippedLines-1]), fmt.Sprintf("…and %d more", len(skipped)-maxSkippedLines+1))
	}
	st.Initialized = true
	st.NewPosts = created
	st.Held = held
	st.TotalPosts += created
	st.Skipped = skipped
	res.Status, res.Items, res.New, res.Updated = StatusOK, len(posts), created, len(posts)-created
	res.Held, res.Skipped, res.Backlog = held, skipped, backlog
	// The posts are committed whatever becomes of the state: announce them,
	// or instant readers would wait for the next new post.
	if mailed := created - held; mailed > 0 && !backlog && p.onNew != nil {
		p.onNew(ctx, cfg.URL, mailed)
	}
	return nil
}

// roundAge words a post's age for a reason line.
func roundAge(d time.Duration) string {
	if d >= 48*time.Hour {
		return fmt.Sprintf("%dd", int(d/(24*time.Hour)))
	}
	return d.Round(time.Minute).String()
}

// saveState saves what a poll learnt, leaving the WebSub state as the
// callbacks may have changed it meanwhile.
func (p *Poller) saveState(ctx context.Context, st *herald.FeedState) error {
	_, err := p.store.UpdateFeedState(ctx, st.URL, func(cur *herald.FeedState) error {
		push := cur.Push
		*cur = *st
		cur.Push = push
		return nil
	})
	return err
}

// recordFailure keeps the last good state, notes the error and backs off.
func (p *Poller) recordFailure(ctx context.Context, res *PollResult, st *herald.FeedState, now time.Time, interval time.Duration, cause error) (*PollResult, error) {
	st.LastPoll = now
	st.LastError = cause.Error()
	st.LastErrorAt = now
	st.Failures++
	st.NewPosts = 0
	st.Held = 0
	st.NextPoll = now.Add(p.backoff(interval, st.Failures, cause))
	res.NextPoll = st.NextPoll
	if err := p.saveState(ctx, st); err != nil {
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

// PollAll polls every configured feed now, concurrently (at most
// Concurrency fetches at a time), and answers within the fetch timeout
// and a few seconds whatever the feeds do: a feed still busy then is
// reported as an error, and its poll is not recorded.
func (p *Poller) PollAll(ctx context.Context) []*PollResult {
	ctx, cancel := context.WithTimeout(ctx, p.fetcher.timeout+pollGrace)
	defer cancel()
	results := make([]*PollResult, len(p.feeds))
	var wg sync.WaitGroup
	for i, f := range p.feeds {
		wg.Go(func() {
			results[i], _ = p.PollOne(ctx, f.URL) // the error is in the result
		})
	}
	wg.Wait()
	return results
}

// Run polls each configured feed when it is due until ctx is done, and
// returns nil then. Each feed has its own schedule, so a slow feed holds
// up no other; at most Concurrency fetch at once. Every feed is polled at
// start, except one that is backing off (its server asked us to wait, or
// kept failing).
func (p *Poller) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	for _, f := range p.feeds {
		wg.Go(func() { p.runFeed(ctx, f) })
	}
	<-ctx.Done()
	wg.Wait()
	return nil
}

func (p *Poller) runFeed(ctx context.Context, f FeedConfig) {
	started := false
	for ctx.Err() == nil {
		due, err := p.due(ctx, f, started)
		if err != nil {
			p.log.ErrorContext(ctx, "feed state unavailable", "feed", f.URL, "err", err)
			due = p.now().Add(storeRetry)
		} else if !due.After(p.now()) {
			started = true
			res, _ := p.PollOne(ctx, f.URL)
			due = res.NextPoll
			if due.IsZero() { // the state could not be read or saved
				due = p.now().Add(storeRetry)
			}
		}
		t := time.NewTimer(max(due.Sub(p.now()), minSleep))
		select {
		case <-ctx.Done():
			t.Stop()
			return
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
