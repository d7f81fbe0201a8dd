package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/herald-dev/herald/internal/smtptest"
	"github.com/herald-dev/herald/internal/testmail"
)

// blog serves a WordPress-shaped RSS feed whose items the test controls.
type blog struct {
	mu    sync.Mutex
	items []int
	srv   *httptest.Server
	// hub, when set, is advertised as the feed's WebSub hub.
	hub string
	// base dates the posts: post n is published n hours after it, so
	// new posts are new to herald (within max_age).
	base time.Time
}

func newBlog(t *testing.T, items ...int) *blog {
	b := &blog{items: items, base: time.Now().UTC().Add(-24 * time.Hour).Truncate(time.Hour)}
	b.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.mu.Lock()
		defer b.mu.Unlock()
		var sb strings.Builder
		sb.WriteString(`<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0" xmlns:content="http://purl.org/rss/1.0/modules/content/" xmlns:dc="http://purl.org/dc/elements/1.1/">
<channel><title>E2E Blog</title><link>https://blog.example.org</link><description>test</description>
`)
		if b.hub != "" {
			fmt.Fprintf(&sb, "<atom:link xmlns:atom=\"http://www.w3.org/2005/Atom\" rel=\"hub\" href=\"%s\"/><atom:link xmlns:atom=\"http://www.w3.org/2005/Atom\" rel=\"self\" href=\"%s\"/>\n", b.hub, b.feedURL())
		}
		for i := len(b.items) - 1; i >= 0; i-- {
			n := b.items[i]
			fmt.Fprintf(&sb, `<item><title>Post %d</title><link>https://blog.example.org/%d/</link>
<dc:creator><![CDATA[Writer %d]]></dc:creator><category><![CDATA[news]]></category>
<guid isPermaLink="false">https://blog.example.org/?p=%d</guid>
<pubDate>%s</pubDate>
<description><![CDATA[<p>Summary %d <script>alert(1)</script></p>]]></description>
<content:encoded><![CDATA[<p>Body of post %d.</p>]]></content:encoded></item>
`, n, n, n, n, b.base.Add(time.Duration(n)*time.Hour).Format(time.RFC1123Z), n, n)
		}
		sb.WriteString("</channel></rss>")
		w.Header().Set("Content-Type", "application/rss+xml; charset=UTF-8")
		_, _ = w.Write([]byte(sb.String()))
	}))
	t.Cleanup(b.srv.Close)
	return b
}

// feedURL is where herald is told the feed is.
func (b *blog) feedURL() string { return b.srv.URL + "/feed/" }

func (b *blog) publish(n ...int) {
	b.mu.Lock()
	b.items = append(b.items, n...)
	b.mu.Unlock()
}

func (in *instance) api(method, path, body string) response {
	in.t.Helper()
	ct := ""
	if body != "" {
		ct = "application/json"
	}
	return in.do(method, path, ct, body, "Authorization", "Bearer "+adminToken)
}

func (in *instance) runAndWait(freq string) map[string]any {
	in.t.Helper()
	r := in.api("POST", "/api/v1/runs", `{"frequency":"`+freq+`"}`)
	if r.Status != 202 {
		in.t.Fatalf("start %s run: %d %s", freq, r.Status, r.Body)
	}
	var started struct{ ID uint64 }
	_ = json.Unmarshal([]byte(r.Body), &started)
	return in.waitRun(started.ID, 60*time.Second)
}

func (in *instance) waitRun(id uint64, timeout time.Duration) map[string]any {
	in.t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		r := in.api("GET", fmt.Sprintf("/api/v1/runs/%d", id), "")
		var run map[string]any
		_ = json.Unmarshal([]byte(r.Body), &run)
		if run["state"] == "done" || run["state"] == "failed" {
			return run
		}
		time.Sleep(50 * time.Millisecond)
	}
	in.t.Fatalf("run %d did not finish in %v", id, timeout)
	return nil
}

func TestWholeProcessDigests(t *testing.T) {
	sm := smtptest.Start(t)
	b := newBlog(t, 1, 2)
	in := newInstance(t, smtpConfig(sm.Port(), fmt.Sprintf(`
[[feeds]]
url = "%s/feed/"
poll_interval = "1h"
[digest]
daily = ""
weekly = ""
max_posts = 10
`, b.srv.URL)))
	p := in.start()
	defer p.stop()

	for _, r := range []struct{ email, freq string }{{"instant@example.org", "instant"}, {"daily@example.org", "daily"}, {"weekly@example.org", "weekly"}} {
		if res := in.api("POST", "/api/v1/subscribers", fmt.Sprintf(`{"email":%q,"frequency":%q,"confirmed":true}`, r.email, r.freq)); res.Status != 201 {
			t.Fatalf("add %s: %d %s", r.email, res.Status, res.Body)
		}
	}
	// The leaver signs up through the form, so it has real links.
	in.do("POST", "/subscribe", "application/x-www-form-urlencoded", "email=leaver%40example.org&frequency=daily")
	conf := testmail.MustParse(t, sm.WaitFor(t, 1, 20*time.Second)[0].Data)
	tok := strings.SplitN(conf.Link("/confirm?token="), "token=", 2)[1]
	if r := in.do("POST", "/confirm", "application/x-www-form-urlencoded", "token="+tok); r.Status != 200 {
		t.Fatalf("confirm: %d", r.Status)
	}
	welcome := testmail.MustParse(t, sm.WaitFor(t, 2, 20*time.Second)[1].Data)
	leaverUnsub := strings.TrimPrefix(strings.Trim(welcome.Header.Get("List-Unsubscribe"), "<>"), in.base)
	sm.Reset()

	// The first poll (at start, or this one) records the backlog and
	// mails nothing.
	r := in.api("POST", "/api/v1/feeds/poll", "")
	if r.Status != 200 || !strings.Contains(r.Body, `"new":0`) {
		t.Fatalf("first poll: %d %s", r.Status, r.Body)
	}
	if f := in.api("GET", "/api/v1/feeds", ""); !strings.Contains(f.Body, `"initialized":true`) || !strings.Contains(f.Body, `"items":2`) {
		t.Fatalf("feed state: %s", f.Body)
	}
	b.publish(3, 4)
	r = in.api("POST", "/api/v1/feeds/poll", "")
	if !strings.Contains(r.Body, `"new":2`) {
		t.Fatalf("second poll: %s", r.Body)
	}
	// Instant: each new post on its own, within a minute of the poll.
	msgs := sm.WaitFor(t, 2, 60*time.Second)
	subjects := map[string]bool{}
	for _, m := range msgs {
		if m.To[0] != "instant@example.org" {
			t.Fatalf("instant mail went to %v", m.To)
		}
		subjects[testmail.MustParse(t, m.Data).Subject] = true
	}
	if !subjects["Post 3"] || !subjects["Post 4"] {
		t.Fatalf("instant subjects %v", subjects)
	}
	// The leaver leaves before the daily run: nothing for them.
	if r := in.do("POST", leaverUnsub, "application/x-www-form-urlencoded", "List-Unsubscribe=One-Click"); r.Status != 200 {
		t.Fatalf("unsubscribe: %d", r.Status)
	}
	run := in.runAndWait("daily")
	if run["state"] != "done" || run["sent"] != float64(1) {
		t.Fatalf("daily run %v", run)
	}
	msgs = sm.WaitFor(t, 3, 20*time.Second)
	d := msgs[2]
	if d.To[0] != "daily@example.org" {
		t.Fatalf("daily digest went to %v", d.To)
	}
	dp := testmail.MustParse(t, d.Data)
	if dp.Subject != "E2E Blog: 2 new posts" || !strings.Contains(dp.Text, "Post 3") || !strings.Contains(dp.Text, "Post 4") ||
		strings.Contains(dp.Text, "Post 1\n") || strings.Contains(dp.Text, "Post 2\n") {
		t.Fatalf("daily digest %q:\n%s", dp.Subject, dp.Text)
	}
	if strings.Contains(dp.HTML, "<script") || !strings.Contains(dp.HTML, `href="https://blog.example.org/4/"`) || !strings.Contains(dp.Text, "Writer 4") {
		t.Fatalf("daily digest HTML:\n%s", dp.HTML)
	}
	for _, h := range []string{"List-Unsubscribe", "List-Unsubscribe-Post", "List-Id", "Precedence", "Message-Id", "Date"} {
		if dp.Header.Get(h) == "" {
			t.Errorf("digest lacks %s", h)
		}
	}
	// Nothing new: nothing sent.
	if run := in.runAndWait("daily"); run["sent"] != float64(0) {
		t.Fatalf("second daily run %v", run)
	}
	run = in.runAndWait("weekly")
	msgs = sm.WaitFor(t, 4, 20*time.Second)
	if run["sent"] != float64(1) || msgs[3].To[0] != "weekly@example.org" {
		t.Fatalf("weekly run %v to %v", run, msgs[3].To)
	}
	// The runs are done: the server has taken every email they sent.
	if n := sm.Count(); n != 4 {
		t.Fatalf("%d emails in all, want 4", n)
	}
	// A post seen again with a new title is updated, never sent again.
	b.mu.Lock()
	b.items = append(b.items[:0:0], b.items...)
	b.mu.Unlock()
	in.api("POST", "/api/v1/feeds/poll", "")
	if run := in.runAndWait("daily"); run["sent"] != float64(0) {
		t.Fatalf("a re-polled post was sent again: %v", run)
	}
}

// TestCrashDuringRun kills herald with SIGKILL at random points of a run
// and starts it again each time: every reader ends with exactly one
// distinct Message-ID for the run, and resends stay within what was in
// flight (see crashDuringRun). Short: 800 readers, 3 kills; HERALD_LONG=1:
// 10,000 readers, 20 kills.
func TestCrashDuringRun(t *testing.T) {
	readers, kills := scale(800, 10000), scale(3, 20)
	if testing.Short() {
		readers, kills = 600, 2
	}
	crashDuringRun(t, readers, kills)
}
