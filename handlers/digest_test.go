package handlers_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/herald-dev/herald"
	"github.com/herald-dev/herald/digest"
	"github.com/herald-dev/herald/internal/testenv"
	"github.com/herald-dev/herald/internal/testmail"
)

// newDigestEnv is a whole herald and its digest service.
func newDigestEnv(t *testing.T) (*env, *digest.Service) {
	t.Helper()
	e := newEnv(t, testenv.Options{AdminToken: adminToken})
	return e, e.Digest
}

func TestPostsAndRunsAPI(t *testing.T) {
	e, _ := newDigestEnv(t)
	if _, err := e.Subs.Subscribe(context.Background(), herald.SubscribeRequest{Email: "reader@example.org", Frequency: "daily", Confirmed: true}); err != nil {
		t.Fatal(err)
	}
	r := e.api("POST", "/api/v1/posts", `{"guid":"p1","url":"https://blog.example.org/p1/","title":"<b>Hello</b> &amp; welcome","summary":"<p>Hi <script>alert(1)</script><a href=\"javascript:x()\">x</a></p>","author":"Ann","categories":["a","b"],"published_at":"2026-11-25T07:00:00Z"}`)
	if r.Status != 201 {
		t.Fatalf("add post: %d %s", r.Status, r.Body)
	}
	if strings.Contains(r.Body, "script") || strings.Contains(r.Body, "javascript:") || !strings.Contains(r.Body, `"title":"Hello \u0026 welcome"`) {
		t.Fatalf("post not cleaned: %s", r.Body)
	}
	// The same guid again updates, never creates.
	if r := e.api("POST", "/api/v1/posts", `{"guid":"p1","url":"https://blog.example.org/p1/","title":"Hello again"}`); r.Status != 200 || !strings.Contains(r.Body, `"created":false`) {
		t.Fatalf("update post: %d %s", r.Status, r.Body)
	}
	for i := 2; i <= 3; i++ {
		e.api("POST", "/api/v1/posts", fmt.Sprintf(`{"url":"https://blog.example.org/p%d/","title":"Post %d"}`, i, i))
	}
	r = e.api("GET", "/api/v1/posts?limit=2", "")
	var page struct {
		Posts []herald.Post `json:"posts"`
		Next  string        `json:"next"`
	}
	_ = json.Unmarshal([]byte(r.Body), &page)
	if len(page.Posts) != 2 || page.Posts[0].Title != "Post 3" || page.Next == "" {
		t.Fatalf("posts page 1: %s", r.Body)
	}
	r = e.api("GET", "/api/v1/posts?limit=2&after="+page.Next, "")
	_ = json.Unmarshal([]byte(r.Body), &page)
	if len(page.Posts) != 1 || page.Posts[0].Title != "Hello again" || page.Next != "" {
		t.Fatalf("posts page 2: %s", r.Body)
	}

	// Preview shows what the reader would get; the reader confirmed before
	// the posts came, so all three.
	r = e.api("GET", "/api/v1/preview?email=reader@example.org", "")
	if r.Status != 200 || !strings.Contains(r.Body, "Post 3") || !strings.HasPrefix(r.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("preview: %d %s", r.Status, r.Body)
	}
	// The digest is the owner's to look at, never a page that runs script.
	if csp := r.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") || strings.Contains(csp, "script-src") || r.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("preview headers: CSP %q, Cache-Control %q", csp, r.Header.Get("Cache-Control"))
	}

	r = e.api("POST", "/api/v1/runs", `{"frequency":"daily"}`)
	if r.Status != 202 {
		t.Fatalf("start run: %d %s", r.Status, r.Body)
	}
	var started struct{ ID uint64 }
	_ = json.Unmarshal([]byte(r.Body), &started)
	var run herald.Run
	testenv.Eventually(t, time.Minute, "the run to be done", func() bool {
		g := e.api("GET", fmt.Sprintf("/api/v1/runs/%d", started.ID), "")
		_ = json.Unmarshal([]byte(g.Body), &run)
		return run.State == herald.RunDone
	})
	if run.State != herald.RunDone || run.Sent != 1 || run.Frequency != herald.Daily || run.Trigger != "api" || run.StartedAt == nil || run.FinishedAt == nil {
		t.Fatalf("run %+v", run)
	}
	msgs := e.SMTP.WaitFor(t, 1, 10*time.Second)
	if p := testmail.MustParse(t, msgs[0].Data); p.Subject != "Test Blog: 3 new posts" {
		t.Fatalf("digest subject %q", p.Subject)
	}
	if r := e.api("GET", "/api/v1/preview?email=reader@example.org", ""); r.Status != 204 {
		t.Fatalf("preview with nothing new: %d", r.Status)
	}
	// Each post knows the run that carried it.
	r = e.api("GET", "/api/v1/posts", "")
	var carried struct {
		Posts []struct {
			Title string   `json:"title"`
			Runs  []uint64 `json:"runs"`
		} `json:"posts"`
	}
	_ = json.Unmarshal([]byte(r.Body), &carried)
	if len(carried.Posts) != 3 {
		t.Fatalf("posts: %s", r.Body)
	}
	for _, p := range carried.Posts {
		if len(p.Runs) != 1 || p.Runs[0] != started.ID {
			t.Fatalf("post %q carried by %v, want [%d]", p.Title, p.Runs, started.ID)
		}
	}
	if r := e.api("GET", "/api/v1/runs", ""); !strings.Contains(r.Body, fmt.Sprintf(`"id":%d`, started.ID)) {
		t.Fatalf("runs list: %s", r.Body)
	}
	if r := e.api("POST", "/api/v1/test-email", `{"to":"admin@example.org"}`); r.Status != 202 {
		t.Fatalf("test email: %d %s", r.Status, r.Body)
	}
	msgs = e.SMTP.WaitFor(t, 2, 10*time.Second)
	if p := testmail.MustParse(t, msgs[1].Data); msgs[1].To[0] != "admin@example.org" || !strings.HasPrefix(p.Subject, "[Test] ") {
		t.Fatalf("test email %v %q", msgs[1].To, p.Subject)
	}
}

func TestDigestRoutesBadInput(t *testing.T) {
	e, _ := newDigestEnv(t)
	for _, tc := range []struct {
		name, method, path, body string
		status                   int
		field                    string
	}{
		{"post without url", "POST", "/api/v1/posts", `{"title":"x"}`, 422, "url"},
		{"post relative url", "POST", "/api/v1/posts", `{"url":"/p/1","title":"x"}`, 422, "url"},
		{"post javascript url", "POST", "/api/v1/posts", `{"url":"javascript:alert(1)","title":"x"}`, 422, "url"},
		{"post without title", "POST", "/api/v1/posts", `{"url":"https://b.org/1"}`, 422, "title"},
		{"post markup-only title", "POST", "/api/v1/posts", `{"url":"https://b.org/1","title":"<b></b>"}`, 422, "title"},
		{"post bad date", "POST", "/api/v1/posts", `{"url":"https://b.org/1","title":"x","published_at":"yesterday"}`, 422, "published_at"},
		{"post malformed", "POST", "/api/v1/posts", `{"url":`, 400, ""},
		{"post unknown field", "POST", "/api/v1/posts", `{"url":"https://b.org/1","title":"x","body":"y"}`, 400, ""},
		{"post categories type", "POST", "/api/v1/posts", `{"url":"https://b.org/1","title":"x","categories":"a"}`, 400, ""},
		{"run bad frequency", "POST", "/api/v1/runs", `{"frequency":"hourly"}`, 422, "frequency"},
		{"run malformed", "POST", "/api/v1/runs", `{"frequency":`, 400, ""},
		{"run not found", "GET", "/api/v1/runs/999", ``, 404, ""},
		{"run bad id", "GET", "/api/v1/runs/abc", ``, 404, ""},
		{"runs bad limit", "GET", "/api/v1/runs?limit=0", ``, 422, "limit"},
		{"posts bad after", "GET", "/api/v1/posts?after=x", ``, 422, "after"},
		{"preview no email", "GET", "/api/v1/preview", ``, 422, "email"},
		{"preview bad email", "GET", "/api/v1/preview?email=nope", ``, 422, "email"},
		{"preview unknown", "GET", "/api/v1/preview?email=nobody@example.org", ``, 404, ""},
		{"test email bad to", "POST", "/api/v1/test-email", `{"to":"x"}`, 422, "to"},
		{"test email no posts", "POST", "/api/v1/test-email", `{"to":"a@example.org"}`, 409, ""},
		{"runs wrong method", "DELETE", "/api/v1/runs", ``, 405, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := e.api(tc.method, tc.path, tc.body)
			if r.Status != tc.status {
				t.Fatalf("status %d, want %d: %s", r.Status, tc.status, r.Body)
			}
			var body map[string]string
			if err := json.Unmarshal([]byte(r.Body), &body); err != nil || body["error"] == "" {
				t.Fatalf("error body %q", r.Body)
			}
			if tc.field != "" && body["field"] != tc.field {
				t.Fatalf("field %q, want %q", body["field"], tc.field)
			}
		})
	}
	if n, _ := e.DB.CountPosts(context.Background()); n != 0 {
		t.Fatalf("bad input stored %d posts", n)
	}
	// Without the token, none of them.
	for _, p := range []string{"/api/v1/posts", "/api/v1/runs", "/api/v1/preview?email=a@b.org", "/api/v1/feeds"} {
		if r := e.do("GET", p, "", ""); r.Status != http.StatusUnauthorized {
			t.Fatalf("%s without token: %d", p, r.Status)
		}
	}
	// A second run of the same frequency while one runs: 409.
	e.Subs.Subscribe(context.Background(), herald.SubscribeRequest{Email: "slow@example.org", Confirmed: true})
	e.api("POST", "/api/v1/posts", `{"url":"https://b.org/2","title":"two"}`)
	e.SMTP.Hold() // the first run sends until Release
	if r := e.api("POST", "/api/v1/runs", `{"frequency":"daily"}`); r.Status != 202 {
		t.Fatalf("first run: %d", r.Status)
	}
	if r := e.api("POST", "/api/v1/runs", `{"frequency":"daily"}`); r.Status != 409 {
		t.Fatalf("overlapping run: %d %s", r.Status, r.Body)
	}
	e.SMTP.Release()
}
