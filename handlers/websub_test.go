package handlers_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/herald-dev/herald"
	"github.com/herald-dev/herald/feed"
	"github.com/herald-dev/herald/handlers"
	"github.com/herald-dev/herald/templates"
)

// pollerCallbacks adapts the feed poller to handlers.WebSub, as serve does.
type pollerCallbacks struct{ p *feed.Poller }

func (c pollerCallbacks) VerifyIntent(ctx context.Context, id string, q url.Values) (string, error) {
	return c.p.VerifyIntent(ctx, id, q)
}

func (c pollerCallbacks) Push(ctx context.Context, id, sig, ct string, b []byte) (any, error) {
	return c.p.Push(ctx, id, sig, ct, b)
}

// TestWebSubRoutes: the callback routes answer what the poller decides,
// with the status the recommendation expects: a challenge as text/plain,
// 404 for what herald never asked, 403 for an unsigned push, 413 for a
// body over the cap.
func TestWebSubRoutes(t *testing.T) {
	e := newOpsEnv(t, opsOpts{adminToken: adminToken})
	const feedURL = "https://blog.example.org/feed/"
	poller := feed.NewPoller(e.db, feed.NewFetcher(feed.FetcherOptions{}), feed.NewParser(), feed.PollerOptions{
		Feeds:  []feed.FeedConfig{{URL: feedURL}},
		WebSub: feed.WebSubOptions{CallbackBase: "http://herald.test", Secret: []byte("s")},
	})
	tpl, err := templates.Load()
	if err != nil {
		t.Fatal(err)
	}
	h := handlers.New(handlers.Options{BaseURL: "http://herald.test", AdminToken: adminToken}, handlers.Deps{
		Subs: e.subs, Store: e.db, Templates: tpl, Posts: e.db, WebSub: pollerCallbacks{poller},
	})
	srv := httptest.NewServer(h)
	defer srv.Close()
	id := feed.FeedID(feedURL)
	// herald asked the hub to subscribe (as a poll that found the hub does).
	_, err = e.db.UpdateFeedState(context.Background(), feedURL, func(st *herald.FeedState) error {
		st.Push = &herald.PushState{Hub: "https://hub.example/", Topic: feedURL, State: feed.PushSubscribing, RequestedAt: time.Now()}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	get := func(path string) (int, string, string) {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header.Get("Content-Type"), string(b)
	}
	q := url.Values{"hub.mode": {"subscribe"}, "hub.topic": {"https://elsewhere.example/"}, "hub.challenge": {"c1"}, "hub.lease_seconds": {"600"}}
	if code, _, body := get("/websub/" + id + "?" + q.Encode()); code != http.StatusNotFound || !strings.Contains(body, "did not ask to subscribe") {
		t.Errorf("wrong topic: %d %q", code, body)
	}
	q.Set("hub.topic", feedURL)
	if code, ct, body := get("/websub/" + id + "?" + q.Encode()); code != http.StatusOK || body != "c1" || !strings.HasPrefix(ct, "text/plain") {
		t.Errorf("verification: %d %q %q", code, ct, body)
	}
	if code, _, _ := get("/websub/0000000000000000?" + q.Encode()); code != http.StatusNotFound {
		t.Errorf("unknown feed: %d", code)
	}
	q.Del("hub.challenge")
	if code, _, body := get("/websub/" + id + "?" + q.Encode()); code != http.StatusUnprocessableEntity || !strings.Contains(body, "hub.challenge") {
		t.Errorf("no challenge: %d %q", code, body)
	}

	post := func(body, sig string) (int, string) {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/websub/"+id, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/rss+xml")
		if sig != "" {
			req.Header.Set("X-Hub-Signature", sig)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var m map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&m)
		msg, _ := m["error"].(string)
		return resp.StatusCode, msg
	}
	if code, msg := post("<rss/>", ""); code != http.StatusForbidden || !strings.Contains(msg, "no X-Hub-Signature") {
		t.Errorf("unsigned push: %d %q", code, msg)
	}
	if code, msg := post("<rss/>", "sha256=00"); code != http.StatusForbidden || !strings.Contains(msg, "does not match") {
		t.Errorf("badly signed push: %d %q", code, msg)
	}
	if code, _ := post(strings.Repeat("x", handlers.MaxPushBody+1), "sha256=00"); code != http.StatusRequestEntityTooLarge {
		t.Errorf("push over the cap: %d", code)
	}
	if n, _ := e.db.CountPosts(context.Background()); n != 0 {
		t.Errorf("refused pushes stored %d posts", n)
	}
}

// TestSendSilentPost: POST /api/v1/posts/{id}/send mails a silent post.
func TestSendSilentPost(t *testing.T) {
	e := newOpsEnv(t, opsOpts{adminToken: adminToken})
	held := &herald.Post{Feed: "https://blog.example.org/feed/", GUID: "g", Title: "Old", Silent: true, SilentReason: "max_age: old"}
	fresh := &herald.Post{Feed: "https://blog.example.org/feed/", GUID: "h", Title: "New"}
	if _, err := e.db.UpsertPosts(context.Background(), []*herald.Post{held, fresh}); err != nil {
		t.Fatal(err)
	}
	r := e.admin(http.MethodGet, "/api/v1/posts", "", "")
	if !strings.Contains(r.body, `"silent":true,"silent_reason":"max_age: old"`) {
		t.Errorf("posts API does not say why a post is silent: %s", r.body)
	}
	for _, tc := range []struct {
		path   string
		status int
	}{
		{"/api/v1/posts/x/send", http.StatusUnprocessableEntity},
		{"/api/v1/posts/99/send", http.StatusNotFound},
		{"/api/v1/posts/2/send", http.StatusConflict},
		{"/api/v1/posts/1/send", http.StatusOK},
		{"/api/v1/posts/1/send", http.StatusNotFound}, // it moved
	} {
		if r := e.admin(http.MethodPost, tc.path, "application/json", "{}"); r.status != tc.status {
			t.Errorf("POST %s = %d %s, want %d", tc.path, r.status, r.body, tc.status)
		}
	}
	if p, err := e.db.PostByID(context.Background(), 3); err != nil || p.Silent || p.Title != "Old" {
		t.Errorf("released post = %+v, %v", p, err)
	}
}
