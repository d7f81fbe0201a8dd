package handlers_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"

	"github.com/herald-dev/herald"
	"github.com/herald-dev/herald/internal/browsertest"
	"github.com/herald-dev/herald/internal/testenv"
	"github.com/herald-dev/herald/internal/testmail"
)

// textOf waits until the element's text holds want, and returns it.
func textOf(t *testing.T, ctx context.Context, css, want string) string {
	t.Helper()
	var last string
	testenv.Eventually(t, 20*time.Second, css+" to say "+want, func() bool {
		s, err := chromedp.Run(ctx, chromedp.Evaluate[string](`(() => { const e = document.querySelector(`+"`"+css+"`"+`); return e ? e.textContent : "" })()`))
		last = s
		return err == nil && strings.Contains(s, want)
	})
	return last
}

// In Chromium, as a reader: subscribe choosing topics, the form taking
// the browser's time zone (India's, which Chromium names by its old name
// Asia/Calcutta; herald keeps today's, Asia/Kolkata); confirm; change the topics
// and the zone on the preferences page; pause for two weeks and resume.
func TestBrowserTopicsZoneAndPause(t *testing.T) {
	e := newEnv(t, testenv.Options{Topics: courtTopics})
	ctx := browsertest.Start(t, 1000, 1000, 90*time.Second)
	if _, err := chromedp.Call(ctx, emulation.SetTimezoneOverride, emulation.SetTimezoneOverrideParams{TimezoneID: "Asia/Kolkata"}); err != nil {
		t.Fatal(err)
	}
	err := chromedp.Do(ctx,
		chromedp.Navigate(e.URL+"/"),
		chromedp.WaitVisible(chromedp.ID("email")),
	)
	if err != nil {
		t.Fatal(err)
	}
	browsertest.Axe(t, ctx, "the subscribe form with topics")
	err = chromedp.Do(ctx,
		chromedp.SendKeys(chromedp.ID("email"), "chrome@example.org"),
		chromedp.Click(chromedp.CSS(`input[name="topics"][value="Courts"]`)),
		chromedp.Click(chromedp.CSS(`input[name="topics"][value="Policing"]`)),
		chromedp.Click(chromedp.CSS(`button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.CSS(`form[action="/subscribe/resend"]`)),
	)
	if err != nil {
		t.Fatal(err)
	}
	s := e.sub("chrome@example.org")
	if !slices.Equal(s.Topics, herald.TopicList{"Courts", "Policing"}) || s.Timezone != "Asia/Kolkata" {
		t.Fatalf("signed up with topics %v, zone %q", s.Topics, s.Timezone)
	}
	link := testmail.MustParse(t, e.SMTP.WaitFor(t, 1, 20*time.Second)[0].Data).Link("/confirm?token=")
	link = strings.Replace(link, testenv.BaseURL, e.URL, 1) // the email's links are on base_url
	if err := chromedp.Do(ctx, chromedp.Navigate(link)); err != nil {
		t.Fatal(err)
	}
	textOf(t, ctx, "h1", "subscribed")

	// Change them.
	prefs := "/preferences?token=" + e.Subs.ManageToken(s.ID)
	err = chromedp.Do(ctx,
		chromedp.Navigate(e.URL+prefs),
		chromedp.WaitVisible(chromedp.ID("timezone")),
		chromedp.Click(chromedp.CSS(`input[name="topics"][value="Policing"]`)), // off
		chromedp.Click(chromedp.CSS(`input[name="topics"][value="Prisons"]`)),  // on
		chromedp.Clear(chromedp.ID("timezone")),
		chromedp.Click(chromedp.ID("use-device-zone")), // the browser's zone, back
	)
	if err != nil {
		t.Fatal(err)
	}
	if v, err := chromedp.Run(ctx, chromedp.Value(chromedp.ID("timezone"))); err != nil || (v != "Asia/Kolkata" && v != "Asia/Calcutta") {
		t.Fatalf("the device's zone button set %q (%v)", v, err)
	}
	// A made-up zone: the page again, saying what is wrong, with the
	// choices as sent; nothing changes.
	err = chromedp.Do(ctx,
		chromedp.SetValue(chromedp.ID("timezone"), "Mars/Olympus"),
		chromedp.Click(chromedp.CSS(`button[value="save"]`)),
		chromedp.WaitVisible(chromedp.ID("form-error")),
	)
	if err != nil {
		t.Fatal(err)
	}
	textOf(t, ctx, "#form-error", "Mars/Olympus")
	if v, err := chromedp.Run(ctx, chromedp.Value(chromedp.ID("timezone"))); err != nil || v != "Mars/Olympus" {
		t.Fatalf("the zone field after the error: %q (%v)", v, err)
	}
	if on, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.querySelector('input[name="topics"][value="Prisons"]').checked && !document.querySelector('input[name="topics"][value="Policing"]').checked`)); err != nil || !on {
		t.Fatalf("the topics ticked after the error were not the ones sent (%v)", err)
	}
	browsertest.Axe(t, ctx, "the preferences page with a bad time zone")
	if s := e.sub("chrome@example.org"); !slices.Equal(s.Topics, herald.TopicList{"Courts", "Policing"}) || s.Timezone != "Asia/Kolkata" {
		t.Fatalf("a refused save changed the reader: %v %q", s.Topics, s.Timezone)
	}
	err = chromedp.Do(ctx,
		chromedp.SetValue(chromedp.ID("timezone"), "America/New_York"),
		chromedp.Click(chromedp.CSS(`button[value="save"]`)),
		chromedp.WaitVisible(chromedp.CSS(`p.ok`)),
	)
	if err != nil {
		t.Fatal(err)
	}
	textOf(t, ctx, "p.ok", "Saved.")
	s = e.sub("chrome@example.org")
	if !slices.Equal(s.Topics, herald.TopicList{"Prisons", "Courts"}) || s.Timezone != "America/New_York" {
		t.Fatalf("saved topics %v, zone %q", s.Topics, s.Timezone)
	}
	browsertest.Axe(t, ctx, "the preferences page with topics and a time zone")
	browsertest.Screenshot(t, ctx, "preferences.png")

	// Pause for two weeks, then resume.
	err = chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS(`#pause button[value="2"]`)),
		chromedp.WaitVisible(chromedp.ID("resume")),
	)
	if err != nil {
		t.Fatal(err)
	}
	resumes := textOf(t, ctx, "#resumes", "(America/New_York)")
	s = e.sub("chrome@example.org")
	ny, _ := time.LoadLocation("America/New_York")
	if !s.Paused(time.Now()) || time.Until(*s.PausedUntil) < 13*24*time.Hour || !strings.Contains(resumes, s.PausedUntil.In(ny).Format("2 January 2006")) {
		t.Fatalf("paused until %v; the page says %q", s.PausedUntil, resumes)
	}
	textOf(t, ctx, "#paused", "not sent afterwards")
	browsertest.Axe(t, ctx, "the preferences page while paused")
	browsertest.Screenshot(t, ctx, "preferences-paused.png")
	err = chromedp.Do(ctx,
		chromedp.Click(chromedp.ID("resume")),
		chromedp.WaitVisible(chromedp.ID("pause")),
	)
	if err != nil {
		t.Fatal(err)
	}
	textOf(t, ctx, "p.ok", "Mail resumes now.")
	if s := e.sub("chrome@example.org"); s.Paused(time.Now()) {
		t.Fatalf("still paused until %v", s.PausedUntil)
	}
}
