package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/herald-dev/herald/internal/browsertest"
	"github.com/herald-dev/herald/internal/smtptest"
	"github.com/herald-dev/herald/internal/testmail"
)

// browser starts headless chromium (see internal/browsertest).
func browser(t *testing.T) context.Context {
	t.Helper()
	return browsertest.Start(t, 1100, 900, 90*time.Second)
}

// screenshot saves a PNG under $HERALD_SCREENSHOTS (for the README).
func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	browsertest.Screenshot(t, ctx, name)
}

func TestBrowserSubscribeAndConfirm(t *testing.T) {
	ctx := browser(t)
	sm := smtptest.Start(t)
	in := newInstance(t, smtpConfig(sm.Port(), ""))
	p := in.start()
	defer p.stop()

	err := chromedp.Do(ctx,
		chromedp.Navigate(in.base+"/"),
		chromedp.WaitVisible(chromedp.ID("email")),
	)
	if err != nil {
		t.Fatal(err)
	}
	screenshot(t, ctx, "subscribe.png")
	err = chromedp.Do(ctx,
		chromedp.SendKeys(chromedp.ID("email"), "browser@example.org"),
		chromedp.SendKeys(chromedp.ID("name"), "Bea"),
		chromedp.Click(chromedp.CSS(`input[value="weekly"]`)),
		chromedp.Click(chromedp.CSS(`button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.CSS(`form[action="/subscribe/resend"]`)),
	)
	if err != nil {
		t.Fatal(err)
	}
	heading, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("h1")))
	if err != nil {
		t.Fatal(err)
	}
	location, err := chromedp.Run(ctx, chromedp.Location())
	if err != nil {
		t.Fatal(err)
	}
	if heading != "Check your email" || !strings.HasSuffix(location, "/subscribe/check-email?lang=en") {
		t.Fatalf("after submit: %q at %s", heading, location)
	}
	msgs := sm.WaitFor(t, 1, 20*time.Second)
	link := testmail.MustParse(t, msgs[0].Data).Link("/confirm?token=")
	if link == "" {
		t.Fatal("no confirm link")
	}
	// With script on, opening the link is the one click: the page posts
	// the token back by itself.
	if err := chromedp.Do(ctx, chromedp.Navigate(link)); err != nil {
		t.Fatal(err)
	}
	heading = waitText(t, ctx, "h1", "subscribed", 20*time.Second)
	if heading != "You're subscribed" {
		t.Fatalf("after opening the confirm link: %q", heading)
	}
	screenshot(t, ctx, "confirmed.png")
	if st := in.status("browser@example.org"); st != "confirmed" {
		t.Fatalf("status %s", st)
	}
	// The page is usable on a phone: no sideways scrolling at 375px.
	err = chromedp.Do(ctx,
		chromedp.EmulateViewport(375, 740),
		chromedp.Navigate(in.base+"/"),
		chromedp.WaitVisible(chromedp.ID("email")),
	)
	if err != nil {
		t.Fatal(err)
	}
	overflow, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.documentElement.scrollWidth > window.innerWidth`))
	if err != nil {
		t.Fatal(err)
	}
	if overflow {
		t.Fatal("the subscribe page scrolls sideways on a 375px phone")
	}
	screenshot(t, ctx, "subscribe-phone.png")
}

// waitText waits until the element's text contains want; the page may be
// navigating meanwhile (the confirm page submits itself), so errors from a
// page going away are retried.
func waitText(t *testing.T, ctx context.Context, css, want string, timeout time.Duration) string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last string
	var lastErr error
	for time.Now().Before(deadline) {
		last, lastErr = chromedp.Run(ctx, chromedp.Evaluate[string](`(() => { const e = document.querySelector(`+"`"+css+"`"+`); return e ? e.textContent : "" })()`))
		if lastErr == nil && strings.Contains(last, want) {
			return last
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("waited %v for %q in %s; last %q, %v", timeout, want, css, last, lastErr)
	return ""
}
