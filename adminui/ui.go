// Package adminui is herald's admin web UI, served under /admin.
//
// The UI is a client of the admin API: to read or change anything it calls
// /api/v1/... with the admin token through the one API client (package
// api), whose transport runs the request through the API handler in this
// process, then renders what came back. So every rule of the API
// (validation, CSV import, runs) holds for the UI too, and the UI never
// touches a service or the store.
//
// Login is with the admin token; a session lives in memory (12h) behind an
// HttpOnly, SameSite=Strict cookie, and every form carries a CSRF token
// bound to the session.
package adminui

import (
	"crypto/rand"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/herald-dev/herald/api"
	"github.com/herald-dev/herald/handlers"
)

// Options configure the UI.
type Options struct {
	// API is the admin API (the handlers.Server); the UI calls it in-process.
	API http.Handler
	// Token is admin.token. Empty: the UI is disabled and every page answers
	// 403 saying how to enable it.
	Token string
	// SiteName is shown in the header.
	SiteName string
	// Secure sets the Secure flag on cookies (base_url is https).
	Secure bool
	Logger *slog.Logger
	Now    func() time.Time
	// ClientIP names the client of a request in the log. Optional: the
	// default is handlers.ClientIP, the client the server's middleware
	// worked out (server.trusted_proxies honoured), right when the UI is
	// mounted on a handlers.Server.
	ClientIP func(r *http.Request) netip.Addr
	// Visitor is who the login throttle counts a request against.
	// Optional: the default is handlers.Visitor (an IPv6 visitor is its
	// security.ipv6_prefix), the same as every other per-visitor limit.
	Visitor func(r *http.Request) netip.Prefix
	// Nonce returns the request's CSP nonce. Optional: the default is
	// handlers.Nonce, right when the UI is mounted on a handlers.Server.
	Nonce func(r *http.Request) string
	// Warnings are settings that would hurt in production (each naming
	// its key), shown as a banner on the dashboard.
	Warnings []string
	// Topics are the topics readers may choose (digest.topics), for the
	// dashboard's readers per topic and the subscriber forms.
	Topics []string
	// Location is digest.timezone: every time is shown in it (default UTC).
	Location *time.Location
	// BaseURL is server.base_url, for the form snippet to paste into the
	// blog; SiteURL is site.url, the blog (the one origin allowed to post
	// JSON).
	BaseURL string
	SiteURL string
}

// Session and throttle settings.
const (
	SessionTTL      = 12 * time.Hour
	sessionCookie   = "herald_admin"
	loginCookie     = "herald_admin_login"
	maxSessions     = 1000
	maxFormBytes    = 64 << 10
	maxAPIBodyBytes = 64 << 20
)

// UI is the admin web UI; it serves paths under /admin.
type UI struct {
	opt      Options
	log      *slog.Logger
	now      func() time.Time
	pages    *pageSet
	mux      *http.ServeMux
	key      []byte // HMAC key for CSRF tokens, fresh at every start
	sessions *sessions
	throttle *loginThrottle
	chart    chartCache
	// api is the admin API's client, answered by Options.API in-process.
	api *api.Client
}

// New builds the UI and parses its templates; a broken template fails here.
func New(opts Options) (*UI, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Nonce == nil {
		opts.Nonce = handlers.Nonce
	}
	if opts.ClientIP == nil {
		opts.ClientIP = handlers.ClientIP
	}
	if opts.Visitor == nil {
		opts.Visitor = handlers.Visitor
	}
	if opts.SiteName == "" {
		opts.SiteName = "herald"
	}
	if opts.Location == nil {
		opts.Location = time.UTC
	}
	opts.BaseURL = strings.TrimRight(opts.BaseURL, "/")
	if opts.API == nil && opts.Token != "" {
		return nil, fmt.Errorf("adminui: Options.API is required")
	}
	pages, err := loadPages(opts.Location)
	if err != nil {
		return nil, err
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("adminui: csrf key: %w", err)
	}
	u := &UI{
		opt:      opts,
		log:      opts.Logger,
		now:      opts.Now,
		pages:    pages,
		key:      key,
		sessions: newSessions(opts.Now, key),
		throttle: newLoginThrottle(opts.Now),
		api: &api.Client{
			BaseURL: "http://herald.internal", Token: opts.Token, UserAgent: "herald-adminui",
			HTTP: &http.Client{Transport: inProcess{opts.API}},
		},
	}
	u.routes()
	return u, nil
}

func (u *UI) routes() {
	m := http.NewServeMux()
	m.HandleFunc("GET /admin", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/admin/", http.StatusSeeOther)
	})
	m.HandleFunc("GET /admin/login", u.loginPage)
	m.HandleFunc("POST /admin/login", u.login)
	m.Handle("POST /admin/logout", u.post(u.logout))

	m.Handle("GET /admin/{$}", u.get(u.dashboard))
	m.Handle("GET /admin/subscribers", u.get(u.subscribersPage))
	m.Handle("POST /admin/subscribers", u.post(u.addSubscriber))
	m.Handle("POST /admin/subscribers/erase", u.post(u.eraseSubscriber))
	m.Handle("POST /admin/subscribers/import", u.authed(u.importCSV)) // multipart: checks CSRF itself
	m.Handle("GET /admin/subscribers.csv", u.get(u.exportCSV))
	m.Handle("GET /admin/subscribers/{email}", u.get(u.subscriberPage))
	m.Handle("POST /admin/subscribers/{email}", u.post(u.updateSubscriber))
	m.Handle("POST /admin/subscribers/{email}/resend", u.post(u.resendConfirmation))
	m.Handle("POST /admin/subscribers/{email}/reactivate", u.post(u.reactivate))
	m.Handle("POST /admin/subscribers/{email}/pause", u.post(u.pauseSubscriber))
	m.Handle("GET /admin/posts", u.get(u.postsPage))
	m.Handle("POST /admin/posts/{id}/send", u.post(u.sendPost))
	m.Handle("GET /admin/runs", u.get(u.runsPage))
	m.Handle("POST /admin/runs", u.post(u.startRun))
	m.Handle("GET /admin/runs/{id}", u.get(u.runPage)) // also {id}.json
	m.Handle("GET /admin/preview", u.get(u.previewPage))
	m.Handle("GET /admin/preview/frame", u.get(u.previewFrame))
	m.Handle("POST /admin/preview/test", u.post(u.sendTest))
	m.Handle("GET /admin/look", u.get(u.lookPage))
	m.Handle("GET /admin/look/frame", u.get(u.lookFrame))
	m.Handle("GET /admin/form", u.get(u.formPage))
	m.Handle("/admin/", u.authed(u.notFound))
	u.mux = m
}

// ServeHTTP serves every path under /admin.
func (u *UI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	nonce := u.opt.Nonce(r)
	h := w.Header()
	// The API's CSP is for pages with no frames and no fetch; the admin
	// pages poll run progress and frame the preview, both same-origin.
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'nonce-"+nonce+"'; script-src 'nonce-"+nonce+"'; img-src 'self' data:; connect-src 'self'; frame-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("Cache-Control", "no-store")
	if u.opt.Token == "" {
		u.render(w, r, http.StatusForbidden, "disabled", &view{Title: "Admin disabled"})
		return
	}
	u.mux.ServeHTTP(w, r)
}

// chartCache keeps the growth chart for a minute: it pages through every
// confirmed reader. Changes made through the UI drop it.
type chartCache struct {
	mu    sync.Mutex
	at    time.Time
	chart *chart
}

func (c *chartCache) get(now time.Time) *chart {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.chart != nil && now.Sub(c.at) < time.Minute && now.Sub(c.at) >= 0 {
		return c.chart
	}
	return nil
}

func (c *chartCache) put(now time.Time, ch *chart) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.at, c.chart = now, ch
}

func (c *chartCache) drop() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.chart = nil
}

// safeNext accepts only a path inside the admin UI as a place to go back to.
func safeNext(s string) string {
	if !strings.HasPrefix(s, "/admin/") || strings.HasPrefix(s, "/admin/login") || strings.Contains(s, "//") || strings.ContainsAny(s, "\\\r\n") {
		return "/admin/"
	}
	return s
}
