// Package handlers is herald's HTTP layer: routes (gorilla/mux), decoding,
// calling a service, encoding, and the middleware around them. It knows no
// bbolt and no SMTP; it reaches the services through interfaces it declares.
package handlers

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/gorilla/mux"

	"github.com/herald-dev/herald"
	"github.com/herald-dev/herald/api"
	"github.com/herald-dev/herald/locale"
	"github.com/herald-dev/herald/templates"
)

// Rate is N requests per Period; N = 0 means unlimited.
type Rate struct {
	N      int
	Period time.Duration
}

// Options configure the HTTP layer.
type Options struct {
	SiteName       string
	SiteURL        string
	BaseURL        string
	AdminToken     string // "" = admin API disabled (403)
	TrustedProxies []netip.Prefix
	// IPv6Prefix is security.ipv6_prefix: how many leading bits of an
	// IPv6 address make one visitor (default 64; see VisitorOf).
	IPv6Prefix int
	// SubscribePerIP limits sign-ups and resends per visitor.
	SubscribePerIP   Rate
	DefaultFrequency herald.Frequency
	// Topics are the topics readers may choose (digest.topics), for the
	// forms; the services check what readers choose.
	Topics []string
	// Timezone is the site's (digest.timezone): readers who choose none
	// are in it. LocalTime: the schedules run in each reader's zone.
	Timezone  string
	LocalTime bool
	Logger    *slog.Logger
	Now       func() time.Time
}

// Deps are the services behind the routes. Archive and Observe may be
// nil; the rest are required.
type Deps struct {
	Subscriptions herald.SubscriptionService
	Imports       herald.ImportService
	Digests       herald.DigestService
	Posts         herald.PostService
	Stats         herald.StatsService
	Backup        herald.Backupper
	Templates     *templates.Set
	// Health answers nil when the database answers.
	Health func(ctx context.Context) error
	// Metrics serves /metrics (Prometheus text format) behind the admin token.
	Metrics http.Handler
	// Archive backs the public archive of past digests at /archive,
	// /archive/{id} and /archive.xml; nil: archive.enabled is off, and
	// those routes do not exist (404).
	Archive herald.ArchiveService
	// Observe is called once per request with the route's path template
	// and the status, for metrics.
	Observe func(route string, status int, d time.Duration)
	// Push takes WebSub hubs' callbacks at /websub/{feed}.
	Push herald.PushService
	// Webhooks takes the email providers' bounce and complaint events at
	// /webhooks/{provider}.
	Webhooks herald.WebhookService
	// Look is the blog's look as configured, for GET /api/v1/look; nil:
	// what the templates know (name, colours, languages).
	Look *api.Look
	// Challenges is the sign-up challenge (security.challenge); nil:
	// never asked.
	Challenges herald.ChallengeService
}

// check says which required dependency is missing.
func (d Deps) check() error {
	for name, missing := range map[string]bool{
		"Subscriptions": d.Subscriptions == nil, "Imports": d.Imports == nil, "Digests": d.Digests == nil,
		"Posts": d.Posts == nil, "Stats": d.Stats == nil, "Backup": d.Backup == nil, "Push": d.Push == nil, "Webhooks": d.Webhooks == nil,
		"Templates": d.Templates == nil, "Health": d.Health == nil, "Metrics": d.Metrics == nil,
	} {
		if missing {
			return fmt.Errorf("handlers: Deps.%s is required", name)
		}
	}
	return nil
}

// Server is the http.Handler for every route.
type Server struct {
	opt    Options
	deps   Deps
	router *mux.Router
	log    *slog.Logger
	ipLim  *limiter
	imgSrc string // the CSP's img-src
}

// MaxBody is the largest request body accepted on public and API routes
// (except CSV import, which streams).
const MaxBody = 64 << 10

// New builds the routes.
func New(opt Options, deps Deps) (*Server, error) {
	if err := deps.check(); err != nil {
		return nil, err
	}
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if !opt.DefaultFrequency.Valid() {
		opt.DefaultFrequency = herald.Daily
	}
	if opt.IPv6Prefix <= 0 || opt.IPv6Prefix > 128 {
		opt.IPv6Prefix = DefaultIPv6Prefix
	}
	opt.BaseURL = strings.TrimRight(opt.BaseURL, "/")
	s := &Server{opt: opt, deps: deps, log: opt.Logger, ipLim: newLimiter(opt.SubscribePerIP, opt.Now), imgSrc: "'self' data:"}
	if u, err := url.Parse(deps.Templates.Site().LogoURL); err == nil && u.Host != "" && (u.Scheme == "https" || u.Scheme == "http") {
		s.imgSrc += " " + u.Scheme + "://" + u.Host
	}
	r := mux.NewRouter()
	r.NotFoundHandler = http.HandlerFunc(s.notFound)
	r.MethodNotAllowedHandler = http.HandlerFunc(s.methodNotAllowed)

	r.HandleFunc("/", s.subscribePage).Methods(http.MethodGet, http.MethodHead)
	r.HandleFunc("/subscribe", s.subscribePage).Methods(http.MethodGet, http.MethodHead)
	r.HandleFunc("/subscribe", s.subscribe).Methods(http.MethodPost)
	r.HandleFunc("/subscribe", s.preflight).Methods(http.MethodOptions)
	r.HandleFunc("/subscribe/challenge.js", s.challengeScript).Methods(http.MethodGet, http.MethodHead)
	r.HandleFunc("/subscribe/check-email", s.checkEmail).Methods(http.MethodGet, http.MethodHead)
	r.HandleFunc("/subscribe/resend", s.resend).Methods(http.MethodPost)
	r.HandleFunc("/confirm", s.confirmPage).Methods(http.MethodGet, http.MethodHead)
	r.HandleFunc("/confirm", s.confirm).Methods(http.MethodPost)
	r.HandleFunc("/subscribed", s.subscribedPage).Methods(http.MethodGet, http.MethodHead)
	r.HandleFunc("/unsubscribe", s.unsubscribePage).Methods(http.MethodGet, http.MethodHead)
	r.HandleFunc("/unsubscribe", s.unsubscribe).Methods(http.MethodPost)
	r.HandleFunc("/preferences", s.preferencesPage).Methods(http.MethodGet, http.MethodHead)
	r.HandleFunc("/preferences", s.preferences).Methods(http.MethodPost)
	r.HandleFunc("/preferences/link", s.linkPage).Methods(http.MethodGet, http.MethodHead)
	r.HandleFunc("/preferences/link", s.link).Methods(http.MethodPost)
	r.HandleFunc("/healthz", s.healthz).Methods(http.MethodGet, http.MethodHead)

	v1 := r.PathPrefix("/api/v1").Subrouter()
	v1.Use(s.requireAdmin)
	v1.HandleFunc("/subscribers", s.apiListSubscribers).Methods(http.MethodGet)
	v1.HandleFunc("/subscribers", s.apiCreateSubscriber).Methods(http.MethodPost)
	v1.HandleFunc("/subscribers/{email}", s.apiGetSubscriber).Methods(http.MethodGet)
	v1.HandleFunc("/subscribers/{email}", s.apiDeleteSubscriber).Methods(http.MethodDelete)
	v1.HandleFunc("/subscribers/{email}", s.apiUpdateSubscriber).Methods(http.MethodPatch)
	v1.HandleFunc("/subscribers/{email}/resend", s.apiResendConfirmation).Methods(http.MethodPost)
	s.registerCSV(v1)
	s.registerOps(r, v1)
	s.registerDigest(v1)
	s.registerBounces(v1)
	s.registerWebhooks(r)
	s.registerArchive(r)
	s.registerData(r)
	s.registerPprof(r)
	s.registerFeeds(r, v1)
	s.router = r
	return s, nil
}

// Router exposes the router so later features can add routes.
func (s *Server) Router() *mux.Router { return s.router }

// MountAdmin serves the admin web UI under /admin. It is set after New
// because the UI is itself a client of this server's API.
func (s *Server) MountAdmin(h http.Handler) {
	s.router.PathPrefix("/admin").Handler(h)
}

// ServeHTTP wraps every request in the common middleware.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
	nonce := newNonce()
	setSecurityHeaders(rec.Header(), nonce, s.imgSrc)
	ctx := context.WithValue(r.Context(), nonceKey{}, nonce)
	client := s.clientIP(r)
	ctx = context.WithValue(ctx, clientIPKey{}, client)
	r = r.WithContext(context.WithValue(ctx, visitorKey{}, VisitorOf(client, s.opt.IPv6Prefix)))
	r, route := withRouteBox(r)
	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				panic(v)
			}
			s.log.Error("handlers: panic", "method", r.Method, "path", r.URL.Path, "panic", fmt.Sprint(v))
			if !rec.wrote {
				s.error(rec, r, errors.New("panic"))
			}
		}
		s.observe(route, rec.status, time.Since(start))
		s.log.Info("http", "method", r.Method, "path", r.URL.Path, "status", rec.status,
			"bytes", rec.bytes, "dur", time.Since(start).Round(time.Microsecond), "ip", ClientIP(r).String())
	}()
	s.router.ServeHTTP(rec, r)
}

type nonceKey struct{}

func newNonce() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:]) // no characters html/template would escape
}

func nonceFrom(r *http.Request) string {
	n, _ := r.Context().Value(nonceKey{}).(string)
	return n
}

// Nonce is the CSP nonce of this request, for handlers mounted under the
// middleware (the admin UI) to put on their inline <style> and <script>.
func Nonce(r *http.Request) string { return nonceFrom(r) }

type clientIPKey struct{}

// ClientIP is the client of this request as the middleware worked it out
// (server.trusted_proxies honoured), for handlers mounted under it (the
// admin UI's login throttle). Outside the middleware it is the peer.
func ClientIP(r *http.Request) netip.Addr {
	if a, ok := r.Context().Value(clientIPKey{}).(netip.Addr); ok {
		return a
	}
	return peerAddr(r)
}

// setSecurityHeaders: pages carry their CSS and the confirm script inline,
// allowed by a per-request nonce and nothing else.
// imgSrc is the CSP's img-src: this server, data: URLs, and the logo's
// origin when site.logo_url is elsewhere.
func setSecurityHeaders(h http.Header, nonce, imgSrc string) {
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'nonce-"+nonce+"'; script-src 'nonce-"+nonce+"'; img-src "+imgSrc+"; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
}

type statusRecorder struct {
	http.ResponseWriter
	status int
	bytes  int
	wrote  bool
}

func (w *statusRecorder) WriteHeader(code int) {
	if !w.wrote {
		w.status = code
		w.wrote = true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusRecorder) Write(b []byte) (int, error) {
	w.wrote = true
	n, err := w.ResponseWriter.Write(b)
	w.bytes += n
	return n, err
}

func (w *statusRecorder) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (w *statusRecorder) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// clientIP is the peer address, or the right-most untrusted address of
// X-Forwarded-For when the peer is a trusted proxy.
func (s *Server) clientIP(r *http.Request) netip.Addr {
	peer := peerAddr(r)
	if !s.trusted(peer) {
		return peer
	}
	xff := r.Header.Values("X-Forwarded-For")
	parts := strings.Split(strings.Join(xff, ","), ",")
	for i := len(parts) - 1; i >= 0; i-- {
		a, err := netip.ParseAddr(strings.TrimSpace(parts[i]))
		if err != nil {
			return peer // a malformed hop: trust nothing beyond it
		}
		a = a.Unmap()
		if !s.trusted(a) {
			return a
		}
		peer = a
	}
	return peer
}

// peerAddr is the address of the connection's other end.
func peerAddr(r *http.Request) netip.Addr {
	if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
		return ap.Addr().Unmap()
	} else if a, err := netip.ParseAddr(r.RemoteAddr); err == nil {
		return a.Unmap()
	}
	return netip.Addr{}
}

func (s *Server) trusted(a netip.Addr) bool {
	if !a.IsValid() {
		return false
	}
	for _, p := range s.opt.TrustedProxies {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// statusFor maps herald's error codes to HTTP statuses: the one place
// that decides.
func statusFor(code string) int {
	switch code {
	case herald.EINVALID:
		return http.StatusUnprocessableEntity
	case herald.EMALFORMED:
		return http.StatusBadRequest
	case herald.ENOTFOUND:
		return http.StatusNotFound
	case herald.ECONFLICT:
		return http.StatusConflict
	case herald.EUNAUTHORIZED:
		return http.StatusUnauthorized
	case herald.EFORBIDDEN:
		return http.StatusForbidden
	case herald.ERATELIMIT:
		return http.StatusTooManyRequests
	case herald.ETOOLARGE:
		return http.StatusRequestEntityTooLarge
	case herald.EUNAVAILABLE:
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

func (s *Server) logIfInternal(r *http.Request, err error) {
	if herald.ErrorCode(err) == herald.EINTERNAL {
		s.log.Error("handlers: internal error", "method", r.Method, "path", r.URL.Path, "err", err)
	}
}

func setRetryAfter(w http.ResponseWriter, err error) {
	var he *herald.Error
	if errors.As(err, &he) && he.Code == herald.ERATELIMIT {
		secs := int(he.RetryAfter.Round(time.Second) / time.Second)
		if secs < 1 {
			secs = 1
		}
		w.Header().Set("Retry-After", strconv.Itoa(secs))
	}
}

// jsonError writes {"error": ..., "field": ...} with the mapped status.
func (s *Server) jsonError(w http.ResponseWriter, r *http.Request, err error) {
	s.logIfInternal(r, err)
	setRetryAfter(w, err)
	writeJSON(w, statusFor(herald.ErrorCode(err)), api.ErrorBody{Error: herald.ErrorMessage(err), Field: herald.ErrorField(err)})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(true)
	_ = enc.Encode(v)
}

// wantsJSON: JSON in, or JSON asked for.
func wantsJSON(r *http.Request) bool {
	ct := strings.ToLower(r.Header.Get("Content-Type"))
	return strings.HasPrefix(ct, "application/json") || strings.Contains(strings.ToLower(r.Header.Get("Accept")), "application/json")
}

func (s *Server) notFound(w http.ResponseWriter, r *http.Request) {
	// gorilla/mux reports a method mismatch inside a subrouter as not
	// found; tell them apart here.
	if len(s.allowedMethods(r)) > 0 {
		s.methodNotAllowed(w, r)
		return
	}
	if strings.HasPrefix(r.URL.Path, "/api/") {
		writeJSON(w, http.StatusNotFound, api.ErrorBody{Error: "no such API route: " + r.URL.Path})
		return
	}
	if wantsJSON(r) {
		writeJSON(w, http.StatusNotFound, api.ErrorBody{Error: "no such page"})
		return
	}
	links := []pageLink{{"/", "link_subscribe_by_email"}}
	if s.opt.SiteURL != "" {
		links = append(links, pageLink{s.opt.SiteURL, "link_go_to_site"})
	}
	s.page(w, r, http.StatusNotFound, "error", map[string]any{"Title": "Not found", "Heading": "err_page_not_found", "Error": "err_nothing_here", "Links": links})
}

// allowedMethods works out which methods the path answers to; gorilla/mux
// does not say.
func (s *Server) allowedMethods(r *http.Request) []string {
	var allowed []string
	for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete} {
		if m == r.Method {
			continue
		}
		probe := r.Clone(r.Context())
		probe.Method = m
		var match mux.RouteMatch
		if s.router.Match(probe, &match) && match.MatchErr == nil && match.Route != nil {
			allowed = append(allowed, m)
		}
	}
	return allowed
}

func (s *Server) methodNotAllowed(w http.ResponseWriter, r *http.Request) {
	if allowed := s.allowedMethods(r); len(allowed) > 0 {
		w.Header().Set("Allow", strings.Join(allowed, ", "))
	}
	msg := fmt.Sprintf("method %s is not allowed here", r.Method)
	if strings.HasPrefix(r.URL.Path, "/api/") || wantsJSON(r) {
		writeJSON(w, http.StatusMethodNotAllowed, api.ErrorBody{Error: msg})
		return
	}
	s.page(w, r, http.StatusMethodNotAllowed, "error", map[string]any{"Title": "Not allowed", "Heading": "This page can't do that", "Error": msg})
}

// error answers a page request with the error page, headed by what kind
// of trouble it is.
func (s *Server) error(w http.ResponseWriter, r *http.Request, err error) {
	s.logIfInternal(r, err)
	setRetryAfter(w, err)
	status := statusFor(herald.ErrorCode(err))
	title, heading := "Error", "Something is not right"
	switch status {
	case http.StatusTooManyRequests:
		title, heading = "Too many requests", "Slow down a little"
	case http.StatusUnprocessableEntity:
		title, heading = "Check what you entered", "Check what you entered"
	case http.StatusRequestEntityTooLarge:
		title, heading = "Too large", "That was too much at once"
	case http.StatusServiceUnavailable:
		title, heading = "Unavailable", "Not available right now"
	case http.StatusInternalServerError:
		title, heading = "Error", "Something went wrong on our side"
	}
	data := map[string]any{"Title": title, "Heading": heading, "Error": herald.ErrorMessage(err)}
	var he *herald.Error
	if errors.As(err, &he) && he.RetryAfter > 0 {
		data["Wait"] = he.RetryAfter
	}
	s.page(w, r, status, "error", data)
}

// waitText says how long to wait in words, in l: "a minute", "5 minutes".
func waitText(l *locale.Lang, d time.Duration) string {
	switch m := int((d + time.Minute - 1) / time.Minute); {
	case d < time.Minute:
		return l.T("wait_seconds")
	case m == 1:
		return l.T("wait_minute")
	case m < 120:
		return l.N("duration_minutes", m)
	default:
		return l.N("duration_hours", (m+59)/60)
	}
}

// page renders a page with the layout's fields filled in, in the
// visitor's language (see lang).
func (s *Server) page(w http.ResponseWriter, r *http.Request, status int, name string, data map[string]any) {
	if data == nil {
		data = map[string]any{}
	}
	code := s.lang(r, data)
	l := s.deps.Templates.Lang(code)
	// Messages from the services are English sentences; the message
	// files translate the ones a reader can meet.
	for _, k := range []string{"Error", "Heading", "Done"} {
		if msg, ok := data[k].(string); ok && msg != "" {
			var known bool
			if data[k], known = readerMessage(l, msg); !known && code != "en" {
				// The English ids read well to English readers; others
				// get English: the operator learns what to translate.
				s.log.Warn("handlers: a reader's message has no translation", "lang", code, "message", msg)
			}
		}
	}
	if d, ok := data["Wait"].(time.Duration); ok {
		data["Wait"] = waitText(l, d)
	}
	if links, ok := data["Links"].([]pageLink); ok {
		out := make([]pageLink, len(links))
		for i, pl := range links {
			out[i] = pageLink{URL: pl.URL, Label: l.T(pl.Label, "Site", s.opt.SiteName)}
		}
		data["Links"] = out
	}
	data["Nonce"] = nonceFrom(r)
	data["Lang"] = code
	data["Languages"] = s.languageLinks(r, code)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Language", code)
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Add("Vary", "Accept-Language")
	var buf strings.Builder
	if err := s.deps.Templates.Page(&buf, code, name, data); err != nil {
		s.log.Error("handlers: render", "page", name, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		_, _ = w.Write([]byte(buf.String()))
	}
}

// readerPatterns are the service messages with a value in them that a
// reader's form can meet, and their message ids (the value is .Value, a
// second one .List).
var readerPatterns = []struct {
	re *regexp.Regexp
	id string
}{
	{regexp.MustCompile(`^"(.*)" is not a valid email address$`), "err_email_invalid"},
	{regexp.MustCompile(`^email address is longer than (\d+) characters$`), "err_email_long"},
	{regexp.MustCompile(`^name is longer than (\d+) characters$`), "err_name_long"},
	{regexp.MustCompile(`^unknown time zone "(.*)": want an IANA name`), "err_timezone_unknown"},
	{regexp.MustCompile(`^unknown topic "(.*)" \(this site offers: (.*)\)$`), "err_topic_unknown"},
}

// readerMessage translates a service's message for a reader: the message
// files hold the sentences a reader can meet, keyed by their English.
// ok is false when the language has no text of its own for it (the
// reader then reads the English).
func readerMessage(l *locale.Lang, msg string) (out string, ok bool) {
	for _, p := range readerPatterns {
		if m := p.re.FindStringSubmatch(msg); m != nil {
			list := ""
			if len(m) > 2 {
				list = m[2]
			}
			return l.T(p.id, "Address", m[1], "Value", m[1], "List", list), l.Has(p.id)
		}
	}
	return l.T(msg), l.Has(msg)
}

// lang is the language of a page: ?lang= (a language link, a form's
// action), then the reader's own (data["Lang"], for pages about a known
// reader), then the form's hidden lang field, then the browser's
// Accept-Language; else the site's.
func (s *Server) lang(r *http.Request, data map[string]any) string {
	cat := s.deps.Templates.Catalog()
	if q := r.URL.Query().Get("lang"); q != "" {
		if code, err := cat.Parse(q); err == nil {
			return code
		}
	}
	if code, _ := data["Lang"].(string); code != "" && cat.Has(code) {
		return code
	}
	if r.PostForm != nil {
		if code, err := cat.Parse(r.PostForm.Get("lang")); err == nil && code != "" {
			return code
		}
	}
	return cat.Match("", r.Header.Get("Accept-Language"))
}

// languageLinks is the page's language menu: this page with ?lang= each.
func (s *Server) languageLinks(r *http.Request, current string) []templates.LangLink {
	cat := s.deps.Templates.Catalog()
	var out []templates.LangLink
	for _, code := range cat.Codes() {
		q := r.URL.Query()
		q.Del("lang")
		u := r.URL.Path + "?lang=" + code
		if len(q) > 0 {
			u += "&" + q.Encode()
		}
		out = append(out, templates.LangLink{Code: code, Name: cat.Name(code), URL: u, Current: code == current})
	}
	return out
}

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if err := s.deps.Health(ctx); err != nil {
		s.log.Warn("handlers: health check failed", "err", err)
		writeJSON(w, http.StatusServiceUnavailable, api.Health{Status: "unavailable", Error: "database does not answer"})
		return
	}
	writeJSON(w, http.StatusOK, api.Health{Status: "ok"})
}
