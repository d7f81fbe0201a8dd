package feed

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/herald-dev/herald"
	"github.com/herald-dev/herald/internal/websubhub"
)

// pushFeed is a blog whose feed advertises a hub.
type pushFeed struct {
	*httptest.Server
	mu    sync.Mutex
	hub   string
	items []testItem
}

func newPushFeed(t *testing.T, hub string, items ...testItem) *pushFeed {
	f := &pushFeed{hub: hub, items: items}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		w.Header().Set("Content-Type", "application/rss+xml; charset=UTF-8")
		fmt.Fprint(w, f.body())
	}))
	t.Cleanup(f.Close)
	return f
}

func (f *pushFeed) body() string {
	var b strings.Builder
	b.WriteString(`<?xml version="1.0" encoding="UTF-8"?><rss version="2.0" xmlns:atom="http://www.w3.org/2005/Atom"><channel><title>Pushed</title><link>https://push.example.org/</link><description>d</description>`)
	if f.hub != "" {
		fmt.Fprintf(&b, `<atom:link rel="hub" href="%s"/>`, f.hub)
	}
	fmt.Fprintf(&b, `<atom:link rel="self" href="%s/feed" type="application/rss+xml"/>`, f.URL)
	for _, it := range f.items {
		fmt.Fprintf(&b, "<item><title>%s</title><link>%s</link><guid>%s</guid><pubDate>%s</pubDate></item>", it.title, it.link, it.guid, it.pub.Format(time.RFC1123Z))
	}
	b.WriteString(`</channel></rss>`)
	return b.String()
}

func (f *pushFeed) set(hub string, items ...testItem) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.hub, f.items = hub, items
}

// startHub runs a websubhub.Hub on loopback.
func startHub(t *testing.T, opts websubhub.Options) (*websubhub.Hub, string) {
	t.Helper()
	var h *websubhub.Hub
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h.ServeHTTP(w, r) }))
	opts.URL = srv.URL + "/"
	opts.RetryBackoff = 20 * time.Millisecond
	h = websubhub.New(opts)
	t.Cleanup(func() { srv.Close(); h.Close() })
	return h, opts.URL
}

// callbacks serves /websub/{id} for a poller, as the handlers do.
func callbacks(t *testing.T, p *Poller) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := strings.TrimPrefix(r.URL.Path, "/websub/")
		var err error
		switch r.Method {
		case http.MethodGet:
			var c string
			if c, err = p.VerifyIntent(r.Context(), id, r.URL.Query()); err == nil {
				io.WriteString(w, c)
				return
			}
		case http.MethodPost:
			b, _ := io.ReadAll(r.Body)
			if _, err = p.Push(r.Context(), id, r.Header.Get("X-Hub-Signature"), r.Header.Get("Content-Type"), b); err == nil {
				return
			}
		}
		status := http.StatusInternalServerError
		switch herald.ErrorCode(err) {
		case herald.ENOTFOUND:
			status = http.StatusNotFound
		case herald.EFORBIDDEN:
			status = http.StatusForbidden
		case herald.EINVALID, herald.EMALFORMED:
			status = http.StatusBadRequest
		}
		http.Error(w, err.Error(), status)
	}))
	t.Cleanup(srv.Close)
	return srv
}

type pushFixture struct {
	store  *testStore
	clock  *clock
	poller *Poller
	feed   *pushFeed
	cb     *httptest.Server
	newc   chan int
}

func newPushFixture(t *testing.T, hub string, items ...testItem) *pushFixture {
	f := &pushFixture{store: newTestStore(t), clock: &clock{t: time.Now().UTC()}, newc: make(chan int, 16)}
	f.feed = newPushFeed(t, hub, items...)
	f.poller = NewPoller(f.store, NewFetcher(FetcherOptions{}), NewParser(), PollerOptions{
		Now:   f.clock.Now,
		Feeds: []FeedConfig{{URL: f.feed.URL + "/feed", Interval: time.Minute}},
		OnNewPosts: func(_ context.Context, _ string, n int) {
			f.newc <- n
		},
		WebSub: WebSubOptions{CallbackBase: "http://placeholder", Secret: []byte("test secret"), Lease: time.Hour},
	})
	// The callback server needs the poller, the poller the callback URL.
	f.cb = callbacks(t, f.poller)
	f.poller.websub.opt.CallbackBase = f.cb.URL
	return f
}

func (f *pushFixture) url() string { return f.feed.URL + "/feed" }

// waitPush waits (a deadline, not a measure) until the push state passes ok.
func (f *pushFixture) waitPush(t *testing.T, what string, ok func(*herald.PushState) bool) *herald.PushState {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		st := f.store.state(f.url())
		if ok(st.Push) {
			return st.Push
		}
		if time.Now().After(deadline) {
			t.Fatalf("push state never became %s: %+v", what, st.Push)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// publish asks the hub to distribute topic, once the hub lists a
// subscription to it (herald marks its own side active before it answers
// the hub's verification, so the hub records it a moment later).
func publish(t *testing.T, hub, topic string) {
	t.Helper()
	waitHubLists(t, hub, topic)
	resp, err := http.PostForm(hub, url.Values{"hub.mode": {"publish"}, "hub.url": {topic}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("publish: %s", resp.Status)
	}
}

// waitHubLists waits (a deadline, not a measure) until the hub's list of
// active subscriptions names topic.
func waitHubLists(t *testing.T, hub, topic string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get(hub)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if strings.Contains(string(b), topic+" ") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the hub never listed a subscription to %s:\n%s", topic, b)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestWebSubSubscribePushRenew(t *testing.T) {
	for _, method := range []string{"sha1", "sha256", "sha384", "sha512"} {
		t.Run(method, func(t *testing.T) {
			_, hub := startHub(t, websubhub.Options{Signature: method})
			recent := time.Now().UTC().Add(-time.Hour)
			a := testItem{"a", "https://push.example.org/a", "Post A", recent}
			f := newPushFixture(t, hub, a)

			// The first poll records the backlog and subscribes at the hub,
			// which verifies the intent at the callback.
			res, err := f.poller.PollOne(context.Background(), f.url())
			if err != nil || !res.Backlog {
				t.Fatalf("first poll = %+v, %v", res, err)
			}
			ps := f.waitPush(t, "active", func(p *herald.PushState) bool { return p != nil && p.State == PushActive })
			if ps.Hub != hub || ps.Topic != f.url() || ps.LeaseExpires.Sub(ps.VerifiedAt) != time.Hour {
				t.Fatalf("push state = %+v", ps)
			}

			// The blog publishes: the hub pushes the feed, signed; the new
			// post is stored and announced without a poll.
			b := testItem{"b", "https://push.example.org/b", "Post B", time.Now().UTC()}
			f.feed.set(hub, b, a)
			publish(t, hub, f.url())
			select {
			case n := <-f.newc:
				if n != 1 {
					t.Fatalf("announced %d new posts", n)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("the push never brought the new post")
			}
			posts := f.store.all()
			if len(posts) != 2 || posts[1].GUID != "b" || posts[1].Silent {
				t.Fatalf("posts = %+v", posts)
			}
			ps = f.waitPush(t, "pushed", func(p *herald.PushState) bool { return p.Pushes == 1 })

			// Near the lease's end a poll renews it; the state stays active.
			verified := ps.VerifiedAt
			f.clock.advance(50 * time.Minute)
			if _, err := f.poller.PollOne(context.Background(), f.url()); err != nil {
				t.Fatal(err)
			}
			f.waitPush(t, "renewed", func(p *herald.PushState) bool {
				return p.State == PushActive && p.VerifiedAt.After(verified)
			})
		})
	}
}

func TestWebSubRefusesWhatItDidNotAskFor(t *testing.T) {
	_, hub := startHub(t, websubhub.Options{})
	f := newPushFixture(t, hub, testItem{"a", "https://push.example.org/a", "Post A", time.Now().UTC()})
	if _, err := f.poller.PollOne(context.Background(), f.url()); err != nil {
		t.Fatal(err)
	}
	ps := f.waitPush(t, "active", func(p *herald.PushState) bool { return p != nil && p.State == PushActive })
	id := FeedID(f.url())
	before := f.store.state(f.url())
	body := []byte(rss(testItem{"evil", "https://push.example.org/evil", "Forged", time.Now().UTC()}))
	secret := f.poller.websub.secret(ps.Hub, ps.Topic)

	pushes := []struct {
		name, feedID, sig string
		code              string
	}{
		{"no signature", id, "", herald.EFORBIDDEN},
		{"wrong secret", id, websubhub.Sign("sha256", []byte("guess"), body), herald.EFORBIDDEN},
		{"signature of other content", id, websubhub.Sign("sha256", secret, []byte("other")), herald.EFORBIDDEN},
		{"unknown method", id, "md5=" + strings.Repeat("0", 32), herald.EFORBIDDEN},
		{"not hex", id, "sha256=zz", herald.EFORBIDDEN},
		{"unknown feed", "0123456789abcdef", websubhub.Sign("sha256", secret, body), herald.ENOTFOUND},
	}
	for _, tc := range pushes {
		_, err := f.poller.Push(context.Background(), tc.feedID, tc.sig, "application/rss+xml", body)
		if herald.ErrorCode(err) != tc.code {
			t.Errorf("push %s: %v, want %s", tc.name, err, tc.code)
		}
	}
	// A good signature over a body that is no feed: refused, named.
	junk := []byte("<html><body>hello</body></html>")
	if _, err := f.poller.Push(context.Background(), id, websubhub.Sign("sha256", secret, junk), "text/html", junk); herald.ErrorCode(err) != herald.EMALFORMED {
		t.Errorf("push of a page: %v", err)
	}

	verifications := []struct {
		name string
		q    url.Values
		code string
	}{
		{"wrong topic", url.Values{"hub.mode": {"subscribe"}, "hub.topic": {"https://elsewhere.example/feed"}, "hub.challenge": {"c"}, "hub.lease_seconds": {"60"}}, herald.ENOTFOUND},
		{"subscribe not asked for", url.Values{"hub.mode": {"subscribe"}, "hub.topic": {ps.Topic}, "hub.challenge": {"c"}, "hub.lease_seconds": {"60"}}, herald.ENOTFOUND},
		{"unsubscribe never asked", url.Values{"hub.mode": {"unsubscribe"}, "hub.topic": {ps.Topic}, "hub.challenge": {"c"}}, herald.ENOTFOUND},
		{"unknown mode", url.Values{"hub.mode": {"publish"}, "hub.topic": {ps.Topic}, "hub.challenge": {"c"}}, herald.ENOTFOUND},
		{"no challenge", url.Values{"hub.mode": {"subscribe"}, "hub.topic": {ps.Topic}}, herald.EINVALID},
		{"no topic", url.Values{"hub.mode": {"subscribe"}, "hub.challenge": {"c"}}, herald.EINVALID},
		{"denied for another topic", url.Values{"hub.mode": {"denied"}, "hub.topic": {"https://elsewhere.example/feed"}}, herald.ENOTFOUND},
	}
	for _, tc := range verifications {
		if _, err := f.poller.VerifyIntent(context.Background(), id, tc.q); herald.ErrorCode(err) != tc.code {
			t.Errorf("verify %s: %v, want %s", tc.name, err, tc.code)
		}
	}
	if _, err := f.poller.VerifyIntent(context.Background(), "nope", url.Values{"hub.topic": {"x"}}); herald.ErrorCode(err) != herald.ENOTFOUND {
		t.Errorf("verify for an unknown feed: %v", err)
	}

	// Nothing changed: no post, the subscription as it was.
	after := f.store.state(f.url())
	if len(f.store.all()) != 1 || after.Push.State != PushActive || after.Push.Pushes != 0 || !after.Push.VerifiedAt.Equal(before.Push.VerifiedAt) {
		t.Fatalf("state changed: %+v, posts %d", after.Push, len(f.store.all()))
	}
}

func TestWebSubDeniedAndMovedAndFallback(t *testing.T) {
	// A hub that refuses the topic: the denial and its reason are kept.
	_, strict := startHub(t, websubhub.Options{Allow: func(string) bool { return false }})
	f := newPushFixture(t, strict, testItem{"a", "https://push.example.org/a", "Post A", time.Now().UTC()})
	if _, err := f.poller.PollOne(context.Background(), f.url()); err != nil {
		t.Fatal(err)
	}
	ps := f.waitPush(t, "denied", func(p *herald.PushState) bool { return p != nil && p.State == PushDenied })
	if !strings.Contains(ps.Error, "this hub does not serve that topic") {
		t.Errorf("denial = %+v", ps)
	}

	// The feed moves to another hub: herald leaves the old one and joins the new.
	_, open := startHub(t, websubhub.Options{})
	f.feed.set(open, testItem{"a", "https://push.example.org/a", "Post A", time.Now().UTC()})
	if _, err := f.poller.PollOne(context.Background(), f.url()); err != nil {
		t.Fatal(err)
	}
	f.waitPush(t, "active at the new hub", func(p *herald.PushState) bool { return p.Hub == open && p.State == PushActive })

	// The hub goes away (refuses connections): the renewal fails, polling
	// goes on and still finds posts.
	dead := httptest.NewServer(http.NotFoundHandler())
	deadURL := dead.URL + "/"
	dead.Close()
	f.feed.set(deadURL, testItem{"b", "https://push.example.org/b", "Post B", time.Now().UTC()}, testItem{"a", "https://push.example.org/a", "Post A", time.Now().UTC()})
	res, err := f.poller.PollOne(context.Background(), f.url())
	if err != nil || res.New != 1 {
		t.Fatalf("poll with the hub down = %+v, %v", res, err)
	}
	ps = f.waitPush(t, "failed", func(p *herald.PushState) bool { return p.Hub == deadURL && p.State == PushFailed })
	if ps.Error == "" {
		t.Errorf("no error recorded: %+v", ps)
	}

	// The feed stops advertising a hub: herald unsubscribes what it had.
	f.feed.set("", testItem{"a", "https://push.example.org/a", "Post A", time.Now().UTC()})
	if _, err := f.poller.PollOne(context.Background(), f.url()); err != nil {
		t.Fatal(err)
	}
	if st := f.store.state(f.url()); st.Push == nil || st.Push.State != PushUnsubscribing {
		t.Errorf("after the hub left the feed: %+v", st.Push)
	}
}

func TestLinkRels(t *testing.T) {
	base, _ := url.Parse("https://blog.example.org/feed/")
	hub, self := linkRels(base, []string{`<https://hub.example.com/>; rel="hub", </feed/>; rel="self"`, `<https://other/>; rel=hub`})
	if hub != "https://hub.example.com/" || self != "https://blog.example.org/feed/" {
		t.Errorf("hub %q self %q", hub, self)
	}
	hub, self = linkRels(base, []string{`<https://a/;x>; title="a, b"; rel="alternate hub"`})
	if hub != "https://a/;x" || self != "" {
		t.Errorf("quoted comma: hub %q self %q", hub, self)
	}
}

// TestWebSubRenewsOnNotModified: a feed that answers 304 to every poll
// (ETag) still gets its lease renewed.
func TestWebSubRenewsOnNotModified(t *testing.T) {
	_, hub := startHub(t, websubhub.Options{})
	f := newPushFixture(t, hub, testItem{"a", "https://push.example.org/a", "Post A", time.Now().UTC()})
	var notModified atomic.Bool
	inner := f.feed.Config.Handler
	f.feed.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if notModified.Load() {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		w.Header().Set("ETag", `"v1"`)
		inner.ServeHTTP(w, r)
	})
	if _, err := f.poller.PollOne(context.Background(), f.url()); err != nil {
		t.Fatal(err)
	}
	ps := f.waitPush(t, "active", func(p *herald.PushState) bool { return p != nil && p.State == PushActive })
	notModified.Store(true)
	f.clock.advance(55 * time.Minute)
	res, err := f.poller.PollOne(context.Background(), f.url())
	if err != nil || res.Status != StatusNotModified {
		t.Fatalf("poll = %+v, %v", res, err)
	}
	f.waitPush(t, "renewed", func(p *herald.PushState) bool { return p.State == PushActive && p.VerifiedAt.After(ps.VerifiedAt) })
}
