package adminui

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	_ "time/tzdata" // as in cmd/herald: the zones do not depend on the machine

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/herald-dev/herald"
	"github.com/herald-dev/herald/internal/browsertest"
)

// browserCtx starts headless chromium (see internal/browsertest).
func browserCtx(t *testing.T) context.Context {
	t.Helper()
	return browsertest.Start(t, 1280, 900, 120*time.Second)
}

// shot saves a PNG as $HERALD_SCREENSHOTS/admin-<name>.png (for the README).
func shot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	browsertest.Screenshot(t, ctx, "admin-"+name+".png")
}

// acceptDialogs presses OK on every dialog the page's script opens (the
// erase buttons' confirm()).
func acceptDialogs(ctx context.Context) {
	dialogs := chromedp.Events(ctx, page.JavascriptDialogOpening)
	go func() {
		for _, err := range dialogs {
			if err != nil {
				return
			}
			_, _ = chromedp.Call(ctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: true})
		}
	}()
}

// check runs the accessibility checks on the page shown now: axe-core's
// WCAG 2.1 A/AA rules and, with forms, the controls' contrast.
func check(t *testing.T, ctx context.Context, what string, forms bool) {
	t.Helper()
	browsertest.Axe(t, ctx, what)
	if forms {
		browsertest.ControlContrast(t, ctx, what)
	}
}

// waitFor polls a JavaScript condition until it is true.
func waitFor(t *testing.T, ctx context.Context, what, js string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var lastErr error
	for time.Now().Before(deadline) {
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](js))
		if err == nil && ok {
			return
		}
		lastErr = err
		time.Sleep(100 * time.Millisecond)
	}
	body, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText : ""`))
	t.Fatalf("waited %v for %s (%v); page:\n%s", timeout, what, lastErr, body)
}

func text(t *testing.T, ctx context.Context, css string) string {
	t.Helper()
	s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(css)))
	if err != nil {
		t.Fatalf("text of %s: %v", css, err)
	}
	return strings.TrimSpace(s)
}

func do(t *testing.T, ctx context.Context, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(ctx, steps...); err != nil {
		t.Fatal(err)
	}
}

// seed fills the store with readers who joined over the last months, a
// feed, and new posts, so the pages have something to show.
func seed(t *testing.T, e *env) {
	t.Helper()
	ctx := context.Background()
	now := time.Now().UTC()
	names := []string{"Ada Lovelace", "Grace Hopper", "Alan Turing", "Edsger Dijkstra", "Barbara Liskov", "Donald Knuth",
		"Margaret Hamilton", "Ken Thompson", "Frances Allen", "John Backus", "Radia Perlman", "Leslie Lamport"}
	n := 0
	for i := range 36 {
		name := names[i%len(names)]
		email := fmt.Sprintf("%s.%d@example.org", strings.ToLower(strings.Fields(name)[1]), i)
		freq := "daily"
		if i%4 == 3 {
			freq = "weekly"
		}
		e.addConfirmed(email, name, freq)
		// Spread the sign-ups over the last 120 days, faster lately.
		daysAgo := int(120 * math.Pow(1-float64(i)/36, 1.6))
		at := now.AddDate(0, 0, -daysAgo).Add(-time.Duration(i) * time.Hour)
		_, err := e.db.MutateSubscriber(ctx, email, func(cur *herald.Subscriber) (*herald.Subscriber, []*herald.OutboxMessage, error) {
			cur.ConfirmedAt = &at
			cur.CreatedAt = at.Add(-time.Hour)
			return cur, nil, nil
		})
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
	for _, p := range []string{"pending.reader@example.org", "another.pending@example.org"} {
		r := e.api(http.MethodPost, "/api/v1/subscribers", fmt.Sprintf(`{"email":%q,"frequency":"daily"}`, p))
		if r.status != http.StatusCreated {
			t.Fatalf("add %s: %d %s", p, r.status, r.body)
		}
	}
	e.smtp.WaitFor(t, 2, 10*time.Second)
	e.smtp.Reset()
	err := e.db.PutFeedState(ctx, &herald.FeedState{URL: "https://blog.example.org/feed/", Initialized: true,
		LastPoll: now.Add(-4 * time.Minute), LastSuccess: now.Add(-4 * time.Minute), Items: 10, TotalPosts: 42, NextPoll: now.Add(11 * time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	titles := []string{"Why we moved our feed to Atom", "Notes from the November meetup", "A tiny static site generator in 200 lines"}
	for i, title := range titles {
		p := &herald.Post{
			GUID: fmt.Sprintf("https://blog.example.org/p/%d", i), URL: fmt.Sprintf("https://blog.example.org/p/%d", i),
			Title: title, Author: "Ada", Summary: "<p>What we learned, and what we would do again.</p>", Content: "<p>Body</p>",
			Categories: []string{"notes"}, PublishedAt: now.Add(-time.Duration(3-i) * 5 * time.Hour), FoundAt: now, Feed: "https://blog.example.org/feed/",
		}
		if _, err := e.db.UpsertPost(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
}

func TestBrowserAdmin(t *testing.T) {
	ctx := browserCtx(t)
	london, err := time.LoadLocation("Europe/London")
	if err != nil {
		t.Fatal(err) // time/tzdata is linked: every zone is there
	}
	e := newEnv(t, envOpts{location: london, daily: "0 7 * * *", weekly: "0 7 * * MON"})
	e.ui.now = time.Now // the chart's days are real days here
	seed(t, e)
	base := e.srv.URL

	// Log in: the dashboard sends us to the login page first.
	do(t, ctx, chromedp.Navigate(base+"/admin/"), chromedp.WaitVisible(chromedp.ID("token")))
	check(t, ctx, "the login page", true)
	shot(t, ctx, "login")
	do(t, ctx,
		chromedp.SendKeys(chromedp.ID("token"), "wrong-token"),
		chromedp.Submit(chromedp.ID("token")),
		chromedp.WaitVisible(chromedp.ID("login-error")),
	)
	if msg := text(t, ctx, "#login-error"); msg != "That is not the admin token." {
		t.Fatalf("wrong token: %q", msg)
	}
	do(t, ctx,
		chromedp.SendKeys(chromedp.ID("token"), testToken),
		chromedp.Submit(chromedp.ID("token")),
		chromedp.WaitVisible(chromedp.CSS("svg.chart")),
	)
	if h := text(t, ctx, "h1"); h != "Dashboard" {
		t.Fatalf("after login: %q", h)
	}
	check(t, ctx, "the dashboard", false)
	if e.api(http.MethodGet, "/api/v1/stats", "").status == http.StatusOK {
		if n := text(t, ctx, "#stat-confirmed"); n != "36" {
			t.Fatalf("confirmed on the dashboard: %q", n)
		}
	} else {
		t.Log("GET /api/v1/stats is not there yet: not checking the dashboard's counts")
	}
	// The CSP lets the page's own style apply: the nav bar is styled.
	display, err := chromedp.Run(ctx, chromedp.Evaluate[string](`getComputedStyle(document.querySelector(".nav")).display`))
	if err != nil || display != "flex" {
		t.Fatalf("the admin style did not apply (nav display %q, %v)", display, err)
	}

	// Search a subscriber.
	do(t, ctx,
		chromedp.Navigate(base+"/admin/subscribers"),
		chromedp.WaitVisible(chromedp.ID("q")),
		chromedp.SendKeys(chromedp.ID("q"), "lovelace"),
		chromedp.Submit(chromedp.ID("q")),
	)
	waitFor(t, ctx, "search results", `location.search.includes("q=lovelace") && document.querySelectorAll("#subscribers tbody tr").length > 0`, 10*time.Second)
	rows, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`Array.from(document.querySelectorAll("#subscribers td.email")).map(e => e.textContent)`))
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rows {
		if !strings.HasPrefix(r, "lovelace.") {
			t.Fatalf("search for lovelace shows %v", rows)
		}
	}
	if len(rows) != 3 {
		t.Fatalf("search for lovelace: %v", rows)
	}
	check(t, ctx, "the subscribers page", true)
	shot(t, ctx, "subscribers")

	// Erase one, accepting the confirm() dialog the script opens.
	acceptDialogs(ctx)
	do(t, ctx, chromedp.Click(chromedp.CSS(`button[aria-label="Erase lovelace.0@example.org"]`)))
	waitFor(t, ctx, "the erase message", `(document.querySelector(".flash")||{}).textContent === "Erased lovelace.0@example.org and their history."`, 10*time.Second)
	if _, err := e.db.SubscriberByEmail(context.Background(), "lovelace.0@example.org"); herald.ErrorCode(err) != herald.ENOTFOUND {
		t.Fatalf("erase through the page: %v", err)
	}

	// Import a CSV file through the page.
	importThroughThePage(t, ctx, e)

	// Send: the first press counts who would get mail and asks; the
	// second sends. Then watch the progress bar reach the end.
	e.smtp.SetDelay(150 * time.Millisecond)
	do(t, ctx,
		chromedp.Navigate(base+"/admin/runs"),
		chromedp.WaitVisible(chromedp.ID("send-daily")),
	)
	check(t, ctx, "the runs page", true)
	do(t, ctx, chromedp.Click(chromedp.ID("send-daily")))
	waitFor(t, ctx, "the count", `!!document.getElementById("send-confirm")`, 30*time.Second)
	// 27 daily readers were seeded, one was erased; the imported one
	// joined after the posts, so has nothing new.
	if n := text(t, ctx, "#would-send"); n != "26" {
		t.Fatalf("the count says %q readers, want 26", n)
	}
	if titles := text(t, ctx, "#would-posts"); !strings.Contains(titles, "Why we moved our feed to Atom") || !strings.Contains(titles, "A tiny static site generator in 200 lines") {
		t.Fatalf("the posts that would go: %q", titles)
	}
	if e.smtp.Count() != 0 {
		t.Fatal("the first press sent mail")
	}
	check(t, ctx, "the send confirmation", true)
	shot(t, ctx, "send-confirm")
	do(t, ctx, chromedp.Click(chromedp.ID("send-confirm")), chromedp.WaitVisible(chromedp.ID("run-progress")))
	if !strings.Contains(text(t, ctx, ".flash"), "Started a daily run.") {
		t.Fatal("no message after Send")
	}
	// The script updates the bar while the run goes on.
	waitFor(t, ctx, "the progress bar to move",
		`(() => { const p = document.getElementById("run-progress"); return p && p.max > 1 && p.value > 0 && p.value < p.max })()`, 30*time.Second)
	check(t, ctx, "a run in progress", false)
	shot(t, ctx, "run-progress")
	waitFor(t, ctx, "the progress bar to reach the end",
		`(() => { const p = document.getElementById("run-progress"), s = document.getElementById("run-state");
		   return p && s && s.textContent === "done" && p.max > 1 && p.value === p.max })()`, 60*time.Second)
	// Then the page reloads once, to show the finished run and its failures.
	waitFor(t, ctx, "the finished run's page", `(() => { const r = document.getElementById("run"); return r && !r.hasAttribute("data-poll") && !!document.getElementById("fail-h") })()`, 10*time.Second)
	if sent, skipped := text(t, ctx, "#run-sent"), text(t, ctx, "#run-skipped"); sent != "26" || skipped != "1" {
		t.Fatalf("sent %q skipped %q, want 26 and 1", sent, skipped)
	}
	if trig := text(t, ctx, "#run-trigger"); trig != "admin" {
		t.Fatalf("a run from the UI is labelled %q", trig)
	}
	e.smtp.SetDelay(0)
	check(t, ctx, "a finished run", false)
	shot(t, ctx, "run")

	// Preview what a weekly reader would get now, and send a test.
	do(t, ctx,
		chromedp.Navigate(base+"/admin/preview"),
		chromedp.WaitVisible(chromedp.ID("preview-email")),
		chromedp.SendKeys(chromedp.ID("preview-email"), "dijkstra.3@example.org"),
		chromedp.Click(chromedp.ID("preview-button")),
		chromedp.WaitVisible(chromedp.ID("preview-frame")),
	)
	// The frame is sandboxed (an opaque origin): read what it loaded the
	// way it did, same-origin with the session.
	framed, err := chromedp.Run(ctx, chromedp.Evaluate[string](`fetch(document.getElementById("preview-frame").src).then(r => r.text())`, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(framed, "A tiny static site generator in 200 lines") {
		t.Fatalf("preview frame:\n%s", framed)
	}
	if os.Getenv("HERALD_SCREENSHOTS") != "" {
		time.Sleep(300 * time.Millisecond) // let the sandboxed frame paint for the picture; nothing is checked on it
	}
	check(t, ctx, "the preview page", true)
	shot(t, ctx, "preview")
	do(t, ctx,
		chromedp.SendKeys(chromedp.ID("test-to"), "editor@example.org"),
		chromedp.Click(chromedp.ID("test-button")),
		chromedp.WaitVisible(chromedp.CSS(".flash")),
	)
	if msg := text(t, ctx, ".flash"); msg != "A test digest is on its way to editor@example.org." {
		t.Fatalf("test email: %q", msg)
	}

	// The dashboard, for the README, and on a phone: no sideways scroll.
	for _, pg := range []struct{ path, what string }{{"/admin/posts", "the posts page"}, {"/admin/form", "the form page"}, {"/admin/nowhere", "the admin 404 page"}} {
		do(t, ctx, chromedp.Navigate(base+pg.path), chromedp.WaitVisible(chromedp.CSS("h1")))
		check(t, ctx, pg.what, true)
	}
	do(t, ctx, chromedp.Navigate(base+"/admin/"), chromedp.WaitVisible(chromedp.CSS("svg.chart")))
	shot(t, ctx, "dashboard")
	do(t, ctx,
		chromedp.EmulateViewport(390, 844),
		chromedp.Navigate(base+"/admin/"),
		chromedp.WaitVisible(chromedp.CSS("svg.chart")),
	)
	for _, p := range []string{"/admin/", "/admin/subscribers", "/admin/runs", "/admin/posts"} {
		do(t, ctx, chromedp.Navigate(base+p), chromedp.WaitVisible(chromedp.CSS("main")))
		overflow, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.documentElement.scrollWidth > window.innerWidth`))
		if err != nil {
			t.Fatal(err)
		}
		if overflow {
			t.Errorf("%s scrolls sideways on a phone", p)
		}
		// Every entry of the menu is on the screen, none scrolled away.
		hidden, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll(".nav a")].filter(a => { const r = a.getBoundingClientRect(); return r.width === 0 || r.left < 0 || r.right > window.innerWidth }).map(a => a.textContent)`))
		if err != nil {
			t.Fatal(err)
		}
		if len(hidden) > 0 {
			t.Errorf("%s: on a phone the menu hides %v", p, hidden)
		}
		if p == "/admin/" {
			shot(t, ctx, "phone")
		}
	}
}

func importThroughThePage(t *testing.T, ctx context.Context, e *env) {
	csvPath := filepath.Join(t.TempDir(), "readers.csv")
	csv := "email,name,frequency,status\nnew.one@example.org,New One,daily,\nnew.two@example.org,\"Two, New\",weekly,\nbroken-address,Broken,daily,\n"
	if err := os.WriteFile(csvPath, []byte(csv), 0o600); err != nil {
		t.Fatal(err)
	}
	do(t, ctx,
		chromedp.Navigate(e.srv.URL+"/admin/subscribers"),
		chromedp.WaitVisible(chromedp.ID("csv-file")),
	)
	do(t, ctx,
		chromedp.Click(chromedp.ID("import-confirmed")),
		chromedp.SetUploadFiles(chromedp.ID("csv-file"), []string{csvPath}),
		chromedp.Click(chromedp.ID("import-button")),
		chromedp.WaitVisible(chromedp.ID("import-report")),
	)
	if added, invalid := text(t, ctx, "#import-added"), text(t, ctx, "#import-invalid"); added != "2" || invalid != "1" {
		t.Fatalf("import report: added %q invalid %q", added, invalid)
	}
	check(t, ctx, "the import report", false)
	if s, err := e.db.SubscriberByEmail(context.Background(), "new.two@example.org"); err != nil || s.Name != "Two, New" || s.Status != herald.StatusConfirmed {
		t.Fatalf("imported reader: %+v %v", s, err)
	}
}
