package handlers_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/herald-dev/herald"
	"github.com/herald-dev/herald/digest"
	"github.com/herald-dev/herald/feed"
	"github.com/herald-dev/herald/handlers"
	"github.com/herald-dev/herald/internal/smtptest"
	"github.com/herald-dev/herald/internal/testmail"
	"github.com/herald-dev/herald/mailer"
	"github.com/herald-dev/herald/store"
	"github.com/herald-dev/herald/subscription"
	"github.com/herald-dev/herald/templates"
)

// newDigestEnv is newEnv with the digest side wired in, as serve does.
func newDigestEnv(t *testing.T) (*env, *digest.Service) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	log := slog.New(slog.DiscardHandler)
	db, err := store.Open(ctx, filepath.Join(t.TempDir(), "herald.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	sm := smtptest.Start(t)
	tr := mailer.NewSMTPTransport(mailer.SMTPConfig{Host: sm.Host(), Port: sm.Port(), TLS: "none", Connections: 2, Timeout: 5 * time.Second}, log)
	sender := mailer.NewSender(db, tr, mailer.SenderOptions{Logger: log, EnvelopeFrom: "digest@example.org", BaseBackoff: 50 * time.Millisecond, PollInterval: 100 * time.Millisecond})
	tpl, _ := templates.Load()
	tokens, _ := subscription.NewTokens([]byte("0123456789abcdef0123456789abcdef"), nil)
	subs, _ := subscription.New(db, tokens, tpl, subscription.Options{
		SiteName: "Test Blog", SiteURL: "https://blog.example.org", BaseURL: "http://herald.test",
		From: "Test Blog <digest@example.org>", Enqueued: sender.Notify,
	})
	dig, err := digest.New(db, tr, subs, tpl, digest.Options{
		SiteName: "Test Blog", SiteURL: "https://blog.example.org", BaseURL: "http://herald.test",
		From: "Test Blog <digest@example.org>", MaxPosts: 10, Enqueued: sender.Notify, InstantDelay: 10 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{}, 2)
	go func() { _ = sender.Run(ctx); done <- struct{}{} }()
	go func() { _ = dig.Run(ctx); done <- struct{}{} }()
	h := handlers.New(handlers.Options{
		SiteName: "Test Blog", SiteURL: "https://blog.example.org", BaseURL: "http://herald.test",
		AdminToken: adminToken, Logger: log, DefaultFrequency: herald.Daily,
	}, handlers.Deps{
		Subs: subs, Store: db, Templates: tpl, Health: db.Ping,
		Posts: db, Runs: db, Outbox: db, Counters: db, Backup: db,
		Digests: dig, CleanPost: feed.NewParser().Clean,
		PollFeeds: func(ctx context.Context) any { return []string{} },
	})
	srv := httptest.NewServer(h)
	t.Cleanup(func() {
		srv.Close()
		cancel()
		<-done
		<-done
		tr.Close()
		db.Close()
	})
	return &env{t: t, db: db, smtp: sm, srv: srv, subs: subs}, dig
}

func (e *env) api(method, path, body string) resp {
	e.t.Helper()
	ct := ""
	if body != "" {
		ct = "application/json"
	}
	return e.do(method, path, ct, body, "Authorization", "Bearer "+adminToken)
}

func TestPostsAndRunsAPI(t *testing.T) {
	e, _ := newDigestEnv(t)
	if _, err := e.subs.Subscribe(context.Background(), herald.SubscribeRequest{Email: "reader@example.org", Frequency: "daily", Confirmed: true}); err != nil {
		t.Fatal(err)
	}
	r := e.api("POST", "/api/v1/posts", `{"guid":"p1","url":"https://blog.example.org/p1/","title":"<b>Hello</b> &amp; welcome","summary":"<p>Hi <script>alert(1)</script><a href=\"javascript:x()\">x</a></p>","author":"Ann","categories":["a","b"],"published_at":"2026-11-25T07:00:00Z"}`)
	if r.status != 201 {
		t.Fatalf("add post: %d %s", r.status, r.body)
	}
	if strings.Contains(r.body, "script") || strings.Contains(r.body, "javascript:") || !strings.Contains(r.body, `"title":"Hello \u0026 welcome"`) {
		t.Fatalf("post not cleaned: %s", r.body)
	}
	// The same guid again updates, never creates.
	if r := e.api("POST", "/api/v1/posts", `{"guid":"p1","url":"https://blog.example.org/p1/","title":"Hello again"}`); r.status != 200 || !strings.Contains(r.body, `"created":false`) {
		t.Fatalf("update post: %d %s", r.status, r.body)
	}
	for i := 2; i <= 3; i++ {
		e.api("POST", "/api/v1/posts", fmt.Sprintf(`{"url":"https://blog.example.org/p%d/","title":"Post %d"}`, i, i))
	}
	r = e.api("GET", "/api/v1/posts?limit=2", "")
	var page struct {
		Posts []herald.Post `json:"posts"`
		Next  string        `json:"next"`
	}
	_ = json.Unmarshal([]byte(r.body), &page)
	if len(page.Posts) != 2 || page.Posts[0].Title != "Post 3" || page.Next == "" {
		t.Fatalf("posts page 1: %s", r.body)
	}
	r = e.api("GET", "/api/v1/posts?limit=2&after="+page.Next, "")
	_ = json.Unmarshal([]byte(r.body), &page)
	if len(page.Posts) != 1 || page.Posts[0].Title != "Hello again" || page.Next != "" {
		t.Fatalf("posts page 2: %s", r.body)
	}

	// Preview shows what the reader would get; the reader confirmed before
	// the posts came, so all three.
	r = e.api("GET", "/api/v1/preview?email=reader@example.org", "")
	if r.status != 200 || !strings.Contains(r.body, "Post 3") || !strings.HasPrefix(r.header.Get("Content-Type"), "text/html") {
		t.Fatalf("preview: %d %s", r.status, r.body)
	}

	r = e.api("POST", "/api/v1/runs", `{"frequency":"daily"}`)
	if r.status != 202 {
		t.Fatalf("start run: %d %s", r.status, r.body)
	}
	var started struct{ ID uint64 }
	_ = json.Unmarshal([]byte(r.body), &started)
	var run herald.Run
	for i := 0; i < 500; i++ {
		g := e.api("GET", fmt.Sprintf("/api/v1/runs/%d", started.ID), "")
		_ = json.Unmarshal([]byte(g.body), &run)
		if run.State == herald.RunDone {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if run.State != herald.RunDone || run.Sent != 1 || run.Frequency != herald.Daily || run.Trigger != "api" || run.StartedAt == nil || run.FinishedAt == nil {
		t.Fatalf("run %+v", run)
	}
	msgs := e.smtp.WaitFor(t, 1, 10*time.Second)
	if p := testmail.MustParse(t, msgs[0].Data); p.Subject != "Test Blog: 3 new posts" {
		t.Fatalf("digest subject %q", p.Subject)
	}
	if r := e.api("GET", "/api/v1/preview?email=reader@example.org", ""); r.status != 204 {
		t.Fatalf("preview with nothing new: %d", r.status)
	}
	// Each post knows the run that carried it.
	r = e.api("GET", "/api/v1/posts", "")
	var carried struct {
		Posts []struct {
			Title string   `json:"title"`
			Runs  []uint64 `json:"runs"`
		} `json:"posts"`
	}
	_ = json.Unmarshal([]byte(r.body), &carried)
	if len(carried.Posts) != 3 {
		t.Fatalf("posts: %s", r.body)
	}
	for _, p := range carried.Posts {
		if len(p.Runs) != 1 || p.Runs[0] != started.ID {
			t.Fatalf("post %q carried by %v, want [%d]", p.Title, p.Runs, started.ID)
		}
	}
	if r := e.api("GET", "/api/v1/runs", ""); !strings.Contains(r.body, fmt.Sprintf(`"id":%d`, started.ID)) {
		t.Fatalf("runs list: %s", r.body)
	}
	if r := e.api("POST", "/api/v1/test-email", `{"to":"admin@example.org"}`); r.status != 202 {
		t.Fatalf("test email: %d %s", r.status, r.body)
	}
	msgs = e.smtp.WaitFor(t, 2, 10*time.Second)
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
			if r.status != tc.status {
				t.Fatalf("status %d, want %d: %s", r.status, tc.status, r.body)
			}
			var body map[string]string
			if err := json.Unmarshal([]byte(r.body), &body); err != nil || body["error"] == "" {
				t.Fatalf("error body %q", r.body)
			}
			if tc.field != "" && body["field"] != tc.field {
				t.Fatalf("field %q, want %q", body["field"], tc.field)
			}
		})
	}
	if n, _ := e.db.CountPosts(context.Background()); n != 0 {
		t.Fatalf("bad input stored %d posts", n)
	}
	// Without the token, none of them.
	for _, p := range []string{"/api/v1/posts", "/api/v1/runs", "/api/v1/preview?email=a@b.org", "/api/v1/feeds"} {
		if r := e.do("GET", p, "", ""); r.status != http.StatusUnauthorized {
			t.Fatalf("%s without token: %d", p, r.status)
		}
	}
	// A second run of the same frequency while one runs: 409.
	e.subs.Subscribe(context.Background(), herald.SubscribeRequest{Email: "slow@example.org", Confirmed: true})
	e.api("POST", "/api/v1/posts", `{"url":"https://b.org/2","title":"two"}`)
	e.smtp.SetDelay(300 * time.Millisecond)
	if r := e.api("POST", "/api/v1/runs", `{"frequency":"daily"}`); r.status != 202 {
		t.Fatalf("first run: %d", r.status)
	}
	if r := e.api("POST", "/api/v1/runs", `{"frequency":"daily"}`); r.status != 409 {
		t.Fatalf("overlapping run: %d %s", r.status, r.body)
	}
	e.smtp.SetDelay(0)
}
