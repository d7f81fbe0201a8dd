package e2e

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/herald-dev/herald/internal/smtptest"
	"github.com/herald-dev/herald/internal/testmail"
)

// pictures serves a logo and a photo, as a blog's CDN would.
func pictures(t *testing.T) *httptest.Server {
	t.Helper()
	draw := func(w, h int, px func(x, y int) color.RGBA) []byte {
		img := image.NewRGBA(image.Rect(0, 0, w, h))
		for y := range h {
			for x := range w {
				img.SetRGBA(x, y, px(x, y))
			}
		}
		var b bytes.Buffer
		if err := png.Encode(&b, img); err != nil {
			t.Fatal(err)
		}
		return b.Bytes()
	}
	// The logo: a wordmark on a badge of the accent colour, readable in
	// light and dark mode alike.
	logo := []byte(`<svg xmlns="http://www.w3.org/2000/svg" width="200" height="48" viewBox="0 0 200 48">` +
		`<rect width="200" height="48" rx="10" fill="#0b6e4f"/>` +
		`<path d="M22 35 C 14 27, 16 15, 32 12 C 33 26, 29 32, 22 35 Z" fill="#cfe8d9"/><path d="M21 36 L 29 18" stroke="#0b6e4f" stroke-width="2"/>` +
		`<text x="44" y="31" font-family="Georgia, 'DejaVu Serif', serif" font-size="21" font-weight="bold" fill="#ffffff">Field Notes</text></svg>`)
	// The photo: a dusk sky over a field.
	photo := draw(1200, 700, func(x, y int) color.RGBA {
		if y > 470+x/40 {
			return color.RGBA{uint8(40 + y/20), uint8(90 + y/12), 50, 255}
		}
		return color.RGBA{uint8(250 - y/4), uint8(170 - y/5), uint8(90 + y/6), 255}
	})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "image/png")
		switch r.URL.Path {
		case "/logo.svg":
			w.Header().Set("Content-Type", "image/svg+xml")
			_, _ = w.Write(logo)
		case "/field.png":
			_, _ = w.Write(photo)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

// TestBrowserLookAndLanguage runs herald with a logo, an accent colour,
// a footer, Reply-To and an override template. In Chromium a German
// browser gets the German subscribe page, subscribes, confirms from the
// German email; a digest then reaches that reader in German and an
// English reader in English, branded, and renders in Chromium in light
// and dark mode with the dark palette.
func TestBrowserLookAndLanguage(t *testing.T) {
	ctx := browser(t)
	pics := pictures(t)
	sm := smtptest.Start(t)
	tdir := filepath.Join(t.TempDir(), "templates")
	if err := os.MkdirAll(filepath.Join(tdir, "email"), 0o755); err != nil {
		t.Fatal(err)
	}
	// The owner's own confirmation subject line.
	over := `{{define "subject"}}{{t "confirm_subject" "Site" .Site.Name}} ✉{{end}}{{define "preheader"}}{{t "confirm_preheader" "Site" .Site.Name}}{{end}}{{t "confirm_subject" "Site" .Site.Name}}

{{.ConfirmURL}}
`
	if err := os.WriteFile(filepath.Join(tdir, "email", "confirm.txt"), []byte(over), 0o644); err != nil {
		t.Fatal(err)
	}
	in := newInstance(t, fmt.Sprintf(`
[server]
listen = "{{LISTEN}}"
base_url = "{{BASE}}"
[store]
path = "{{DIR}}/herald.db"
[site]
name = "Field Notes"
url = "https://blog.example.org"
logo_url = "%s/logo.svg"
accent_color = "#0b6e4f"
footer = """Field Notes Ltd
1 Mill Street, Leeds LS1 1AA"""
[digest]
templates_dir = %q
[mail]
from = "Field Notes <digest@example.org>"
reply_to = "Ada Gardener <ada@example.org>"
transport = "smtp"
welcome = false
[smtp]
host = "127.0.0.1"
port = %d
tls = "none"
connections = 2
timeout = "5s"
[admin]
token = %q
`, pics.URL, tdir, sm.Port(), adminToken))
	p := in.start()
	defer p.stop()

	if _, err := chromedp.Call(ctx, network.SetExtraHTTPHeaders, network.SetExtraHTTPHeadersParams{Headers: network.Headers{"Accept-Language": "de-DE,de;q=0.9,en;q=0.6"}}); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(ctx, chromedp.Navigate(in.base+"/"), chromedp.WaitVisible(chromedp.ID("email"))); err != nil {
		t.Fatal(err)
	}
	h1, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("h1")))
	if err != nil || h1 != "Jeden Beitrag per E-Mail" {
		t.Fatalf("German subscribe page: %q %v", h1, err)
	}
	logoLoaded, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.querySelector(".brand img").naturalWidth === 200`))
	if err != nil || !logoLoaded {
		t.Fatalf("the logo did not load on the page: %v", err)
	}
	screenshot(t, ctx, "subscribe-de.png")
	if err := chromedp.Do(ctx,
		chromedp.SendKeys(chromedp.ID("email"), "leser@example.org"),
		chromedp.Click(chromedp.CSS(`input[value="weekly"]`)),
		chromedp.Click(chromedp.CSS(`button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.CSS(`form[action="/subscribe/resend"]`)),
	); err != nil {
		t.Fatal(err)
	}
	confirm := testmail.MustParse(t, sm.WaitFor(t, 1, 20*time.Second)[0].Data)
	if confirm.Subject != "Bitte bestätigen Sie Ihr Abonnement von Field Notes ✉" || !strings.Contains(confirm.HTML, "Abonnement bestätigen") ||
		!strings.Contains(confirm.HTML, pics.URL+"/logo.svg") || !strings.Contains(confirm.HTML, "1 Mill Street, Leeds") ||
		!strings.Contains(confirm.Header.Get("Reply-To"), "ada@example.org") {
		t.Fatalf("confirmation: %q %q\n%s", confirm.Subject, confirm.Header.Get("Reply-To"), confirm.Text)
	}
	if err := chromedp.Do(ctx, chromedp.Navigate(confirm.Link("/confirm?token=")), chromedp.WaitVisible(chromedp.CSS(".icon"))); err != nil {
		t.Fatal(err)
	}
	if h1, _ := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("h1"))); h1 != "Sie sind dabei" {
		t.Fatalf("confirmed page: %q", h1)
	}
	if r := in.api("POST", "/api/v1/subscribers", `{"email":"reader@example.org","frequency":"weekly","language":"en","confirmed":true}`); r.Status != 201 {
		t.Fatalf("add reader: %d %s", r.Status, r.Body)
	}
	for i, post := range []struct{ title, body string }{
		{"A bench from an old door", `<p>An oak door, a saw and a free weekend: the bench that came of it, and what I would do differently.</p>`},
		{"The field at dusk", `<p><img src="` + pics.URL + `/field.png" width="1200" height="700" alt="The field at dusk"></p><p>Ten minutes after sunset the field turns gold, then grey. This is the week to see it.</p><p>The post <a href="https://blog.example.org/dusk">The field at dusk</a> appeared first on <a href="https://blog.example.org">Field Notes</a>.</p>`},
	} {
		body := fmt.Sprintf(`{"guid":"p%d","url":"https://blog.example.org/p%d/","title":%q,"author":"Ada Gardener","content":%q,"published_at":"2026-03-0%dT08:00:00Z"}`, i, i, post.title, post.body, i+1)
		if r := in.api("POST", "/api/v1/posts", body); r.Status != 201 {
			t.Fatalf("add post: %d %s", r.Status, r.Body)
		}
	}
	in.startRun("weekly")
	msgs := sm.WaitFor(t, 3, 30*time.Second)
	var en, de *testmail.Parsed
	for _, m := range msgs[1:] {
		p := testmail.MustParse(t, m.Data)
		switch m.To[0] {
		case "reader@example.org":
			en = p
		case "leser@example.org":
			de = p
		}
	}
	if en == nil || de == nil {
		t.Fatalf("digests: en %v de %v", en != nil, de != nil)
	}
	if de.Subject != "Field Notes: 2 neue Beiträge" || !strings.Contains(de.HTML, "1. März 2026") || !strings.Contains(de.Text, "Abmelden") {
		t.Fatalf("German digest: %q\n%s", de.Subject, de.Text)
	}
	if en.Subject != "Field Notes: 2 new posts" || strings.Contains(en.HTML, "appeared first on") || !strings.Contains(en.HTML, `width="544"`) ||
		!strings.Contains(en.HTML, pics.URL+"/field.png") || !strings.Contains(en.HTML, "1 Mill Street, Leeds") {
		t.Fatalf("English digest: %q\n%s", en.Subject, en.HTML)
	}
	file := filepath.Join(t.TempDir(), "digest.html")
	if err := os.WriteFile(file, []byte(en.HTML), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(720, 900), chromedp.Navigate((&url.URL{Scheme: "file", Path: file}).String()), chromedp.WaitVisible(chromedp.CSS(".card"))); err != nil {
		t.Fatal(err)
	}
	colors := func() string {
		s, err := chromedp.Run(ctx, chromedp.Evaluate[string](`[".card", ".post", ".read", ".foot"].map(s => { const c = getComputedStyle(document.querySelector(s)); return s + " " + c.backgroundColor + " " + c.color }).join("; ")`))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	light := colors()
	if !strings.Contains(light, ".card rgb(255, 255, 255)") || !strings.Contains(light, ".read rgba(0, 0, 0, 0) rgb(11, 110, 79)") {
		t.Errorf("light palette: %s", light)
	}
	photo, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelector('img[src$="field.png"]').getBoundingClientRect().width`))
	if err != nil || photo > 544 || photo < 400 {
		t.Errorf("the photo is %dpx wide in a 720px window (%v)", photo, err)
	}
	screenshot(t, ctx, "digest-branded.png")
	if _, err := chromedp.Call(ctx, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: "dark"}}}); err != nil {
		t.Fatal(err)
	}
	dark := colors()
	// The dark palette of #0b6e4f: the card #1f2023, text #ececec, the
	// accent lightened to read on the card.
	if !strings.Contains(dark, ".card rgb(31, 32, 35)") || !strings.Contains(dark, ".post rgba(0, 0, 0, 0) rgb(236, 236, 236)") || strings.Contains(dark, "rgb(11, 110, 79)") {
		t.Errorf("dark palette: %s", dark)
	}
	screenshot(t, ctx, "digest-branded-dark.png")
}
