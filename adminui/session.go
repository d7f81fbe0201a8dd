package adminui

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"math"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// session is one logged-in browser. Its CSRF token is an HMAC of its id,
// so a token from another (or an ended) session never matches.
type session struct {
	id      string
	csrf    string
	expires time.Time
	flash   *flash
}

// flash is a one-time message shown on the next page (post/redirect/get).
type flash struct {
	Text  string
	Error bool
}

type sessions struct {
	mu  sync.Mutex
	now func() time.Time
	key []byte
	m   map[string]*session
}

func newSessions(now func() time.Time, key []byte) *sessions {
	return &sessions{now: now, key: key, m: map[string]*session{}}
}

func randomHex(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("adminui: random: %w", err)
	}
	return hex.EncodeToString(b), nil
}

func mac(key []byte, parts ...string) string {
	h := hmac.New(sha256.New, key)
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))
}

func (s *sessions) create() (*session, error) {
	id, err := randomHex(32)
	if err != nil {
		return nil, err
	}
	now := s.now()
	sess := &session{id: id, csrf: mac(s.key, "session", id), expires: now.Add(SessionTTL)}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.m) >= maxSessions {
		var oldest *session
		for k, v := range s.m {
			if !now.Before(v.expires) {
				delete(s.m, k)
			} else if oldest == nil || v.expires.Before(oldest.expires) {
				oldest = v
			}
		}
		if len(s.m) >= maxSessions && oldest != nil {
			delete(s.m, oldest.id)
		}
	}
	s.m[id] = sess
	return sess, nil
}

func (s *sessions) get(id string) *session {
	s.mu.Lock()
	defer s.mu.Unlock()
	sess := s.m[id]
	if sess == nil {
		return nil
	}
	if !s.now().Before(sess.expires) {
		delete(s.m, id)
		return nil
	}
	return sess
}

func (s *sessions) end(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, id)
}

func (s *sessions) setFlash(sess *session, f flash) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sess.flash = &f
}

func (s *sessions) takeFlash(sess *session) *flash {
	s.mu.Lock()
	defer s.mu.Unlock()
	f := sess.flash
	sess.flash = nil
	return f
}

// loginThrottle slows down guessing: each client gets a few free failures,
// then must wait before the next try, twice as long after every further
// failure (1s, 2s, 4s ... up to 5 minutes). While a client waits, even the
// right token is refused, so waiting cannot be skipped by guessing faster.
type loginThrottle struct {
	mu  sync.Mutex
	now func() time.Time
	m   map[netip.Prefix]*failures
}

type failures struct {
	n     int
	last  time.Time
	until time.Time
}

const (
	freeFailures   = 3
	baseDelay      = time.Second
	maxDelay       = 5 * time.Minute
	forgetFailures = time.Hour
	maxThrottled   = 10000
)

func newLoginThrottle(now func() time.Time) *loginThrottle {
	return &loginThrottle{now: now, m: map[netip.Prefix]*failures{}}
}

// wait says how long the client must still wait before trying again.
func (l *loginThrottle) wait(v netip.Prefix) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	f := l.m[v]
	if f == nil {
		return 0
	}
	if d := f.until.Sub(l.now()); d > 0 {
		return d
	}
	return 0
}

// fail records a failed login and returns the wait it imposes.
func (l *loginThrottle) fail(v netip.Prefix) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	k := v
	f := l.m[k]
	if f == nil {
		if len(l.m) >= maxThrottled {
			for kk, v := range l.m {
				if now.Sub(v.last) > forgetFailures {
					delete(l.m, kk)
				}
			}
		}
		if len(l.m) >= maxThrottled {
			k = netip.Prefix{} // full: strangers share one counter
			f = l.m[k]
		}
		if f == nil {
			f = &failures{}
			l.m[k] = f
		}
	} else if now.Sub(f.last) > forgetFailures {
		*f = failures{}
	}
	f.n++
	f.last = now
	if f.n <= freeFailures {
		return 0
	}
	d := maxDelay
	if shift := f.n - freeFailures - 1; shift < 20 {
		d = min(baseDelay*time.Duration(math.Pow(2, float64(shift))), maxDelay)
	}
	f.until = now.Add(d)
	return d
}

func (l *loginThrottle) reset(v netip.Prefix) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.m, v)
}

func (u *UI) tokenMatches(tok string) bool {
	a := sha256.Sum256([]byte(tok))
	b := sha256.Sum256([]byte(u.opt.Token))
	return subtle.ConstantTimeCompare(a[:], b[:]) == 1
}

func (u *UI) cookie(name, value, path string, maxAge int) *http.Cookie {
	return &http.Cookie{
		Name: name, Value: value, Path: path, MaxAge: maxAge,
		HttpOnly: true, Secure: u.opt.Secure, SameSite: http.SameSiteStrictMode,
	}
}

type sessionKey struct{}

func sessionFrom(r *http.Request) *session {
	s, _ := r.Context().Value(sessionKey{}).(*session)
	return s
}

func (u *UI) currentSession(r *http.Request) *session {
	c, err := r.Cookie(sessionCookie)
	if err != nil || len(c.Value) != 64 {
		return nil
	}
	return u.sessions.get(c.Value)
}

// authed lets a request through only with a live session; pages send the
// browser to the login form, JSON endpoints answer 401.
func (u *UI) authed(h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sess := u.currentSession(r)
		if sess == nil {
			if r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, ".json") {
				writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "not logged in"})
				return
			}
			target := "/admin/login"
			if r.Method == http.MethodGet && r.URL.Path != "/admin/" {
				target += "?next=" + url.QueryEscape(r.URL.RequestURI())
			}
			http.Redirect(w, r, target, http.StatusSeeOther)
			return
		}
		h(w, r.WithContext(context.WithValue(r.Context(), sessionKey{}, sess)))
	})
}

func (u *UI) get(h http.HandlerFunc) http.Handler { return u.authed(h) }

// post: a live session and the session's CSRF token in the form, else 403.
func (u *UI) post(h http.HandlerFunc) http.Handler {
	return u.authed(func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
		if err := r.ParseForm(); err != nil {
			u.fail(w, r, http.StatusBadRequest, "That form could not be read: "+err.Error())
			return
		}
		if !u.csrfOK(r, r.PostForm.Get("csrf")) {
			u.csrfFail(w, r)
			return
		}
		h(w, r)
	})
}

func (u *UI) csrfOK(r *http.Request, tok string) bool {
	sess := sessionFrom(r)
	return sess != nil && tok != "" && hmac.Equal([]byte(tok), []byte(sess.csrf))
}

func (u *UI) csrfFail(w http.ResponseWriter, r *http.Request) {
	u.log.Warn("adminui: form without a valid CSRF token", "path", r.URL.Path, "ip", u.opt.ClientIP(r).String())
	u.fail(w, r, http.StatusForbidden, "This form has expired or did not come from this admin page. Go back, reload the page and try again.")
}

// loginCSRF binds the login form to a cookie of its own (double submit):
// there is no session yet to bind it to.
func (u *UI) loginCSRF(w http.ResponseWriter, r *http.Request) (string, error) {
	v := ""
	if c, err := r.Cookie(loginCookie); err == nil && len(c.Value) == 32 {
		if _, err := hex.DecodeString(c.Value); err == nil {
			v = c.Value
		}
	}
	if v == "" {
		var err error
		if v, err = randomHex(16); err != nil {
			return "", err
		}
		http.SetCookie(w, u.cookie(loginCookie, v, "/admin/login", 3600))
	}
	return mac(u.key, "login", v), nil
}

func (u *UI) loginCSRFOK(r *http.Request, tok string) bool {
	c, err := r.Cookie(loginCookie)
	if err != nil || c.Value == "" || tok == "" {
		return false
	}
	return hmac.Equal([]byte(tok), []byte(mac(u.key, "login", c.Value)))
}

type loginData struct {
	Next  string
	Error string
}

func (u *UI) loginPage(w http.ResponseWriter, r *http.Request) {
	next := safeNext(r.URL.Query().Get("next"))
	if u.currentSession(r) != nil {
		http.Redirect(w, r, next, http.StatusSeeOther)
		return
	}
	u.showLogin(w, r, http.StatusOK, next, "")
}

func (u *UI) showLogin(w http.ResponseWriter, r *http.Request, status int, next, msg string) {
	tok, err := u.loginCSRF(w, r)
	if err != nil {
		u.fail(w, r, http.StatusInternalServerError, "internal error")
		return
	}
	u.render(w, r, status, "login", &view{Title: "Log in", CSRF: tok, Data: loginData{Next: next, Error: msg}})
}

func (u *UI) login(w http.ResponseWriter, r *http.Request) {
	ip, visitor := u.opt.ClientIP(r), u.opt.Visitor(r)
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		u.showLogin(w, r, http.StatusBadRequest, "/admin/", "That form could not be read.")
		return
	}
	next := safeNext(r.PostForm.Get("next"))
	if !u.loginCSRFOK(r, r.PostForm.Get("csrf")) {
		u.log.Warn("adminui: login form without a valid CSRF token", "ip", ip.String())
		u.showLogin(w, r, http.StatusForbidden, next, "This form has expired. Please try again.")
		return
	}
	if d := u.throttle.wait(visitor); d > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int(d.Round(time.Second)/time.Second)+1))
		u.showLogin(w, r, http.StatusTooManyRequests, next, fmt.Sprintf("Too many failed attempts. Wait %s before trying again.", roundUp(d)))
		return
	}
	if !u.tokenMatches(r.PostForm.Get("token")) {
		d := u.throttle.fail(visitor)
		u.log.Warn("adminui: failed login", "ip", ip.String())
		msg := "That is not the admin token."
		if d > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(int(d.Round(time.Second)/time.Second)+1))
			msg += fmt.Sprintf(" Too many failed attempts: wait %s before trying again.", roundUp(d))
		}
		u.showLogin(w, r, http.StatusUnauthorized, next, msg)
		return
	}
	u.throttle.reset(visitor)
	sess, err := u.sessions.create()
	if err != nil {
		u.log.Error("adminui: session", "err", err)
		u.fail(w, r, http.StatusInternalServerError, "internal error")
		return
	}
	u.log.Info("adminui: login", "ip", ip.String())
	http.SetCookie(w, u.cookie(sessionCookie, sess.id, "/admin", int(SessionTTL/time.Second)))
	http.SetCookie(w, u.cookie(loginCookie, "", "/admin/login", -1))
	http.Redirect(w, r, next, http.StatusSeeOther)
}

func (u *UI) logout(w http.ResponseWriter, r *http.Request) {
	u.sessions.end(sessionFrom(r).id)
	http.SetCookie(w, u.cookie(sessionCookie, "", "/admin", -1))
	http.Redirect(w, r, "/admin/login", http.StatusSeeOther)
}

func roundUp(d time.Duration) string {
	s := (d + time.Second - 1) / time.Second
	if s < 60 {
		if s == 1 {
			return "1 second"
		}
		return fmt.Sprintf("%d seconds", s)
	}
	m := (s + 59) / 60
	if m == 1 {
		return "1 minute"
	}
	return fmt.Sprintf("%d minutes", m)
}
