package feed

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/herald-dev/herald"
)

// testItem is one RSS item served by feedServer.
type testItem struct {
	guid, link, title string
	pub               time.Time
}

func rss(items ...testItem) string {
	var b strings.Builder
	b.WriteString(`<?xml version="1.0" encoding="UTF-8"?><rss version="2.0"><channel><title>T</title><link>https://t.example.org/</link><description>d</description>`)
	for _, it := range items {
		fmt.Fprintf(&b, "<item><title>%s</title><link>%s</link><guid isPermaLink=\"false\">%s</guid><pubDate>%s</pubDate><description>About %s.</description></item>\n",
			it.title, it.link, it.guid, it.pub.Format(time.RFC1123Z), it.title)
	}
	b.WriteString(`</channel></rss>`)
	return b.String()
}

// feedServer serves whatever the test sets, and records the requests.
type feedServer struct {
	*httptest.Server
	mu         sync.Mutex
	body       string
	etag       string
	lastMod    string
	status     int
	retryAfter string
	headers    []http.Header
}

func newFeedServer(t *testing.T) *feedServer {
	s := &feedServer{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.headers = append(s.headers, r.Header.Clone())
		if s.retryAfter != "" {
			w.Header().Set("Retry-After", s.retryAfter)
		}
		if s.status != 0 {
			http.Error(w, "trouble", s.status)
			return
		}
		if s.etag != "" {
			w.Header().Set("ETag", s.etag)
			if r.Header.Get("If-None-Match") == s.etag {
				w.WriteHeader(http.StatusNotModified)
				return
			}
		}
		if s.lastMod != "" {
			w.Header().Set("Last-Modified", s.lastMod)
		}
		w.Header().Set("Content-Type", "application/rss+xml; charset=UTF-8")
		fmt.Fprint(w, s.body)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *feedServer) set(fn func(s *feedServer)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	fn(s)
}

func (s *feedServer) lastHeaders() http.Header {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.headers[len(s.headers)-1]
}

// clock is a test clock moved by hand.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) advance(d time.Duration) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
	return c.t
}

type newPostsCall struct {
	feed string
	n    int
}

type pollFixture struct {
	store  *testStore
	clock  *clock
	poller *Poller
	calls  []newPostsCall
	mu     sync.Mutex
}

func newPollFixture(t *testing.T, interval time.Duration, fopts FetcherOptions, urls ...string) *pollFixture {
	f := &pollFixture{store: newTestStore(t), clock: &clock{t: time.Date(2024, 6, 1, 12, 0, 0, 0, time.UTC)}}
	var feeds []FeedConfig
	for _, u := range urls {
		feeds = append(feeds, FeedConfig{URL: u, Interval: interval})
	}
	f.poller = NewPoller(f.store, NewFetcher(fopts), NewParser(), PollerOptions{
		Now:        f.clock.Now,
		Feeds:      feeds,
		MaxBackoff: 2 * time.Hour,
		OnNewPosts: func(_ context.Context, feed string, n int) {
			f.mu.Lock()
			defer f.mu.Unlock()
			f.calls = append(f.calls, newPostsCall{feed, n})
		},
	})
	return f
}

func (f *pollFixture) newPostsCalls() []newPostsCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]newPostsCall(nil), f.calls...)
}

func (f *pollFixture) poll(t *testing.T, url string) *PollResult {
	t.Helper()
	res, err := f.poller.PollOne(context.Background(), url)
	if res == nil {
		t.Fatalf("PollOne returned no result (err %v)", err)
	}
	if (err != nil) != (res.Status == StatusError) || (err != nil && res.Error != err.Error()) {
		t.Fatalf("result %+v does not match error %v", res, err)
	}
	return res
}

var (
	day   = 24 * time.Hour
	jan   = time.Date(2024, 1, 1, 9, 0, 0, 0, time.UTC)
	itemA = testItem{"a", "https://t.example.org/a", "Post A", jan}
	itemB = testItem{"b", "https://t.example.org/b", "Post B", jan.Add(30 * day)}
	// C is new to the poll fixture's clock (2024-06-01 12:00), so within max_age.
	itemC = testItem{"c", "https://t.example.org/c", "Post C", time.Date(2024, 6, 1, 9, 0, 0, 0, time.UTC)}
)

func TestPollBacklogThenNewPosts(t *testing.T) {
	srv := newFeedServer(t)
	f := newPollFixture(t, 15*time.Minute, FetcherOptions{}, srv.URL)
	srv.set(func(s *feedServer) { s.body = rss(itemB, itemA) }) // newest first, as feeds go
	t0 := f.clock.Now()

	// First poll: the backlog is recorded silently.
	res := f.poll(t, srv.URL)
	if res.Status != StatusOK || res.Items != 2 || res.New != 2 || res.Updated != 0 || !res.Backlog || !res.NextPoll.Equal(t0.Add(15*time.Minute)) {
		t.Fatalf("first poll = %+v", res)
	}
	posts := f.store.all()
	if len(posts) != 2 || posts[0].GUID != "a" || posts[1].GUID != "b" {
		t.Fatalf("posts = %+v (want oldest first)", posts)
	}
	for _, p := range posts {
		if !p.Silent || p.Feed != srv.URL || !p.FoundAt.Equal(t0) {
			t.Errorf("backlog post = %+v", p)
		}
	}
	if calls := f.newPostsCalls(); len(calls) != 0 {
		t.Errorf("OnNewPosts called for the backlog: %v", calls)
	}
	st := f.store.state(srv.URL)
	if !st.Initialized || st.Items != 2 || st.NewPosts != 2 || st.TotalPosts != 2 || !st.LastSuccess.Equal(t0) ||
		!st.LastPoll.Equal(t0) || st.Failures != 0 || !st.NextPoll.Equal(t0.Add(15*time.Minute)) {
		t.Errorf("state = %+v", st)
	}

	// Second poll: one new post, mailed.
	t1 := f.clock.advance(15 * time.Minute)
	srv.set(func(s *feedServer) { s.body = rss(itemC, itemB, itemA) })
	res = f.poll(t, srv.URL)
	if res.Status != StatusOK || res.Items != 3 || res.New != 1 || res.Updated != 2 || res.Backlog {
		t.Fatalf("second poll = %+v", res)
	}
	if calls := f.newPostsCalls(); len(calls) != 1 || calls[0] != (newPostsCall{srv.URL, 1}) {
		t.Errorf("OnNewPosts calls = %v", calls)
	}
	posts = f.store.all()
	if len(posts) != 3 || posts[2].GUID != "c" || posts[2].Silent || !posts[2].FoundAt.Equal(t1) {
		t.Fatalf("posts = %+v", posts)
	}
	if !posts[0].Silent || !posts[1].Silent || !posts[0].FoundAt.Equal(t0) {
		t.Errorf("backlog posts changed: %+v %+v", posts[0], posts[1])
	}
	if st := f.store.state(srv.URL); st.TotalPosts != 3 || st.NewPosts != 1 {
		t.Errorf("state = %+v", st)
	}

	// Third poll: the new post's title was edited. Updated, not new.
	f.clock.advance(15 * time.Minute)
	edited := itemC
	edited.title = "Post C (edited)"
	srv.set(func(s *feedServer) { s.body = rss(edited, itemB, itemA) })
	res = f.poll(t, srv.URL)
	if res.New != 0 || res.Updated != 3 {
		t.Fatalf("third poll = %+v", res)
	}
	posts = f.store.all()
	if len(posts) != 3 || posts[2].Title != "Post C (edited)" || posts[2].ID != 3 || posts[2].Silent || !posts[2].FoundAt.Equal(t1) {
		t.Errorf("edited post = %+v", posts[2])
	}
	if calls := f.newPostsCalls(); len(calls) != 1 {
		t.Errorf("OnNewPosts called for an edit: %v", calls)
	}

	// Fourth poll: an old post comes back under a new guid, same link (the
	// site changed its guids). A post of its own, but dated long before
	// herald saw it: recorded silent with the reason, not mailed.
	t4 := f.clock.advance(15 * time.Minute)
	moved := itemB
	moved.guid = "b-new-guid"
	srv.set(func(s *feedServer) { s.body = rss(edited, moved, itemA) })
	res = f.poll(t, srv.URL)
	if res.New != 1 || res.Held != 1 {
		t.Fatalf("fourth poll = %+v", res)
	}
	posts = f.store.all()
	if len(posts) != 4 || !posts[3].Silent || posts[3].GUID != "b-new-guid" || !posts[3].FoundAt.Equal(t4) ||
		!strings.HasPrefix(posts[3].SilentReason, "max_age: published 2024-01-31 09:00 UTC, first seen 122d later (max_age 72h0m0s)") {
		t.Errorf("posts = %+v", posts[3])
	}
	if calls := f.newPostsCalls(); len(calls) != 1 {
		t.Errorf("OnNewPosts called for a held post: %v", calls)
	}
	if st := f.store.state(srv.URL); st.TotalPosts != 4 || st.NewPosts != 1 || st.Held != 1 {
		t.Errorf("state = %+v", st)
	}
}

func TestPollNotModified(t *testing.T) {
	srv := newFeedServer(t)
	srv.set(func(s *feedServer) {
		s.body = rss(itemB, itemA)
		s.etag = `W/"abc"`
		s.lastMod = "Sat, 01 Jun 2024 11:00:00 GMT"
	})
	f := newPollFixture(t, 15*time.Minute, FetcherOptions{}, srv.URL)
	f.poll(t, srv.URL)
	before := f.store.state(srv.URL)

	t1 := f.clock.advance(15 * time.Minute)
	res := f.poll(t, srv.URL)
	if res.Status != StatusNotModified || res.Items != 2 || res.New != 0 {
		t.Fatalf("result = %+v", res)
	}
	h := srv.lastHeaders()
	if h.Get("If-None-Match") != `W/"abc"` || h.Get("If-Modified-Since") != "Sat, 01 Jun 2024 11:00:00 GMT" {
		t.Errorf("conditional headers = %v", h)
	}
	st := f.store.state(srv.URL)
	if !st.LastPoll.Equal(t1) || !st.LastSuccess.Equal(t1) || st.ETag != before.ETag || st.LastModified != before.LastModified ||
		st.Items != 2 || st.TotalPosts != 2 || !st.Initialized || !st.NextPoll.Equal(t1.Add(15*time.Minute)) {
		t.Errorf("state = %+v", st)
	}
	if n := len(f.store.all()); n != 2 {
		t.Errorf("%d posts", n)
	}
}

func TestPollErrorKeepsLastGoodState(t *testing.T) {
	srv := newFeedServer(t)
	srv.set(func(s *feedServer) { s.body = rss(itemB, itemA); s.etag = `"v1"` })
	f := newPollFixture(t, 15*time.Minute, FetcherOptions{}, srv.URL)
	f.poll(t, srv.URL)
	good := f.store.state(srv.URL)

	srv.set(func(s *feedServer) { s.status = http.StatusInternalServerError })
	for i, wantBackoff := range []time.Duration{30 * time.Minute, time.Hour, 2 * time.Hour, 2 * time.Hour} {
		now := f.clock.advance(15 * time.Minute)
		res := f.poll(t, srv.URL)
		if res.Status != StatusError || !strings.Contains(res.Error, "500 Internal Server Error") {
			t.Fatalf("poll %d = %+v", i, res)
		}
		st := f.store.state(srv.URL)
		if st.ETag != good.ETag || st.Items != good.Items || st.TotalPosts != good.TotalPosts ||
			!st.Initialized || !st.LastSuccess.Equal(good.LastSuccess) {
			t.Errorf("poll %d lost the good state: %+v", i, st)
		}
		if st.Failures != i+1 || st.LastError != res.Error || !st.LastErrorAt.Equal(now) || !st.LastPoll.Equal(now) {
			t.Errorf("poll %d: failure not recorded: %+v", i, st)
		}
		if !st.NextPoll.Equal(now.Add(wantBackoff)) || !res.NextPoll.Equal(st.NextPoll) {
			t.Errorf("poll %d: next poll in %s, want %s", i, st.NextPoll.Sub(now), wantBackoff)
		}
	}
	if n := len(f.store.all()); n != 2 {
		t.Errorf("%d posts", n)
	}

	// A bad body (an HTML error page with 200) stores nothing either.
	srv.set(func(s *feedServer) { s.status = 0; s.etag = ""; s.body = string(readFixture(t, "truncated.xml")) })
	res := f.poll(t, srv.URL)
	if res.Status != StatusError || !strings.Contains(res.Error, "not a valid RSS, Atom or JSON feed") {
		t.Fatalf("result = %+v", res)
	}
	if posts := f.store.all(); len(posts) != 2 || posts[1].Title != "Post B" {
		t.Errorf("posts = %+v", posts)
	}

	// Recovery resets the failure count and the interval.
	now := f.clock.advance(time.Hour)
	srv.set(func(s *feedServer) { s.body = rss(itemC, itemB, itemA) })
	res = f.poll(t, srv.URL)
	st := f.store.state(srv.URL)
	if res.Status != StatusOK || res.New != 1 || st.Failures != 0 || !st.NextPoll.Equal(now.Add(15*time.Minute)) || !st.LastSuccess.Equal(now) {
		t.Errorf("recovery: %+v, state %+v", res, st)
	}
}

func TestPollNewFeedThatFails(t *testing.T) {
	srv := newFeedServer(t)
	srv.set(func(s *feedServer) { s.body = string(readFixture(t, "html_page.html")) })
	f := newPollFixture(t, 15*time.Minute, FetcherOptions{}, srv.URL)
	res := f.poll(t, srv.URL)
	if res.Status != StatusError || !strings.HasPrefix(res.Error, "feed: not a valid RSS, Atom or JSON feed: ") {
		t.Fatalf("result = %+v", res)
	}
	st := f.store.state(srv.URL)
	if st.Initialized || st.Failures != 1 || len(f.store.all()) != 0 {
		t.Errorf("state = %+v", st)
	}
	// When it comes good, its posts are still the backlog.
	srv.set(func(s *feedServer) { s.body = rss(itemA) })
	if res := f.poll(t, srv.URL); !res.Backlog || !f.store.all()[0].Silent {
		t.Errorf("result = %+v", res)
	}
}

func TestPollRetryAfter(t *testing.T) {
	srv := newFeedServer(t)
	srv.set(func(s *feedServer) { s.status = http.StatusTooManyRequests; s.retryAfter = "120" })
	f := newPollFixture(t, 30*time.Second, FetcherOptions{}, srv.URL)
	now := f.clock.Now()
	res := f.poll(t, srv.URL)
	st := f.store.state(srv.URL)
	if res.Status != StatusError || st.NextPoll.Before(now.Add(120*time.Second)) {
		t.Errorf("next poll in %s, want ≥ 120s (%+v)", st.NextPoll.Sub(now), res)
	}

	// A Retry-After of three days is held to a day.
	srv.set(func(s *feedServer) { s.status = http.StatusServiceUnavailable; s.retryAfter = "259200" })
	now = f.clock.advance(time.Hour)
	f.poll(t, srv.URL)
	if d := f.store.state(srv.URL).NextPoll.Sub(now); d != 24*time.Hour {
		t.Errorf("next poll in %s", d)
	}
}

func TestPollTimeoutAndRedirectLoop(t *testing.T) {
	release := make(chan struct{})
	mux := http.NewServeMux()
	mux.HandleFunc("/hang", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	})
	mux.HandleFunc("/loop", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/loop", http.StatusFound) })
	srv := httptest.NewServer(mux)
	defer srv.Close()
	defer close(release)

	f := newPollFixture(t, time.Minute, FetcherOptions{Timeout: 200 * time.Millisecond}, srv.URL+"/hang", srv.URL+"/loop")
	results := f.poller.PollAll(context.Background())
	if len(results) != 2 {
		t.Fatalf("results = %+v", results)
	}
	for i, want := range []string{"no complete answer within 200ms", "redirect loop"} {
		res := results[i]
		if res.Status != StatusError || !strings.Contains(res.Error, want) {
			t.Errorf("result %d = %+v, want %q", i, res, want)
		}
		if st := f.store.state(res.Feed); st.Failures != 1 || !strings.Contains(st.LastError, want) {
			t.Errorf("state %d = %+v", i, st)
		}
	}
}

func TestPollCancelledRecordsNothing(t *testing.T) {
	srv := newFeedServer(t)
	srv.set(func(s *feedServer) { s.body = rss(itemA) })
	f := newPollFixture(t, time.Minute, FetcherOptions{}, srv.URL)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	res, err := f.poller.PollOne(ctx, srv.URL)
	if err == nil || res.Status != StatusError {
		t.Fatalf("result %+v, err %v", res, err)
	}
	if st := f.store.state(srv.URL); st.Failures != 0 || st.LastError != "" || !st.LastPoll.IsZero() {
		t.Errorf("a shutdown counted against the feed: %+v", st)
	}
}

func TestPollStoreFailure(t *testing.T) {
	srv := newFeedServer(t)
	srv.set(func(s *feedServer) { s.body = rss(itemA) })
	f := newPollFixture(t, time.Minute, FetcherOptions{}, srv.URL)

	f.store.setFaults(errors.New("disk full"), nil)
	res := f.poll(t, srv.URL)
	if res.Status != StatusError || !strings.Contains(res.Error, "disk full") {
		t.Fatalf("result = %+v", res)
	}
	if st := f.store.state(srv.URL); st.Initialized || st.Failures != 1 {
		t.Errorf("state = %+v", st)
	}

	f.store.setFaults(nil, nil)
	f.store.setFaults(nil, errors.New("db closed"))
	res = f.poll(t, srv.URL)
	if res.Status != StatusError || !strings.Contains(res.Error, "db closed") {
		t.Fatalf("result = %+v", res)
	}
}

func TestBackoff(t *testing.T) {
	p := NewPoller(newTestStore(t), NewFetcher(FetcherOptions{}), NewParser(), PollerOptions{})
	retry := func(d time.Duration) error {
		return fmt.Errorf("feed: GET x: %w", &HTTPError{Status: 429, RetryAfter: d})
	}
	for _, tc := range []struct {
		interval time.Duration
		failures int
		err      error
		want     time.Duration
	}{
		{15 * time.Minute, 1, errors.New("x"), 30 * time.Minute},
		{15 * time.Minute, 3, errors.New("x"), 2 * time.Hour},
		{15 * time.Minute, 5, errors.New("x"), 6 * time.Hour},   // capped
		{15 * time.Minute, 500, errors.New("x"), 6 * time.Hour}, // no overflow
		{12 * time.Hour, 1, errors.New("x"), 12 * time.Hour},    // interval beyond the cap
		{time.Minute, 1, retry(10 * time.Minute), 10 * time.Minute},
		{time.Hour, 1, retry(time.Minute), 2 * time.Hour},
		{time.Minute, 1, retry(30 * 24 * time.Hour), 24 * time.Hour},
	} {
		if got := p.backoff(tc.interval, tc.failures, tc.err); got != tc.want {
			t.Errorf("backoff(%s, %d, %v) = %s, want %s", tc.interval, tc.failures, tc.err, got, tc.want)
		}
	}
}

func TestRun(t *testing.T) {
	var hits [3]atomic.Int32
	mux := http.NewServeMux()
	for i := range hits {
		mux.HandleFunc(fmt.Sprintf("/f%d", i), func(w http.ResponseWriter, r *http.Request) {
			hits[i].Add(1)
			fmt.Fprint(w, rss(itemA))
		})
	}
	srv := httptest.NewServer(mux)
	defer srv.Close()

	store := newTestStore(t)
	// Feed 2 is backing off from an earlier failure: Run must wait for it.
	store.PutFeedState(context.Background(), &herald.FeedState{URL: srv.URL + "/f2", Failures: 2, NextPoll: time.Now().Add(time.Hour)})
	p := NewPoller(store, NewFetcher(FetcherOptions{}), NewParser(), PollerOptions{Feeds: []FeedConfig{
		{URL: srv.URL + "/f0", Interval: 100 * time.Millisecond},
		{URL: srv.URL + "/f1", Interval: time.Hour},
		{URL: srv.URL + "/f2", Interval: 100 * time.Millisecond},
	}})
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	start := time.Now()
	if err := p.Run(ctx); err != nil {
		t.Fatalf("Run = %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Run took %s to stop", d)
	}
	if n := hits[0].Load(); n < 3 {
		t.Errorf("fast feed polled %d times", n)
	}
	if n := hits[1].Load(); n != 1 {
		t.Errorf("hourly feed polled %d times, want once at start", n)
	}
	if n := hits[2].Load(); n != 0 {
		t.Errorf("backing-off feed polled %d times", n)
	}
}

func TestRunNoFeeds(t *testing.T) {
	p := NewPoller(newTestStore(t), NewFetcher(FetcherOptions{}), NewParser(), PollerOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := p.Run(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestPollAllConcurrent: hanging feeds do not hold up a healthy one, each
// poll has its own timeout, and PollAll answers once they have run out:
// the healthy feed is fetched while every hanging one still hangs.
func TestPollAllConcurrent(t *testing.T) {
	var mu sync.Mutex
	ended := 0
	healthyHitWhileHanging := false
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done() // until herald's per-feed timeout gives up
		mu.Lock()
		ended++
		mu.Unlock()
	}))
	defer hang.Close()
	good := newFeedServer(t)
	good.set(func(s *feedServer) { s.body = rss(itemA) })
	healthy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		healthyHitWhileHanging = ended == 0
		mu.Unlock()
		good.Config.Handler.ServeHTTP(w, r)
	}))
	defer healthy.Close()

	// The hanging feeds come first, as a sequential poll would meet them.
	urls := []string{hang.URL + "/a", hang.URL + "/b", hang.URL + "/c", healthy.URL}
	f := newPollFixture(t, time.Minute, FetcherOptions{Timeout: 2 * time.Second}, urls...)
	results := f.poller.PollAll(context.Background())
	if len(results) != 4 {
		t.Fatalf("%d results", len(results))
	}
	for i, res := range results[:3] {
		if res.Feed != urls[i] || res.Status != StatusError || !strings.Contains(res.Error, "no complete answer within 2s") {
			t.Errorf("hanging feed %d: %+v", i, res)
		}
	}
	if res := results[3]; res.Status != StatusOK || res.New != 1 {
		t.Errorf("healthy feed: %+v", res)
	}
	mu.Lock()
	defer mu.Unlock()
	if !healthyHitWhileHanging {
		t.Error("the healthy feed was fetched only after the hanging ones gave up")
	}
}

// TestPollAllFeedBusy: a feed whose poll is still running elsewhere is
// reported busy once the manual poll's time is up; the others are polled.
func TestPollAllFeedBusy(t *testing.T) {
	a, b := newFeedServer(t), newFeedServer(t)
	a.set(func(s *feedServer) { s.body = rss(itemA) })
	b.set(func(s *feedServer) { s.body = rss(itemB) })
	f := newPollFixture(t, time.Minute, FetcherOptions{Timeout: time.Second}, a.URL, b.URL)
	unlock, err := f.poller.lock(context.Background(), a.URL) // a poll of a in progress
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	results := f.poller.PollAll(context.Background())
	if res := results[0]; res.Status != StatusError || !strings.Contains(res.Error, "another poll of this feed is still running") {
		t.Errorf("busy feed: %+v", res)
	}
	if res := results[1]; res.Status != StatusOK {
		t.Errorf("free feed: %+v", res)
	}
	if st := f.store.state(a.URL); st.Failures != 0 || !st.LastPoll.IsZero() {
		t.Errorf("a busy feed's state changed: %+v", st)
	}
}
