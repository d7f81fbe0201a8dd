package adminui

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/herald-dev/herald"
	"github.com/herald-dev/herald/internal/browsertest"
	"github.com/herald-dev/herald/subscription"
)

// TestBrowserOwnerQuestions walks what an owner does with one reader, and
// when things happen, in Chromium: a subscriber's page (edit, resend the
// confirmation, reactivate after bounces, erase), every time shown in the
// site's time zone with the next digest from the schedule, and the form
// snippet pasted into a plain page of "the blog" that subscribes a reader.
func TestBrowserOwnerQuestions(t *testing.T) {
	ctx := browserCtx(t)
	kolkata, err := time.LoadLocation("Asia/Kolkata") // +05:30: no hour-aligned mistake passes
	if err != nil {
		t.Fatal(err) // time/tzdata is linked: every zone is there
	}
	e := newEnv(t, envOpts{location: kolkata, daily: "0 7 * * *", topics: []string{"Courts", "Prisons & Jails"}})
	e.ui.now = time.Now
	base := e.srv.URL
	e.addConfirmed("ann@example.org", "Ann", "weekly")
	e.addConfirmed("bob@example.org", "Bob", "daily")
	if r := e.api(http.MethodPost, "/api/v1/subscribers", `{"email":"pat@example.org","frequency":"daily"}`); r.status != http.StatusCreated {
		t.Fatal(r.body)
	}
	for range 3 {
		if r := e.api(http.MethodPost, "/api/v1/bounces", `{"email":"bob@example.org","kind":"hard"}`); r.status != http.StatusOK {
			t.Fatal(r.body)
		}
	}
	e.smtp.WaitFor(t, 1, 10*time.Second)
	acceptDialogs(ctx)
	do(t, ctx, chromedp.Navigate(base+"/admin/login"), chromedp.WaitVisible(chromedp.ID("token")),
		chromedp.SendKeys(chromedp.ID("token"), testToken), chromedp.Submit(chromedp.ID("token")),
		chromedp.WaitVisible(chromedp.ID("next-h")))

	// The next digest, from the schedule, in the site's time zone.
	next := text(t, ctx, "#schedule time.next-run")
	want := time.Now().In(kolkata)
	want = time.Date(want.Year(), want.Month(), want.Day(), 7, 0, 0, 0, kolkata)
	if !want.After(time.Now()) {
		want = want.AddDate(0, 0, 1)
	}
	if next != want.Format("2 Jan 2006 15:04 MST") {
		t.Fatalf("next daily digest shown as %q, want %q", next, want.Format("2 Jan 2006 15:04 MST"))
	}
	if tz := text(t, ctx, "#schedule-tz"); !strings.Contains(tz, "Asia/Kolkata") {
		t.Fatalf("the zone is not named: %q", tz)
	}

	// The list, newest first, each reader a link to their page.
	do(t, ctx, chromedp.Navigate(base+"/admin/subscribers"), chromedp.WaitVisible(chromedp.ID("subscribers")))
	first := text(t, ctx, "#subscribers td.email")
	if first != "pat@example.org" || text(t, ctx, "#subs-total") != "3 in all" {
		t.Fatalf("first row %q, total %q", first, text(t, ctx, "#subs-total"))
	}
	do(t, ctx, chromedp.Click(chromedp.CSS(`#subscribers a[href="/admin/subscribers/ann@example.org"]`)), chromedp.WaitVisible(chromedp.ID("sub-name")))
	ann, _ := e.db.SubscriberByEmail(context.Background(), "ann@example.org")
	if got := text(t, ctx, "#sub-created"); got != ann.CreatedAt.In(kolkata).Format("2 Jan 2006 15:04 MST") {
		t.Fatalf("signed up shown as %q, want it in Asia/Kolkata", got)
	}
	check(t, ctx, "a subscriber's page", true)
	shot(t, ctx, "subscriber")
	// Edit the name and the frequency.
	do(t, ctx,
		chromedp.SetValue(chromedp.ID("sub-name"), "Ann Other"),
		chromedp.SetValue(chromedp.ID("sub-frequency"), "instant"),
		chromedp.Click(chromedp.ID("save")),
	)
	waitFor(t, ctx, "Saved.", `(document.querySelector(".flash")||{}).textContent === "Saved."`, 10*time.Second)
	if s, _ := e.db.SubscriberByEmail(context.Background(), "ann@example.org"); s.Name != "Ann Other" || s.Frequency != herald.Instant {
		t.Fatalf("after the edit: %+v", s)
	}
	// A bad name is refused on the page, saying why.
	do(t, ctx, chromedp.SetValue(chromedp.ID("sub-name"), strings.Repeat("n", 99)+"\u0007"), chromedp.Click(chromedp.ID("save")))
	waitFor(t, ctx, "the error", `!!document.getElementById("edit-error")`, 10*time.Second)
	check(t, ctx, "a subscriber's page with an error", true)

	// Send the confirmation again to the pending reader.
	do(t, ctx, chromedp.Navigate(base+"/admin/subscribers/pat@example.org"), chromedp.WaitVisible(chromedp.ID("resend")))
	check(t, ctx, "a pending subscriber's page", true)
	do(t, ctx, chromedp.Click(chromedp.ID("resend")))
	waitFor(t, ctx, "the resend message", `(document.querySelector(".flash")||{}).textContent === "A confirmation email is on its way to pat@example.org."`, 10*time.Second)
	e.smtp.WaitFor(t, 2, 10*time.Second)

	// Reactivate the bounced reader.
	do(t, ctx, chromedp.Navigate(base+"/admin/subscribers/bob@example.org"), chromedp.WaitVisible(chromedp.ID("reactivate")))
	check(t, ctx, "a bounced subscriber's page", true)
	do(t, ctx, chromedp.Click(chromedp.ID("reactivate")))
	waitFor(t, ctx, "the reactivated reader", `(document.getElementById("sub-status")||{}).textContent === "confirmed"`, 10*time.Second)

	// Erase: without script the server asks on a page of its own...
	if _, err := chromedp.Call(ctx, emulation.SetScriptExecutionDisabled, emulation.SetScriptExecutionDisabledParams{Value: true}); err != nil {
		t.Fatal(err)
	}
	do(t, ctx, chromedp.Navigate(base+"/admin/subscribers/bob@example.org"), chromedp.WaitVisible(chromedp.ID("erase")), chromedp.Click(chromedp.ID("erase")))
	waitFor(t, ctx, "the erase question", `!!document.getElementById("erase-confirm")`, 10*time.Second)
	if _, err := chromedp.Call(ctx, emulation.SetScriptExecutionDisabled, emulation.SetScriptExecutionDisabledParams{Value: false}); err != nil {
		t.Fatal(err)
	}
	check(t, ctx, "the erase question", false)
	// ...with script, a dialog asks.
	do(t, ctx, chromedp.Navigate(base+"/admin/subscribers/bob@example.org"), chromedp.WaitVisible(chromedp.ID("erase")), chromedp.Click(chromedp.ID("erase")))
	waitFor(t, ctx, "the erase message", `(document.querySelector(".flash")||{}).textContent === "Erased bob@example.org and their history."`, 10*time.Second)
	if _, err := e.db.SubscriberByEmail(context.Background(), "bob@example.org"); herald.ErrorCode(err) != herald.ENOTFOUND {
		t.Fatalf("erase: %v", err)
	}

	// The snippet, pasted into a plain page of the blog, subscribes a reader.
	do(t, ctx, chromedp.Navigate(base+"/admin/form"), chromedp.WaitVisible(chromedp.ID("snippet-html")))
	check(t, ctx, "the form page", true)
	shot(t, ctx, "form")
	snippet := text(t, ctx, "#snippet-html")
	if !strings.Contains(snippet, `action="`+base+`/subscribe"`) {
		t.Fatalf("the snippet posts elsewhere:\n%s", snippet)
	}
	blog := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>My blog</title></head><body><h1>My blog</h1><p>A post.</p>\n%s\n</body></html>", snippet)
	}))
	defer blog.Close()
	if _, err := chromedp.Call(ctx, emulation.SetTimezoneOverride, emulation.SetTimezoneOverrideParams{TimezoneID: "America/New_York"}); err != nil {
		t.Fatal(err)
	}
	do(t, ctx, chromedp.Navigate(blog.URL), chromedp.WaitVisible(chromedp.ID("herald-email")))
	check(t, ctx, "the snippet in a blog's page", false)
	do(t, ctx,
		chromedp.SendKeys(chromedp.ID("herald-email"), "from.the.blog@example.org"),
		chromedp.SendKeys(chromedp.ID("herald-name"), "Blog Reader"),
		chromedp.SetValue(chromedp.ID("herald-frequency"), "weekly"),
		chromedp.Click(chromedp.CSS(`input[name="topics"][value="Prisons & Jails"]`)),
		chromedp.Click(chromedp.CSS(`button[type="submit"]`)),
	)
	waitFor(t, ctx, "herald's check-your-email page", `location.href.startsWith(`+"`"+base+"/subscribe/check-email`"+`) && (document.querySelector("h1")||{}).textContent === "Check your email"`, 20*time.Second)
	s, err := e.db.SubscriberByEmail(context.Background(), "from.the.blog@example.org")
	if err != nil || s.Status != herald.StatusPending || s.Name != "Blog Reader" || s.Frequency != herald.Weekly ||
		!slices.Equal(s.Topics, herald.TopicList{"Prisons & Jails"}) || s.Timezone != "America/New_York" {
		t.Fatalf("the reader from the blog: %+v %v", s, err)
	}
	msgs := e.smtp.WaitFor(t, 3, 10*time.Second)
	if to := msgs[2].To[0]; to != "from.the.blog@example.org" {
		t.Fatalf("the confirmation went to %s", to)
	}

	// The UI with no admin token is a page too.
	off := newEnv(t, envOpts{noToken: true})
	do(t, ctx, chromedp.Navigate(off.srv.URL+"/admin/"), chromedp.WaitVisible(chromedp.CSS("h1")))
	browsertest.Axe(t, ctx, "the disabled admin UI")
}

// TestBrowserScriptSnippetSolvesTheChallenge: the form page's script
// snippet, run in Chromium, still subscribes a reader while herald asks
// JSON sign-ups for the challenge (security.challenge = "always"): it
// loads herald's solver, meets the 429 with the challenge, solves it and
// posts again. Without that step a blog's readers would be turned away
// under a flood. The snippet runs on a page of herald's origin with its
// CSP bypassed (a blog's page is another origin, which herald's CORS
// allows for site.url only).
func TestBrowserScriptSnippetSolvesTheChallenge(t *testing.T) {
	ctx := browserCtx(t)
	e := newEnv(t, envOpts{budget: 100, challenge: subscription.ChallengeAlways, difficulty: 10})
	base := e.srv.URL
	snippet := scriptSnippet(base, base+"/subscribe")
	tag, code, ok := strings.Cut(snippet, "\n\n")
	src := regexp.MustCompile(`<script src="([^"]+)"></script>`).FindStringSubmatch(tag)
	if !ok || src == nil {
		t.Fatalf("the snippet does not load herald's solver first:\n%s", snippet)
	}
	if _, err := chromedp.Call(ctx, page.SetBypassCSP, page.SetBypassCSPParams{Enabled: true}); err != nil {
		t.Fatal(err)
	}
	do(t, ctx, chromedp.Navigate(base+"/healthz"))
	status, err := chromedp.Run(ctx, chromedp.Evaluate[int](fmt.Sprintf(`(async () => {
		await new Promise((ok, fail) => {
			const s = document.createElement("script");
			s.src = %q; s.onload = ok; s.onerror = fail;
			document.head.appendChild(s);
		});
		const email = "embed@example.org", name = "Embed Reader";
		%s
		return res.status;
	})()`, src[1], code), chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("running the snippet: %v", err)
	}
	if status != http.StatusAccepted {
		t.Fatalf("the snippet's sign-up under the challenge: %d", status)
	}
	s, err := e.db.SubscriberByEmail(context.Background(), "embed@example.org")
	if err != nil || s.Status != herald.StatusPending || s.Name != "Embed Reader" {
		t.Fatalf("the reader from the snippet: %+v %v", s, err)
	}
}
