package e2e

import (
	"context"
	"crypto/sha256"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"

	"github.com/herald-dev/herald/internal/smtptest"
	"github.com/herald-dev/herald/internal/testenv"
)

// TestBrowserChallenge: with security.challenge = "always", the subscribe
// form works in a real browser: its script (loaded from herald under the
// page's CSP nonce) solves the challenge at the default difficulty and
// the form goes; the reader is answered and their confirmation arrives,
// which only a solved sign-up can here (the budget is one an hour). With
// script off the same form still subscribes: the reader is stored and
// the confirmation waits, as /api/v1/stats says. It also measures the
// script's hashes a second against Go's, for the difficulty's reasoning
// (challenge.DefaultDifficulty).
func TestBrowserChallenge(t *testing.T) {
	ctx := browser(t)
	sm := smtptest.Start(t)
	in := newInstance(t, robustConfig(sm.Port(), "", "[security]\nchallenge = \"always\"\nconfirmations_per_hour = 1"))
	p := in.start()
	defer p.stop()

	err := chromedp.Do(ctx,
		chromedp.Navigate(in.base+"/"),
		chromedp.WaitVisible(chromedp.ID("email")),
		chromedp.SendKeys(chromedp.ID("email"), "script@example.org"),
		chromedp.Click(chromedp.CSS(`button[type="submit"]`)), // at once: the script holds the form until solved
		chromedp.WaitVisible(chromedp.CSS(`form[action="/subscribe/resend"]`)),
	)
	if err != nil {
		t.Fatalf("subscribing with script on: %v", err)
	}
	msgs := sm.WaitFor(t, 1, 30*time.Second)
	if msgs[0].To[0] != "script@example.org" {
		t.Fatalf("mail to %v", msgs[0].To)
	}
	if st := in.stats().Confirmations; st.Waiting != 0 || !st.ChallengeActive {
		t.Fatalf("after the solved sign-up: %+v", st)
	}

	// The script's speed, against Go's on this machine in this run.
	const rounds, bits = 24, 16
	if err := chromedp.Do(ctx, chromedp.Navigate(in.base+"/"), chromedp.WaitVisible(chromedp.ID("email"))); err != nil {
		t.Fatal(err)
	}
	js, err := chromedp.Run(ctx, chromedp.Evaluate[[]float64](fmt.Sprintf(`(async () => {
		while (!window.heraldSolve) await new Promise(r => setTimeout(r, 10)); // a deferred script
		let tries = 0; const t0 = performance.now();
		for (let i = 0; i < %d; i++) tries += 1 + Number(await heraldSolve("bench" + i + "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", %d));
		return [tries, (performance.now() - t0) / 1000];
	})()`, rounds, bits), chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("measuring the script: %v", err)
	}
	goRate := goHashRate()
	jsRate := js[0] / js[1]
	t.Logf("FIGURES challenge: the page's script %.0f hashes/s in headless Chromium (%d solutions at %d bits, %.0f tries), Go %.0f hashes/s on the same machine: Go/JS %.1f; the default 2^%d expected hashes take %.2f s here",
		jsRate, rounds, bits, js[0], goRate, goRate/jsRate, 18, float64(1<<18)/jsRate)

	// Script off: the form still subscribes; the confirmation waits.
	err = chromedp.Do(ctx,
		chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			_, err := cdp.Call(ctx, tg, emulation.SetScriptExecutionDisabled, emulation.SetScriptExecutionDisabledParams{Value: true})
			return err
		}),
		chromedp.Navigate(in.base+"/"),
		chromedp.WaitVisible(chromedp.ID("email")),
		chromedp.SendKeys(chromedp.ID("email"), "noscript@example.org"),
		chromedp.Click(chromedp.CSS(`button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.CSS(`form[action="/subscribe/resend"]`)),
	)
	if err != nil {
		t.Fatalf("subscribing with script off: %v", err)
	}
	if s := in.status("noscript@example.org"); s != "pending" {
		t.Fatalf("the no-script reader is %s, want pending", s)
	}
	testenv.Eventually(t, 10*time.Second, "the no-script confirmation to be held", func() bool {
		return in.stats().Confirmations.WaitingByReason["challenge_unsolved"] == 1
	})
	if n := len(onlyTo(sm.Messages(), "noscript@example.org")); n != 0 {
		t.Fatalf("the no-script reader's confirmation went at once (%d)", n)
	}
}

// goHashRate is how many challenge hashes a second Go does here.
func goHashRate() float64 {
	pre := []byte("benchAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA:")
	buf := make([]byte, 0, 64)
	var sink byte
	const n = 1 << 20
	t0 := time.Now()
	for i := range n {
		buf = strconv.AppendInt(append(buf[:0], pre...), int64(i), 10)
		h := sha256.Sum256(buf)
		sink ^= h[0]
	}
	_ = sink
	return n / time.Since(t0).Seconds()
}
