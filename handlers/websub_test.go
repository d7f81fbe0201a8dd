package handlers_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/herald-dev/herald"
	"github.com/herald-dev/herald/feed"
	"github.com/herald-dev/herald/handlers"
	"github.com/herald-dev/herald/internal/testenv"
)

// TestWebSubRoutes: the callback routes answer what the poller decides,
// with the status the recommendation expects: a challenge as text/plain,
// 404 for what herald never asked, 403 for an unsigned push, 413 for a
// body over the cap.
func TestWebSubRoutes(t *testing.T) {
	const feedURL = "https://blog.example.org/feed/"
	e := newEnv(t, testenv.Options{AdminToken: adminToken, Feeds: []feed.FeedConfig{{URL: feedURL}}})
	id := feed.FeedID(feedURL)
	// herald asked the hub to subscribe (as a poll that found the hub does).
	_, err := e.DB.UpdateFeedState(context.Background(), feedURL, func(st *herald.FeedState) error {
		st.Push = &herald.PushState{Hub: "https://hub.example/", Topic: feedURL, State: feed.PushSubscribing, RequestedAt: time.Now()}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	get := func(path string) (int, string, string) {
		resp, err := http.Get(e.URL + path)
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
		req, _ := http.NewRequest(http.MethodPost, e.URL+"/websub/"+id, strings.NewReader(body))
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
	if n, _ := e.DB.CountPosts(context.Background()); n != 0 {
		t.Errorf("refused pushes stored %d posts", n)
	}
}

// TestSendSilentPost: POST /api/v1/posts/{id}/send mails a silent post.
func TestSendSilentPost(t *testing.T) {
	e := newEnv(t, testenv.Options{AdminToken: adminToken})
	held := &herald.Post{Feed: "https://blog.example.org/feed/", GUID: "g", Title: "Old", Silent: true, SilentReason: "max_age: old"}
	fresh := &herald.Post{Feed: "https://blog.example.org/feed/", GUID: "h", Title: "New"}
	if _, err := e.DB.UpsertPosts(context.Background(), []*herald.Post{held, fresh}); err != nil {
		t.Fatal(err)
	}
	r := e.admin(http.MethodGet, "/api/v1/posts", "", "")
	if !strings.Contains(r.Body, `"silent":true,"silent_reason":"max_age: old"`) {
		t.Errorf("posts API does not say why a post is silent: %s", r.Body)
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
		if r := e.admin(http.MethodPost, tc.path, "application/json", "{}"); r.Status != tc.status {
			t.Errorf("POST %s = %d %s, want %d", tc.path, r.Status, r.Body, tc.status)
		}
	}
	if p, err := e.DB.PostByID(context.Background(), 3); err != nil || p.Silent || p.Title != "Old" {
		t.Errorf("released post = %+v, %v", p, err)
	}
}
