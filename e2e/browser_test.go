package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/herald-dev/herald/internal/smtptest"
	"github.com/herald-dev/herald/internal/testmail"
)

// browser starts headless Debian chromium with the flags this closed
// network needs. Without chromium the test skips, except under CI=true.
func browser(t *testing.T) context.Context {
	t.Helper()
	path := ""
	for _, p := range []string{os.Getenv("CHROMIUM"), "chromium", "chromium-browser", "google-chrome"} {
		if p == "" {
			continue
		}
		if lp, err := exec.LookPath(p); err == nil {
			path = lp
			break
		}
	}
	if path == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("chromium not found, and CI=true: browser tests must run")
		}
		t.Skip("chromium not found; install Debian's chromium to run browser tests")
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.WindowSize(1100, 900),
	}
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelC := chromedp.NewContext(actx)
	ctx, cancelT := context.WithTimeout(ctx, 90*time.Second)
	t.Cleanup(func() { cancelT(); cancelC(); cancelA() })
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("starting chromium: %v", err)
	}
	return ctx
}

// screenshot saves a PNG under $HERALD_SCREENSHOTS (for the README).
func screenshot(t *testing.T, ctx context.Context, name string) {
	dir := os.Getenv("HERALD_SCREENSHOTS")
	if dir == "" {
		return
	}
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), png, 0o644); err != nil {
		t.Fatal(err)
	}
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
	if heading != "Check your email" || !strings.HasSuffix(location, "/subscribe/check-email") {
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
