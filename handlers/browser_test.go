package handlers_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/herald-dev/herald"
	"github.com/herald-dev/herald/handlers"
	"github.com/herald-dev/herald/internal/browsertest"
	"github.com/herald-dev/herald/internal/testenv"
	"github.com/herald-dev/herald/internal/testmail"
	"github.com/herald-dev/herald/subscription"
)

// pageRun is one browser, the herald it reads, and the steps a person
// takes, each checked as the page is.
type pageRun struct {
	t   *testing.T
	ctx context.Context
	e   *env
}

func (p *pageRun) do(steps ...chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	if err := chromedp.Do(p.ctx, steps...); err != nil {
		p.t.Fatal(err)
	}
}

// local turns a link from an email (server.base_url is herald.test in
// the tests) into one this herald answers.
func (p *pageRun) local(link string) string {
	return strings.Replace(link, testenv.BaseURL, p.e.URL, 1)
}

// waitText waits until the element's text holds want.
func (p *pageRun) waitText(css, want string) string {
	p.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	var last string
	var err error
	for time.Now().Before(deadline) {
		last, err = chromedp.Run(p.ctx, chromedp.Evaluate[string](`(() => { const e = document.querySelector(`+"`"+css+"`"+`); return e ? e.textContent : "" })()`))
		if err == nil && strings.Contains(last, want) {
			return last
		}
		time.Sleep(50 * time.Millisecond)
	}
	body, _ := chromedp.Run(p.ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText : ""`))
	p.t.Fatalf("waited for %q in %s; last %q (%v); page:\n%s", want, css, last, err, body)
	return ""
}

func (p *pageRun) location() string {
	p.t.Helper()
	l, err := chromedp.Run(p.ctx, chromedp.Location())
	if err != nil {
		p.t.Fatal(err)
	}
	return l
}

// check runs the accessibility checks on the page shown now: axe-core's
// WCAG 2.1 A/AA rules and, with forms, the controls' contrast.
func (p *pageRun) check(what string, forms bool) {
	p.t.Helper()
	browsertest.Axe(p.t, p.ctx, what)
	if forms {
		browsertest.ControlContrast(p.t, p.ctx, what)
	}
}

// mail waits for the n-th email (1-based) and returns it parsed.
func (p *pageRun) mail(n int) *testmail.Parsed {
	p.t.Helper()
	msgs := p.e.SMTP.WaitFor(p.t, n, 20*time.Second)
	return testmail.MustParse(p.t, msgs[n-1].Data)
}

// TestBrowserReaderFlows walks a reader's ways out of a dead end in
// Chromium, as a person would, and checks every public page on the way
// (and every kind of email) with axe-core and the contrast check: a
// subscribed reader signs up again and gets their link; leaves and comes
// back with one press; loses their links and gets them by email.
func TestBrowserReaderFlows(t *testing.T) {
	ctx := browsertest.Start(t, 1100, 900, 4*time.Minute)
	e := newEnv(t, testenv.Options{AdminToken: adminToken, Archive: true, SubscribePerIP: handlers.Rate{N: 8, Period: time.Hour}})
	p := &pageRun{t: t, ctx: ctx, e: e}
	base := e.URL
	if _, err := e.Subs.Subscribe(context.Background(), herald.SubscribeRequest{Email: "bea@example.org", Name: "Bea", Frequency: "weekly", Confirmed: true}); err != nil {
		t.Fatal(err)
	}

	// Subscribe again while subscribed: the same page as anyone gets, and
	// an email with the link to their preferences.
	p.do(chromedp.Navigate(base+"/"), chromedp.WaitVisible(chromedp.ID("email")))
	p.check("the subscribe page", true)
	browsertest.Screenshot(t, ctx, "subscribe.png")
	p.do(chromedp.SendKeys(chromedp.ID("email"), "bea@example.org"), chromedp.Click(chromedp.CSS(`button[type="submit"]`)))
	p.waitText("h1", "Check your email")
	p.check("the check-your-email page", true)
	linkMail := p.mail(1)
	prefs := linkMail.Link("/preferences?token=")
	if prefs == "" || !strings.Contains(linkMail.Text, "subscribed already") {
		t.Fatalf("no preferences link in:\n%s", linkMail.Text)
	}
	p.do(chromedp.Navigate(p.local(prefs)))
	if got := p.waitText("main", "bea@example.org"); !strings.Contains(got, "a weekly digest") {
		t.Fatalf("preferences page: %s", got)
	}
	p.check("the preferences page", true)

	// Leave with the unsubscribe link, then come back with one press.
	p.do(chromedp.Navigate(p.local(linkMail.Link("/unsubscribe?token="))), chromedp.WaitVisible(chromedp.ID("unsubscribe-button")))
	p.check("the unsubscribe page", true)
	p.do(chromedp.Click(chromedp.ID("unsubscribe-button")))
	p.waitText("h1", "You're unsubscribed")
	// The answer to the press is a page of its own: a reload asks nothing.
	if l := p.location(); !strings.Contains(l, "/unsubscribe?token=") {
		t.Fatalf("after unsubscribing the browser is at %s", l)
	}
	p.do(chromedp.Reload())
	p.waitText("h1", "You're unsubscribed")
	p.check("the unsubscribed page", true)
	if st := e.status("bea@example.org"); st != herald.StatusUnsubscribed {
		t.Fatalf("status %s", st)
	}
	p.do(chromedp.Navigate(p.local(prefs)), chromedp.WaitVisible(chromedp.ID("resubscribe")))
	if got := p.waitText("#status", "You're unsubscribed"); strings.Contains(got, "Saved") {
		t.Fatalf("status line %q", got)
	}
	p.check("the preferences page of a reader who left", true)
	browsertest.Screenshot(t, ctx, "preferences-unsubscribed.png")
	p.do(chromedp.Navigate(p.local(linkMail.Link("/unsubscribe?token="))), chromedp.WaitVisible(chromedp.ID("resubscribe")),
		chromedp.Click(chromedp.ID("resubscribe")))
	p.waitText("#done", "Welcome back")
	if s := e.sub("bea@example.org"); s.Status != herald.StatusConfirmed || s.Name != "Bea" || s.Frequency != herald.Weekly {
		t.Fatalf("back: %+v", s)
	}
	p.check("the preferences page after coming back", true)

	// Lose every link, and get it by email.
	p.do(chromedp.Navigate(base+"/preferences"), chromedp.WaitVisible(chromedp.ID("email")))
	p.check("the get-your-link page", true)
	p.do(chromedp.SendKeys(chromedp.ID("email"), "bea@example.org"), chromedp.Click(chromedp.CSS(`button[type="submit"]`)))
	p.waitText("#link-sent", "If that address is on our list")
	p.check("the link-sent page", true)
	browsertest.Screenshot(t, ctx, "get-your-link.png")
	asked := p.mail(2)
	if !strings.Contains(asked.Text, "asked for the link") {
		t.Fatalf("link email:\n%s", asked.Text)
	}
	p.do(chromedp.Navigate(p.local(asked.Link("/preferences?token="))), chromedp.WaitVisible(chromedp.ID("save")))
	p.waitText("main", "bea@example.org")

	// The rest of the public pages: a new reader's way in, errors, the archive.
	p.do(chromedp.Navigate(base+"/"), chromedp.WaitVisible(chromedp.ID("email")),
		chromedp.SendKeys(chromedp.ID("email"), "not-an-address"), chromedp.Click(chromedp.CSS(`button[type="submit"]`)))
	p.waitText("#form-error", "")
	p.check("the subscribe page with an error", true)
	p.do(chromedp.Navigate(base+"/"), chromedp.WaitVisible(chromedp.ID("email")),
		chromedp.SendKeys(chromedp.ID("email"), "cal@example.org"), chromedp.SendKeys(chromedp.ID("name"), "Cal"),
		chromedp.Click(chromedp.CSS(`input[value="daily"]`)), chromedp.Click(chromedp.CSS(`button[type="submit"]`)))
	p.waitText("h1", "Check your email")
	confirmMail := p.mail(3)
	// The confirm page presses its own button; hold that back to check
	// the page as it stands.
	hold, err := chromedp.Call(ctx, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: `HTMLFormElement.prototype.submit = function () {};`})
	if err != nil {
		t.Fatal(err)
	}
	p.do(chromedp.Navigate(p.local(confirmMail.Link("/confirm?token="))), chromedp.WaitVisible(chromedp.ID("confirm-button")))
	p.check("the confirm page", true)
	if _, err := chromedp.Call(ctx, page.RemoveScriptToEvaluateOnNewDocument, page.RemoveScriptToEvaluateOnNewDocumentParams(hold)); err != nil {
		t.Fatal(err)
	}
	p.do(chromedp.Navigate(p.local(confirmMail.Link("/confirm?token="))))
	p.waitText("h1", "You're subscribed")
	if l := p.location(); !strings.Contains(l, "/subscribed?token=") {
		t.Fatalf("after confirming the browser is at %s", l)
	}
	p.check("the confirmed page", false)
	browsertest.Screenshot(t, ctx, "confirmed.png")
	p.do(chromedp.Navigate(base + "/no/such/page"))
	p.waitText("h1", "Page not found")
	p.check("the 404 page", false)
	p.do(chromedp.Navigate(base + "/confirm?token=garbage"))
	p.waitText("h1", "This link doesn't work")
	p.check("the bad-link page", false)

	// A digest, an instant email and a test email; the archive.
	e.Confirmed("dee@example.org", herald.Daily)
	e.Confirmed("ian@example.org", herald.Instant)
	e.AddPost(1)
	e.AddPost(2)
	for _, f := range []herald.Frequency{herald.Daily, herald.Instant} {
		run, err := e.Digest.StartRun(context.Background(), f, herald.TriggerAPI, false)
		if err != nil {
			t.Fatal(err)
		}
		e.WaitRun(run.ID)
	}
	if err := e.Digest.SendTest(context.Background(), "editor@example.org", nil); err != nil {
		t.Fatal(err)
	}
	e.OutboxSent()
	p.do(chromedp.Navigate(base + "/archive"))
	p.waitText("h1", "Past digests")
	p.check("the archive", false)
	// A divider goes between digests, not between the titles in one.
	styles, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll(".digests > li, .digests ul li")].map(li => (li.parentElement.classList.contains("digests") ? "digest " : "title ") + getComputedStyle(li).borderTopStyle)`))
	if err != nil {
		t.Fatal(err)
	}
	for i, st := range styles {
		if strings.HasPrefix(st, "title ") && st != "title none" || i > 0 && strings.HasPrefix(st, "digest ") && st != "digest solid" {
			t.Fatalf("archive list borders: %v", styles)
		}
	}
	p.do(chromedp.Click(chromedp.CSS("a.subject")))
	p.waitText("h1", "new posts")
	p.check("an archived digest", false)

	// Every kind of email, as a mail client shows its HTML part.
	emails := map[string]string{}
	for _, m := range e.SMTP.Messages() {
		parsed := testmail.MustParse(t, m.Data)
		if kind := emailKind(parsed); emails[kind] == "" {
			emails[kind] = parsed.HTML
		}
	}
	for _, k := range []string{"confirm", "welcome", "link (subscribed again)", "link (asked)", "digest", "instant", "test"} {
		if emails[k] == "" {
			t.Fatalf("no %s email among %d", k, len(emails))
		}
	}
	mail := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write([]byte(emails[strings.TrimPrefix(r.URL.Path, "/")]))
	}))
	defer mail.Close()
	for kind := range emails {
		p.do(chromedp.Navigate(mail.URL + "/" + strings.ReplaceAll(kind, " ", "%20")))
		p.check(fmt.Sprintf("the %s email", kind), false)
		if kind == "digest" {
			browsertest.Screenshot(t, ctx, "digest-email.png")
		}
	}

	// Too many requests from one address: the page says so in words.
	for i := 0; ; i++ {
		r := e.form("/preferences/link", map[string][]string{"email": {"x@example.org"}})
		if r.Status == http.StatusTooManyRequests {
			break
		}
		if i > 20 {
			t.Fatal("the per-IP limit never answered 429")
		}
	}
	p.do(chromedp.Navigate(base+"/preferences"), chromedp.WaitVisible(chromedp.ID("email")),
		chromedp.SendKeys(chromedp.ID("email"), "bea@example.org"), chromedp.Click(chromedp.CSS(`button[type="submit"]`)))
	if got := p.waitText("h1", "Slow down"); strings.Contains(got, "Something is not right") {
		t.Fatalf("429 heading %q", got)
	}
	p.check("the too-many-requests page", false)
}

// emailKind names an email by what it says.
func emailKind(p *testmail.Parsed) string {
	switch {
	case strings.HasPrefix(p.Subject, "Confirm your subscription"):
		return "confirm"
	case strings.HasPrefix(p.Subject, "Welcome to"):
		return "welcome"
	case strings.Contains(p.Text, "subscribed already"):
		return "link (subscribed again)"
	case strings.Contains(p.Text, "asked for the link"):
		return "link (asked)"
	case strings.HasPrefix(p.Subject, "[Test]"):
		return "test"
	case strings.Contains(p.Subject, "new posts"):
		return "digest"
	}
	return "instant"
}

// TestBrowserChallengeSaysWaitInTheReadersLanguage: while the form's
// script solves the sign-up challenge (here one too hard to finish), the
// button says so in the page's language.
func TestBrowserChallengeSaysWaitInTheReadersLanguage(t *testing.T) {
	ctx := browsertest.Start(t, 900, 800, time.Minute)
	e := newEnv(t, testenv.Options{ChallengeDifficulty: 32,
		Subscription: func(o *subscription.Options) { o.Challenge = subscription.ChallengeAlways }})
	p := &pageRun{t: t, ctx: ctx, e: e}
	for lang, want := range map[string]string{"de": "Einen Moment…", "fr": "Un instant…"} {
		p.do(chromedp.Navigate(e.URL+"/?lang="+lang), chromedp.WaitVisible(chromedp.ID("email")),
			chromedp.SendKeys(chromedp.ID("email"), "leser@example.org"), chromedp.Click(chromedp.CSS(`button[type="submit"]`)))
		p.waitText(`button[type="submit"]`, want)
	}
	if n := e.SMTP.Count(); n != 0 {
		t.Fatalf("%d emails before any solution", n)
	}
}
