package e2e

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/herald-dev/herald/internal/smtptest"
	"github.com/herald-dev/herald/internal/testmail"
)

// hostileBodies are what a broken or malicious feed server sends, one per
// request in turn, gzipped as a server may: 10 MB of unclosed nested tags
// (a stack overflow in gofeed, and 1.3 GB of memory, before herald bounded
// them), 13 MB of tags (over the 10 MiB cap), and an error page.
func hostileBodies() [][]byte {
	zip := func(b []byte) []byte {
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		_, _ = zw.Write(b)
		_ = zw.Close()
		return buf.Bytes()
	}
	nested := `<?xml version="1.0"?><rss version="2.0" xmlns:x="urn:x"><channel><item><guid>d</guid>` + strings.Repeat("<x:a>", 2_000_000)
	return [][]byte{
		zip([]byte(nested)),
		zip(bytes.Repeat([]byte("<a>"), 13_000_000/3)),
		zip([]byte("<html><body><h1>502 Bad Gateway</h1></body></html>")),
	}
}

// TestHostileFeedBesideAGoodOne: a feed that sends a gzip bomb of nested
// tags, a body over the cap or an error page sits beside a good feed. herald
// keeps serving, the good feed's new posts reach an instant reader, the
// poll result names the hostile feed's trouble, and a restart (which polls
// every feed at once) does not crash.
func TestHostileFeedBesideAGoodOne(t *testing.T) {
	sm := smtptest.Start(t)
	good := newBlog(t, 1, 2)
	bodies := hostileBodies()
	var hits atomic.Int64
	hostile := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		i := int(hits.Add(1)-1) % len(bodies)
		w.Header().Set("Content-Type", "application/rss+xml")
		w.Header().Set("Content-Encoding", "gzip")
		_, _ = w.Write(bodies[i])
	}))
	defer hostile.Close()
	in := newInstance(t, smtpConfig(sm.Port(), fmt.Sprintf(`
[[feeds]]
url = "%s/feed/"
poll_interval = "1h"
[[feeds]]
url = "%s"
poll_interval = "1h"
[digest]
daily = ""
weekly = ""
`, hostile.URL, good.srv.URL)))
	p := in.start()
	if r := in.api("POST", "/api/v1/subscribers", `{"email":"instant@example.org","frequency":"instant","confirmed":true}`); r.Status != 201 {
		t.Fatalf("add reader: %d %s", r.Status, r.Body)
	}

	type result struct {
		Feed, Status, Error string
		New                 int
	}
	poll := func() map[string]result {
		t.Helper()
		r := in.api("POST", "/api/v1/feeds/poll", "")
		if r.Status != 200 {
			t.Fatalf("poll: %d %s", r.Status, r.Body)
		}
		var out struct{ Results []result }
		if err := json.Unmarshal([]byte(r.Body), &out); err != nil {
			t.Fatal(err)
		}
		m := map[string]result{}
		for _, res := range out.Results {
			m[res.Feed] = res
		}
		return m
	}
	hostileURL := hostile.URL + "/feed/"
	seenErrors := map[string]bool{}
	for round := range 3 { // each hostile body once
		good.publish(10 + round)
		res := poll()
		if g := res[good.srv.URL]; g.Status != "ok" {
			t.Fatalf("round %d: good feed %+v", round, g)
		}
		h := res[hostileURL]
		if h.Status != "error" || h.Error == "" {
			t.Fatalf("round %d: hostile feed %+v", round, h)
		}
		seenErrors[h.Error[:min(len(h.Error), 60)]] = true
		if r := in.do("GET", "/healthz", "", ""); r.Status != 200 {
			t.Fatalf("herald stopped serving: %d", r.Status)
		}
	}
	if len(seenErrors) < 3 {
		t.Errorf("the hostile feed's errors do not say what was wrong: %v", seenErrors)
	}
	// The good feed's new posts reached the instant reader, one by one.
	var subjects []string
	for _, m := range sm.WaitFor(t, 3, 60*time.Second) {
		subjects = append(subjects, testmail.MustParse(t, m.Data).Subject)
	}
	slices.Sort(subjects)
	if strings.Join(subjects, ",") != "Post 10,Post 11,Post 12" {
		t.Fatalf("instant emails: %v", subjects)
	}
	if st := in.api("GET", "/api/v1/feeds", ""); !strings.Contains(st.Body, `"failures":`) || !strings.Contains(st.Body, hostileURL) {
		t.Fatalf("feeds API: %s", st.Body)
	}

	// SIGKILL and start again: herald polls both feeds at start. The
	// instant runs are let finish first, so that no email of theirs is
	// resent (that is allowed after a crash, and tested elsewhere).
	// Post 20 is published while herald is down: the poll at start finds
	// it (published after the start, a poll at start could find it or not).
	in.waitRunsDone(30 * time.Second)
	p.kill()
	good.publish(20)
	p = in.start()
	defer p.stop()
	msgs := sm.WaitFor(t, 4, 60*time.Second)
	if s := testmail.MustParse(t, msgs[3].Data).Subject; s != "Post 20" {
		t.Fatalf("after the restart the reader got %q", s)
	}
	if res := poll(); res[good.srv.URL].Status != "ok" || res[good.srv.URL].New != 0 || res[hostileURL].Status != "error" {
		t.Fatalf("after the restart: %+v", res)
	}
	if r := in.do("GET", "/", "", ""); r.Status != 200 {
		t.Fatalf("subscribe page after the restart: %d", r.Status)
	}
}

var (
	hubOnce sync.Once
	hubBin  string
	hubErr  error
)

// startHub builds (once) and runs the test WebSub hub as a process of its
// own, and returns its URL.
func startHub(t *testing.T) string {
	t.Helper()
	hubOnce.Do(func() {
		hubBin = filepath.Join(filepath.Dir(heraldBinary(t)), "websubhub")
		out, err := exec.Command("go", "build", "-o", hubBin, "../internal/websubhub/cmd/websubhub").CombinedOutput()
		if err != nil {
			hubErr = fmt.Errorf("build websubhub: %v\n%s", err, out)
		}
	})
	if hubErr != nil {
		t.Fatal(hubErr)
	}
	cmd := exec.Command(hubBin, "-listen", "127.0.0.1:0", "-retry-backoff", "100ms")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	var logMu sync.Mutex
	cmd.Stderr = writerFunc(func(b []byte) (int, error) { logMu.Lock(); defer logMu.Unlock(); return logs.Write(b) })
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			logMu.Lock()
			t.Logf("hub output:\n%s", logs.String())
			logMu.Unlock()
		}
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	hub, ok := strings.CutPrefix(strings.TrimSpace(line), "websubhub listening on ")
	if err != nil || !ok {
		t.Fatalf("hub said %q, %v", line, err)
	}
	return hub
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(b []byte) (int, error) { return f(b) }

// TestWebSubPublishToInstantEmail: a blog whose feed names a WebSub hub
// (run as a process of its own) publishes; the hub pushes the feed to
// herald, signed; the instant reader's email is accepted by the SMTP
// server seconds later, with no poll in between (polls are an hour
// apart). HERALD_WEBSUB_POSTS sets how many posts are published (default
// 3); the median and p99 of publish to SMTP accept are logged, which is
// how the README's figure is measured (see docs/feeds.md).
func TestWebSubPublishToInstantEmail(t *testing.T) {
	n := 3
	if v, err := strconv.Atoi(os.Getenv("HERALD_WEBSUB_POSTS")); err == nil && v > 0 {
		n = v
	}
	sm := smtptest.Start(t)
	hub := startHub(t)
	b := newBlog(t, 1, 2)
	b.mu.Lock()
	b.hub = hub
	b.mu.Unlock()
	in := newInstance(t, smtpConfig(sm.Port(), fmt.Sprintf(`
[[feeds]]
url = "%s"
poll_interval = "1h"
[digest]
daily = ""
weekly = ""
`, b.feedURL())))
	p := in.start()
	defer p.stop()
	if r := in.api("POST", "/api/v1/subscribers", `{"email":"instant@example.org","frequency":"instant","confirmed":true}`); r.Status != 201 {
		t.Fatalf("add reader: %d %s", r.Status, r.Body)
	}

	// The poll at start found the hub and subscribed; the hub verified.
	deadline := time.Now().Add(30 * time.Second)
	for {
		r := in.api("GET", "/api/v1/feeds", "")
		if strings.Contains(r.Body, `"state":"active"`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no active WebSub subscription: %s", r.Body)
		}
		time.Sleep(50 * time.Millisecond)
	}

	// The hub records the subscription once herald has answered its
	// verification, a moment after herald marks it active.
	for {
		resp, err := http.Get(hub)
		if err != nil {
			t.Fatal(err)
		}
		subs, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if strings.Contains(string(subs), b.feedURL()) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the hub lists no subscription: %s", subs)
		}
		time.Sleep(20 * time.Millisecond)
	}

	var took []time.Duration
	for i := range n {
		post := 100 + i
		b.publish(post)
		start := time.Now()
		resp, err := http.PostForm(hub, url.Values{"hub.mode": {"publish"}, "hub.url": {b.feedURL()}})
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNoContent {
			t.Fatalf("publish: %s", resp.Status)
		}
		msgs := sm.WaitFor(t, i+1, 60*time.Second)
		m := msgs[i]
		took = append(took, m.Received.Sub(start))
		if s := testmail.MustParse(t, m.Data).Subject; s != fmt.Sprintf("Post %d", post) || m.To[0] != "instant@example.org" {
			t.Fatalf("email %d: %q to %v", i, s, m.To)
		}
	}
	f := in.api("GET", "/api/v1/feeds", "")
	if !strings.Contains(f.Body, fmt.Sprintf(`"pushes":%d`, n)) {
		t.Errorf("feeds API does not count the pushes: %s", f.Body)
	}
	sortDurations(took)
	t.Logf("WebSub publish to SMTP accept, %d posts: median %v, p99 %v, max %v",
		n, percentile(took, 0.5).Round(time.Millisecond), percentile(took, 0.99).Round(time.Millisecond), took[len(took)-1].Round(time.Millisecond))
}

// waitRunsDone waits until no digest run is queued or running.
func (in *instance) waitRunsDone(timeout time.Duration) {
	in.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		r := in.api("GET", "/api/v1/runs", "")
		if r.Status == 200 && !strings.Contains(r.Body, `"state":"running"`) && !strings.Contains(r.Body, `"state":"queued"`) {
			return
		}
		if time.Now().After(deadline) {
			in.t.Fatalf("runs still going after %v: %s", timeout, r.Body)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
