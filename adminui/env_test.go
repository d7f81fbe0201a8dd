package adminui

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/herald-dev/herald"
	"github.com/herald-dev/herald/digest"
	"github.com/herald-dev/herald/internal/smtptest"
	"github.com/herald-dev/herald/internal/testenv"
	"github.com/herald-dev/herald/store"
	"github.com/herald-dev/herald/subscription"
	"github.com/herald-dev/herald/templates"
)

const testToken = "admin-token-for-tests-0123456789"

// clock is a settable clock for the UI (sessions, login throttle).
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// env is a whole herald (internal/testenv) with the admin UI mounted at
// /admin.
type env struct {
	t     *testing.T
	db    *store.DB
	smtp  *smtptest.Server
	srv   *httptest.Server
	ui    *UI
	clock *clock
	app   *testenv.App
}

type envOpts struct {
	token   string
	noToken bool
	secure  bool
	// trustedProxies is server.trusted_proxies.
	trustedProxies []netip.Prefix
	// budget is security.confirmations_per_hour (0: none); challenge is
	// security.challenge (empty: auto), solved at difficulty bits.
	budget     int
	challenge  string
	difficulty int
	// location is digest.timezone, for the UI and the schedules; daily is
	// digest.daily.
	location      *time.Location
	daily, weekly string
	// relays: mail goes over a relay set of this many more relays.
	relays int
	// templates: the look, languages and override directory.
	templates templates.Options
	// replyTo is mail.reply_to.
	replyTo string
	// topics are digest.topics; digest changes the digest's options.
	topics []string
	digest func(*digest.Options)
}

func newEnv(t *testing.T, o envOpts) *env {
	t.Helper()
	if o.token == "" && !o.noToken {
		o.token = testToken
	}
	clk := &clock{t: time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)}
	var ui *UI
	app := testenv.New(t, testenv.Options{
		AdminToken: o.token, TrustedProxies: o.trustedProxies, Relays: o.relays, Topics: o.topics, ChallengeDifficulty: o.difficulty,
		Subscription: func(so *subscription.Options) {
			so.PerAddressN, so.PerAddressWindow, so.Welcome = 1000, time.Hour, false
			so.GlobalPerHour = o.budget
			if o.challenge != "" {
				so.Challenge = o.challenge
			}
		},
		Digest: func(do *digest.Options) {
			do.MaxPosts, do.ReplyTo = 20, o.replyTo
			do.Location, do.Daily, do.Weekly = o.location, o.daily, o.weekly
			if o.digest != nil {
				o.digest(do)
			}
		},
		Templates: o.templates,
		Admin: func(api http.Handler) (http.Handler, error) {
			var err error
			ui, err = New(Options{API: api, Token: o.token, SiteName: "Test Blog", Secure: o.secure, Now: clk.Now,
				Location: o.location, SiteURL: "https://blog.example.org", Topics: o.topics})
			return ui, err
		},
	})
	return &env{t: t, db: app.DB, smtp: app.SMTP, srv: app.Server, ui: ui, clock: clk, app: app}
}

// browser is an HTTP client with its own cookies that does not follow
// redirects.
type browser struct {
	e    *env
	c    *http.Client
	csrf string // the last CSRF token seen on a page
	// forwardedFor, if set, is sent as X-Forwarded-For (a browser behind
	// a reverse proxy).
	forwardedFor string
}

func (e *env) browser() *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{e: e, c: &http.Client{
		Jar:           jar,
		Timeout:       20 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

type resp struct {
	status int
	header http.Header
	body   string
}

func (r resp) location() string { return r.header.Get("Location") }

var csrfRe = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func (b *browser) do(req *http.Request) resp {
	b.e.t.Helper()
	if b.forwardedFor != "" {
		req.Header.Set("X-Forwarded-For", b.forwardedFor)
	}
	res, err := b.c.Do(req)
	if err != nil {
		b.e.t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	if m := csrfRe.FindSubmatch(body); m != nil {
		b.csrf = string(m[1])
	}
	return resp{res.StatusCode, res.Header, string(body)}
}

func (b *browser) get(path string) resp {
	b.e.t.Helper()
	req, err := http.NewRequest(http.MethodGet, b.e.srv.URL+path, nil)
	if err != nil {
		b.e.t.Fatal(err)
	}
	return b.do(req)
}

func (b *browser) post(path string, vals url.Values) resp {
	b.e.t.Helper()
	req, err := http.NewRequest(http.MethodPost, b.e.srv.URL+path, strings.NewReader(vals.Encode()))
	if err != nil {
		b.e.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return b.do(req)
}

// form posts vals with the last CSRF token seen.
func (b *browser) form(path string, vals url.Values) resp {
	b.e.t.Helper()
	if vals == nil {
		vals = url.Values{}
	}
	vals.Set("csrf", b.csrf)
	return b.post(path, vals)
}

type part struct {
	name, filename, body string
}

func (b *browser) multipart(path string, parts ...part) resp {
	b.e.t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for _, p := range parts {
		var w io.Writer
		var err error
		if p.filename != "" {
			w, err = mw.CreateFormFile(p.name, p.filename)
		} else {
			w, err = mw.CreateFormField(p.name)
		}
		if err != nil {
			b.e.t.Fatal(err)
		}
		io.WriteString(w, p.body)
	}
	mw.Close()
	req, err := http.NewRequest(http.MethodPost, b.e.srv.URL+path, &buf)
	if err != nil {
		b.e.t.Fatal(err)
	}
	req.Header.Set("Content-Type", mw.FormDataContentType())
	return b.do(req)
}

// login logs in with the admin token and fails the test otherwise.
func (b *browser) login() {
	b.e.t.Helper()
	r := b.get("/admin/login")
	if r.status != http.StatusOK {
		b.e.t.Fatalf("GET /admin/login: %d", r.status)
	}
	r = b.form("/admin/login", url.Values{"token": {b.e.ui.opt.Token}})
	if r.status != http.StatusSeeOther || r.location() != "/admin/" {
		b.e.t.Fatalf("login: %d %q\n%s", r.status, r.location(), r.body)
	}
	if r := b.get("/admin/"); r.status != http.StatusOK {
		b.e.t.Fatalf("dashboard after login: %d\n%s", r.status, r.body)
	}
}

func (b *browser) cookie(name string) *http.Cookie {
	u, _ := url.Parse(b.e.srv.URL + "/admin/")
	for _, c := range b.c.Jar.Cookies(u) {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// addSubscriber puts a reader in the store through the API.
func (e *env) api(method, path, body string) resp {
	e.t.Helper()
	req, err := http.NewRequest(method, e.srv.URL+path, strings.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+testToken)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return resp{res.StatusCode, res.Header, string(b)}
}

func (e *env) addConfirmed(email, name, freq string) {
	e.t.Helper()
	r := e.api(http.MethodPost, "/api/v1/subscribers", fmt.Sprintf(`{"email":%q,"name":%q,"frequency":%q,"confirmed":true}`, email, name, freq))
	if r.status != http.StatusCreated {
		e.t.Fatalf("add %s: %d %s", email, r.status, r.body)
	}
}

// addPosts stores n new posts, as if a feed poll found them.
func (e *env) addPosts(n int) {
	e.t.Helper()
	for i := range n {
		p := &herald.Post{
			GUID: fmt.Sprintf("post-%d-%d", time.Now().UnixNano(), i), URL: fmt.Sprintf("https://blog.example.org/%d-%d", time.Now().UnixNano(), i),
			Title: fmt.Sprintf("Post number %d", i+1), Author: "Ada", Summary: "<p>A summary.</p>", Content: "<p>Body</p>",
			PublishedAt: time.Now().UTC(), FoundAt: time.Now().UTC(), Feed: "https://blog.example.org/feed/",
		}
		if _, err := e.db.UpsertPost(context.Background(), p); err != nil {
			e.t.Fatal(err)
		}
	}
}
