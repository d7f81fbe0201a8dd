package adminui

import (
	"context"
	"encoding/json"
	"fmt"
	"github.com/herald-dev/herald/handlers"
	"net/http"
	"net/netip"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/herald-dev/herald"
	"github.com/herald-dev/herald/digest"
)

func TestDisabledWithoutToken(t *testing.T) {
	e := newEnv(t, envOpts{noToken: true})
	b := e.browser()
	for _, p := range []string{"/admin/", "/admin/login", "/admin/subscribers", "/admin/runs/1.json"} {
		r := b.get(p)
		if r.status != http.StatusForbidden || !strings.Contains(r.body, "admin.token") {
			t.Errorf("GET %s with admin disabled: %d\n%s", p, r.status, r.body)
		}
	}
	r := b.post("/admin/login", url.Values{"token": {""}})
	if r.status != http.StatusForbidden {
		t.Errorf("POST /admin/login with admin disabled: %d", r.status)
	}
	if b.cookie(sessionCookie) != nil {
		t.Error("a session cookie with admin disabled")
	}
}

func TestLoginWrongThenRight(t *testing.T) {
	e := newEnv(t, envOpts{})
	b := e.browser()
	r := b.get("/admin/")
	if r.status != http.StatusSeeOther || r.location() != "/admin/login" {
		t.Fatalf("GET /admin/ without a session: %d %q", r.status, r.location())
	}
	r = b.get("/admin/login")
	if r.status != http.StatusOK || !strings.Contains(r.body, `id="token"`) || b.csrf == "" {
		t.Fatalf("login page: %d\n%s", r.status, r.body)
	}
	for _, wrong := range []string{"", "nope", testToken + "x", testToken[:len(testToken)-1], strings.ToUpper(testToken)} {
		r = b.form("/admin/login", url.Values{"token": {wrong}})
		if r.status != http.StatusUnauthorized {
			t.Fatalf("wrong token %q: %d", wrong, r.status)
		}
		if !strings.Contains(r.body, "That is not the admin token.") {
			t.Fatalf("wrong token %q: no generic message\n%s", wrong, r.body)
		}
		if b.cookie(sessionCookie) != nil {
			t.Fatalf("wrong token %q gave a session", wrong)
		}
		e.ui.throttle.reset(mustAddr("127.0.0.1")) // this test is not about slowing down
	}
	r = b.form("/admin/login", url.Values{"token": {testToken}})
	if r.status != http.StatusSeeOther || r.location() != "/admin/" {
		t.Fatalf("right token: %d %q", r.status, r.location())
	}
	var set *http.Cookie
	for _, c := range (&http.Response{Header: r.header}).Cookies() {
		if c.Name == sessionCookie {
			set = c
		}
	}
	if set == nil {
		t.Fatal("no session cookie")
	}
	if !set.HttpOnly || set.SameSite != http.SameSiteStrictMode || set.Path != "/admin" || set.Secure {
		t.Errorf("session cookie flags: HttpOnly=%v SameSite=%v Path=%q Secure=%v", set.HttpOnly, set.SameSite, set.Path, set.Secure)
	}
	if len(set.Value) != 64 {
		t.Errorf("session id %q: want 32 random bytes in hex", set.Value)
	}
	if set.MaxAge != int(SessionTTL/time.Second) {
		t.Errorf("session cookie Max-Age %d", set.MaxAge)
	}
	if r := b.get("/admin/"); r.status != http.StatusOK || !strings.Contains(r.body, "Dashboard") {
		t.Fatalf("dashboard: %d", r.status)
	}
	// Logged in, the login page sends you on.
	if r := b.get("/admin/login"); r.status != http.StatusSeeOther {
		t.Errorf("login page with a session: %d", r.status)
	}
}

func mustAddr(s string) netip.Prefix { return parseAddr(s) }

// parseAddr is the visitor the address counts as (an IPv6 /64).
func parseAddr(s string) netip.Prefix {
	return handlers.VisitorOf(netip.MustParseAddr(s), handlers.DefaultIPv6Prefix)
}

func TestSecureCookie(t *testing.T) {
	e := newEnv(t, envOpts{secure: true})
	b := e.browser()
	b.get("/admin/login")
	r := b.form("/admin/login", url.Values{"token": {testToken}})
	if r.status != http.StatusSeeOther {
		t.Fatalf("login: %d", r.status)
	}
	found := false
	for _, c := range (&http.Response{Header: r.header}).Cookies() {
		if c.Name == sessionCookie {
			found = true
			if !c.Secure || !c.HttpOnly || c.SameSite != http.SameSiteStrictMode {
				t.Errorf("cookie flags behind https: %+v", c)
			}
		}
	}
	if !found {
		t.Fatal("no session cookie")
	}
}

func TestLoginNeedsItsCSRFToken(t *testing.T) {
	e := newEnv(t, envOpts{})
	b := e.browser()
	// No login page first: no cookie, no token.
	if r := b.post("/admin/login", url.Values{"token": {testToken}}); r.status != http.StatusForbidden {
		t.Fatalf("login without a CSRF token: %d", r.status)
	}
	b.get("/admin/login")
	if r := b.post("/admin/login", url.Values{"token": {testToken}, "csrf": {"0123"}}); r.status != http.StatusForbidden {
		t.Fatalf("login with a wrong CSRF token: %d", r.status)
	}
	// A token from another browser's login page does not fit this cookie.
	other := e.browser()
	other.get("/admin/login")
	if r := b.post("/admin/login", url.Values{"token": {testToken}, "csrf": {other.csrf}}); r.status != http.StatusForbidden {
		t.Fatalf("login with another browser's CSRF token: %d", r.status)
	}
	if b.cookie(sessionCookie) != nil {
		t.Fatal("session without a valid login form")
	}
}

func TestRepeatedFailuresSlowDown(t *testing.T) {
	e := newEnv(t, envOpts{})
	b := e.browser()
	b.get("/admin/login")
	for i := 1; i <= freeFailures; i++ {
		r := b.form("/admin/login", url.Values{"token": {"guess"}})
		if r.status != http.StatusUnauthorized || r.header.Get("Retry-After") != "" {
			t.Fatalf("failure %d: %d Retry-After=%q", i, r.status, r.header.Get("Retry-After"))
		}
	}
	// The next failure imposes a wait, which doubles with each one after.
	r := b.form("/admin/login", url.Values{"token": {"guess"}})
	if r.status != http.StatusUnauthorized || r.header.Get("Retry-After") == "" || !strings.Contains(r.body, "Too many failed attempts") {
		t.Fatalf("failure %d: %d Retry-After=%q", freeFailures+1, r.status, r.header.Get("Retry-After"))
	}
	// While waiting, even the right token is refused.
	r = b.form("/admin/login", url.Values{"token": {testToken}})
	if r.status != http.StatusTooManyRequests || r.header.Get("Retry-After") == "" {
		t.Fatalf("right token while throttled: %d", r.status)
	}
	if b.cookie(sessionCookie) != nil {
		t.Fatal("logged in while throttled")
	}
	// Another client is not affected.
	if d := e.ui.throttle.wait(parseAddr("192.0.2.7")); d != 0 {
		t.Fatalf("another address waits %v", d)
	}
	waits := []time.Duration{}
	for range 4 {
		e.clock.Add(10 * time.Minute)
		e.ui.throttle.fail(parseAddr("127.0.0.1"))
		waits = append(waits, e.ui.throttle.wait(parseAddr("127.0.0.1")))
	}
	for i := 1; i < len(waits); i++ {
		if waits[i] <= waits[i-1] && waits[i] < maxDelay {
			t.Fatalf("waits do not grow: %v", waits)
		}
	}
	// After the wait, the right token works and clears the count.
	e.clock.Add(maxDelay + time.Second)
	r = b.form("/admin/login", url.Values{"token": {testToken}})
	if r.status != http.StatusSeeOther {
		t.Fatalf("right token after the wait: %d\n%s", r.status, r.body)
	}
	if d := e.ui.throttle.wait(parseAddr("127.0.0.1")); d != 0 {
		t.Fatalf("still throttled after a login: %v", d)
	}
}

// Behind a reverse proxy (server.trusted_proxies), failed logins slow down
// the client who made them, not every admin behind the same proxy.
func TestThrottleBehindAProxyKeysOnTheClient(t *testing.T) {
	e := newEnv(t, envOpts{trustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}})
	guesser := e.browser()
	guesser.forwardedFor = "203.0.113.9"
	guesser.get("/admin/login")
	for i := 0; i <= freeFailures; i++ {
		guesser.form("/admin/login", url.Values{"token": {"guess"}})
	}
	if r := guesser.form("/admin/login", url.Values{"token": {testToken}}); r.status != http.StatusTooManyRequests {
		t.Fatalf("the guesser with the right token while throttled: %d", r.status)
	}
	admin := e.browser()
	admin.forwardedFor = "198.51.100.20"
	admin.login() // fails the test unless it logs in at once

	// An IPv6 guesser rotating through its /64 is one visitor: slowed
	// down all the same; the next /64 is not.
	rotator := e.browser()
	rotator.get("/admin/login")
	for i := 0; i <= freeFailures; i++ {
		rotator.forwardedFor = fmt.Sprintf("2001:db8:5:6:%x::1", i+1)
		rotator.form("/admin/login", url.Values{"token": {"guess"}})
	}
	rotator.forwardedFor = "2001:db8:5:6:ffff:ffff:ffff:1"
	if r := rotator.form("/admin/login", url.Values{"token": {testToken}}); r.status != http.StatusTooManyRequests {
		t.Fatalf("a rotated address of the guessing /64 with the right token: %d", r.status)
	}
	admin6 := e.browser()
	admin6.forwardedFor = "2001:db8:5:7::1"
	admin6.login()
}

func TestThrottleDelays(t *testing.T) {
	clk := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	l := newLoginThrottle(clk.Now)
	a := parseAddr("198.51.100.1")
	var got []time.Duration
	for range freeFailures + 12 {
		got = append(got, l.fail(a))
	}
	want := []time.Duration{0, 0, 0, time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second}
	for i, w := range want {
		if got[i] != w {
			t.Fatalf("delays %v, want prefix %v", got, want)
		}
	}
	if last := got[len(got)-1]; last != maxDelay {
		t.Fatalf("delay capped at %v, want %v", last, maxDelay)
	}
	// IPv6 clients are counted by /64.
	v6a, v6b := parseAddr("2001:db8::1"), parseAddr("2001:db8::ffff")
	for range freeFailures + 1 {
		l.fail(v6a)
	}
	if l.wait(v6b) == 0 {
		t.Fatal("another address of the same /64 is not slowed down")
	}
	// Old failures are forgotten.
	clk.t = clk.t.Add(forgetFailures + maxDelay + time.Minute)
	if d := l.fail(a); d != 0 {
		t.Fatalf("after an hour, the first failure waits %v", d)
	}
}

func TestPagesNeedASession(t *testing.T) {
	e := newEnv(t, envOpts{})
	e.addConfirmed("reader@example.org", "Reader", "daily")
	e.addPosts(2)
	anon := e.browser()
	pages := []string{"/admin/", "/admin/subscribers", "/admin/subscribers?q=reader", "/admin/posts", "/admin/runs",
		"/admin/preview", "/admin/preview?email=reader@example.org", "/admin/preview/frame?email=reader@example.org", "/admin/subscribers.csv"}
	for _, p := range pages {
		r := anon.get(p)
		if r.status != http.StatusSeeOther || !strings.HasPrefix(r.location(), "/admin/login") {
			t.Errorf("GET %s without a session: %d %q", p, r.status, r.location())
		}
	}
	if r := anon.get("/admin/runs/1.json"); r.status != http.StatusUnauthorized {
		t.Errorf("run JSON without a session: %d", r.status)
	}
	for _, p := range []string{"/admin/subscribers", "/admin/runs", "/admin/logout", "/admin/preview/test", "/admin/subscribers/erase"} {
		if r := anon.post(p, url.Values{}); r.status != http.StatusSeeOther {
			t.Errorf("POST %s without a session: %d", p, r.status)
		}
	}
	// The login page brings you back where you were going.
	r := anon.get("/admin/posts")
	if r.location() != "/admin/login?next=%2Fadmin%2Fposts" {
		t.Fatalf("redirect to login: %q", r.location())
	}
	anon.get(r.location())
	r = anon.form("/admin/login", url.Values{"token": {testToken}, "next": {"/admin/posts"}})
	if r.location() != "/admin/posts" {
		t.Fatalf("after login: %q", r.location())
	}
	// ... but only inside the admin UI.
	for _, next := range []string{"https://evil.example/", "//evil.example/admin/", "/admin/\\evil", "/subscribe"} {
		if got := safeNext(next); got != "/admin/" {
			t.Errorf("safeNext(%q) = %q", next, got)
		}
	}

	b := e.browser()
	b.login()
	for _, p := range pages {
		r := b.get(p)
		if r.status != http.StatusOK {
			t.Errorf("GET %s with a session: %d\n%s", p, r.status, r.body)
			continue
		}
		csp := r.header.Get("Content-Security-Policy")
		if strings.Contains(p, "/frame") {
			if !strings.Contains(csp, "sandbox") || strings.Contains(csp, "script-src") || r.header.Get("X-Frame-Options") != "SAMEORIGIN" {
				t.Errorf("preview frame headers: CSP %q XFO %q", csp, r.header.Get("X-Frame-Options"))
			}
			continue
		}
		if strings.HasSuffix(p, ".csv") {
			continue
		}
		m := regexp.MustCompile(`'nonce-([0-9a-f]+)'`).FindStringSubmatch(csp)
		if m == nil || !strings.Contains(r.body, `<style nonce="`+m[1]+`">`) {
			t.Errorf("GET %s: the style does not carry the CSP nonce (CSP %q)", p, csp)
		}
		if strings.Contains(r.body, "<script") && !strings.Contains(r.body, `<script nonce="`+m[1]+`">`) {
			t.Errorf("GET %s: a script without the nonce", p)
		}
		if strings.Contains(r.body, " style=") || strings.Contains(r.body, " onclick=") {
			t.Errorf("GET %s: inline style or handler attributes, which the CSP blocks", p)
		}
		if r.header.Get("Cache-Control") != "no-store" {
			t.Errorf("GET %s: Cache-Control %q", p, r.header.Get("Cache-Control"))
		}
	}
	if r := b.get("/admin"); r.status != http.StatusSeeOther || r.location() != "/admin/" {
		t.Errorf("/admin: %d %q", r.status, r.location())
	}
	if r := b.get("/admin/nothing-here"); r.status != http.StatusNotFound {
		t.Errorf("unknown admin page: %d", r.status)
	}
	if r := b.get("/admin/runs/abc"); r.status != http.StatusNotFound {
		t.Errorf("bad run id: %d", r.status)
	}
	if r := b.get("/admin/runs/999"); r.status != http.StatusNotFound {
		t.Errorf("unknown run: %d", r.status)
	}
}

func TestSessionsExpireAndLogOut(t *testing.T) {
	e := newEnv(t, envOpts{})
	b := e.browser()
	b.login()
	e.clock.Add(SessionTTL - time.Minute)
	if r := b.get("/admin/"); r.status != http.StatusOK {
		t.Fatalf("before expiry: %d", r.status)
	}
	e.clock.Add(2 * time.Minute)
	if r := b.get("/admin/"); r.status != http.StatusSeeOther {
		t.Fatalf("after 12h: %d", r.status)
	}
	b.login()
	old := b.csrf
	if r := b.post("/admin/logout", url.Values{}); r.status != http.StatusForbidden {
		t.Fatalf("logout without a CSRF token: %d", r.status)
	}
	r := b.form("/admin/logout", nil)
	if r.status != http.StatusSeeOther || r.location() != "/admin/login" {
		t.Fatalf("logout: %d %q", r.status, r.location())
	}
	if r := b.get("/admin/"); r.status != http.StatusSeeOther {
		t.Fatalf("after logout: %d", r.status)
	}
	// The ended session's token is stale in a new one.
	b.login()
	if r := b.post("/admin/subscribers", url.Values{"csrf": {old}, "email": {"x@example.org"}, "frequency": {"daily"}}); r.status != http.StatusForbidden {
		t.Fatalf("stale CSRF token: %d", r.status)
	}
}

func TestFormsNeedTheSessionsCSRFToken(t *testing.T) {
	e := newEnv(t, envOpts{})
	a, b := e.browser(), e.browser()
	a.login()
	b.login()
	if a.csrf == b.csrf {
		t.Fatal("two sessions share a CSRF token")
	}
	add := func(br *browser, csrf *string, email string) resp {
		v := url.Values{"email": {email}, "frequency": {"weekly"}, "confirmed": {"1"}}
		if csrf != nil {
			v.Set("csrf", *csrf)
		}
		return br.post("/admin/subscribers", v)
	}
	if r := add(a, nil, "none@example.org"); r.status != http.StatusForbidden || !strings.Contains(r.body, "expired") {
		t.Fatalf("POST without a token: %d", r.status)
	}
	empty := ""
	if r := add(a, &empty, "empty@example.org"); r.status != http.StatusForbidden {
		t.Fatalf("POST with an empty token: %d", r.status)
	}
	if r := add(a, &b.csrf, "other@example.org"); r.status != http.StatusForbidden {
		t.Fatalf("POST with another session's token: %d", r.status)
	}
	for _, email := range []string{"none@example.org", "empty@example.org", "other@example.org"} {
		if _, err := e.db.SubscriberByEmail(context.Background(), email); herald.ErrorCode(err) != herald.ENOTFOUND {
			t.Fatalf("%s was added by a rejected form: %v", email, err)
		}
	}
	// Each form of the UI is refused without its token.
	for _, p := range []string{"/admin/subscribers/erase", "/admin/runs", "/admin/preview/test", "/admin/logout"} {
		if r := a.post(p, url.Values{"email": {"x@example.org"}, "to": {"x@example.org"}, "frequency": {"daily"}, "confirm": {"yes"}}); r.status != http.StatusForbidden {
			t.Errorf("POST %s without a token: %d", p, r.status)
		}
	}
	if r := add(a, &a.csrf, "good@example.org"); r.status != http.StatusSeeOther {
		t.Fatalf("POST with the right token: %d\n%s", r.status, r.body)
	}
	if s, err := e.db.SubscriberByEmail(context.Background(), "good@example.org"); err != nil || s.Status != herald.StatusConfirmed || s.Frequency != herald.Weekly {
		t.Fatalf("added subscriber: %+v %v", s, err)
	}
}

func TestSubscribersSearchPageAddErase(t *testing.T) {
	e := newEnv(t, envOpts{})
	for i := range 120 {
		e.addConfirmed(fmt.Sprintf("reader%03d@example.org", i), fmt.Sprintf("Reader %d", i), "daily")
	}
	e.addConfirmed("ada@lovelace.example", "Ada Lovelace", "weekly")
	b := e.browser()
	b.login()

	r := b.get("/admin/subscribers")
	if n := strings.Count(r.body, `<td class="email">`); n != subsPageSize {
		t.Fatalf("first page shows %d rows", n)
	}
	// Newest first, with the total, each row a link to the reader's page.
	emailRe := regexp.MustCompile(`<td class="email"><a href="/admin/subscribers/([^"]+)">([^<]+)</a></td>`)
	if first := emailRe.FindStringSubmatch(r.body); first == nil || first[2] != "ada@lovelace.example" || first[1] != "ada@lovelace.example" {
		t.Fatalf("first row %v, want the newest reader", first)
	}
	if !strings.Contains(r.body, `<small id="subs-total">121 in all</small>`) {
		t.Fatalf("no total on the list:\n%s", r.body)
	}
	if r := b.get("/admin/subscribers?status=confirmed"); !strings.Contains(r.body, `<small id="subs-total">121 confirmed</small>`) {
		t.Fatal("no total of the status on the filtered list")
	}
	// Page through everything by the "next" links.
	seen := map[string]bool{}
	nextRe := regexp.MustCompile(`<a href="([^"]+)" rel="next"`)
	path := "/admin/subscribers"
	for pages := 0; path != ""; pages++ {
		if pages > 10 {
			t.Fatal("paging does not end")
		}
		r := b.get(path)
		for _, m := range emailRe.FindAllStringSubmatch(r.body, -1) {
			seen[m[2]] = true
		}
		path = ""
		if m := nextRe.FindStringSubmatch(r.body); m != nil {
			path = strings.ReplaceAll(m[1], "&amp;", "&")
		}
	}
	if len(seen) != 121 {
		t.Fatalf("paging showed %d subscribers, want 121", len(seen))
	}
	// Search by name, and by address.
	r = b.get("/admin/subscribers?q=lovelace")
	if !strings.Contains(r.body, "ada@lovelace.example") || strings.Contains(r.body, "reader000@") {
		t.Fatalf("search: %s", r.body)
	}
	r = b.get("/admin/subscribers?q=" + url.QueryEscape("Ada Love"))
	if !strings.Contains(r.body, "ada@lovelace.example") {
		t.Fatal("search by name")
	}
	r = b.get("/admin/subscribers?status=pending")
	if strings.Contains(r.body, `<td class="email">`) || !strings.Contains(r.body, "No subscriber matches") {
		t.Fatal("status filter")
	}
	r = b.get("/admin/subscribers?status=bogus")
	if r.status != http.StatusOK || !strings.Contains(r.body, "unknown status") {
		t.Fatalf("bad status filter: %d", r.status)
	}

	// Add: a pending reader gets a confirmation email.
	r = b.form("/admin/subscribers", url.Values{"email": {"New@Example.org"}, "name": {"Newt"}, "frequency": {"weekly"}})
	if r.status != http.StatusSeeOther || !strings.HasPrefix(r.location(), "/admin/subscribers?q=New%40example.org") {
		t.Fatalf("add: %d %q", r.status, r.location())
	}
	r = b.get(r.location())
	if !strings.Contains(r.body, "Added New@example.org.") || !strings.Contains(r.body, "s-pending") {
		t.Fatalf("after add: %s", r.body)
	}
	e.smtp.WaitFor(t, 1, 10*time.Second)
	// Errors come back in the form, with what was typed.
	r = b.form("/admin/subscribers", url.Values{"email": {"not an address"}, "name": {"Typo"}, "frequency": {"daily"}})
	if r.status != http.StatusUnprocessableEntity || !strings.Contains(r.body, `value="not an address"`) || !strings.Contains(r.body, `class="error"`) {
		t.Fatalf("invalid add: %d\n%s", r.status, r.body)
	}
	r = b.form("/admin/subscribers", url.Values{"email": {"ada@lovelace.example"}, "frequency": {"daily"}})
	if r.status != http.StatusConflict || !strings.Contains(r.body, "exists already") {
		t.Fatalf("duplicate add: %d", r.status)
	}

	// Erase asks first (without script), then erases.
	back := "/admin/subscribers?q=lovelace"
	r = b.form("/admin/subscribers/erase", url.Values{"email": {"ada@lovelace.example"}, "back": {back}})
	if r.status != http.StatusOK || !strings.Contains(r.body, "Erase ada@lovelace.example?") || !strings.Contains(r.body, `name="confirm" value="yes"`) {
		t.Fatalf("erase confirm page: %d\n%s", r.status, r.body)
	}
	if _, err := e.db.SubscriberByEmail(context.Background(), "ada@lovelace.example"); err != nil {
		t.Fatal("erased before confirming")
	}
	r = b.form("/admin/subscribers/erase", url.Values{"email": {"ada@lovelace.example"}, "back": {back}, "confirm": {"yes"}})
	if r.status != http.StatusSeeOther || r.location() != back {
		t.Fatalf("erase: %d %q", r.status, r.location())
	}
	if _, err := e.db.SubscriberByEmail(context.Background(), "ada@lovelace.example"); herald.ErrorCode(err) != herald.ENOTFOUND {
		t.Fatalf("still there after erase: %v", err)
	}
	r = b.get(back)
	if !strings.Contains(r.body, "Erased ada@lovelace.example") {
		t.Fatal("no message after erase")
	}
	r = b.form("/admin/subscribers/erase", url.Values{"email": {"ada@lovelace.example"}, "confirm": {"yes"}})
	r = b.get(r.location())
	if !strings.Contains(r.body, "Could not erase") {
		t.Fatalf("erasing a missing reader: %s", r.body)
	}
}

func TestImportAndExportCSV(t *testing.T) {
	e := newEnv(t, envOpts{})
	b := e.browser()
	b.login()
	csv := "email,name,frequency,status\r\nimp1@example.org,Imp One,daily,\r\nimp2@example.org,\"Two, Imp\",weekly,\r\nnot-an-address,Bad,daily,\r\n"
	// The token must come before the file.
	if r := b.multipart("/admin/subscribers/import", part{"file", "subs.csv", csv}, part{"csrf", "", b.csrf}); r.status != http.StatusForbidden {
		t.Fatalf("import with the token after the file: %d", r.status)
	}
	if r := b.multipart("/admin/subscribers/import", part{"file", "subs.csv", csv}); r.status != http.StatusForbidden {
		t.Fatalf("import without a token: %d", r.status)
	}
	if r := b.post("/admin/subscribers/import", url.Values{"file": {csv}}); r.status != http.StatusForbidden {
		t.Fatalf("urlencoded import without a token: %d", r.status)
	}
	if r := b.form("/admin/subscribers/import", url.Values{"file": {csv}}); r.status != http.StatusBadRequest {
		t.Fatalf("urlencoded import with a token: %d", r.status)
	}
	if r := b.multipart("/admin/subscribers/import", part{"csrf", "", b.csrf}, part{"file", "", ""}); r.status != http.StatusUnprocessableEntity || !strings.Contains(r.body, "Choose a CSV file") {
		t.Fatalf("import without a file: %d", r.status)
	}
	r := b.multipart("/admin/subscribers/import", part{"csrf", "", b.csrf}, part{"confirmed", "", "1"}, part{"file", "subs.csv", csv})
	if r.status != http.StatusOK {
		t.Fatalf("import: %d\n%s", r.status, r.body)
	}
	if !strings.Contains(r.body, `<dd id="import-added">2</dd>`) || !strings.Contains(r.body, `<dd id="import-invalid">1</dd>`) {
		t.Fatalf("import report:\n%s", r.body)
	}
	s, err := e.db.SubscriberByEmail(context.Background(), "imp2@example.org")
	if err != nil || s.Name != "Two, Imp" || s.Status != herald.StatusConfirmed {
		t.Fatalf("imported: %+v %v", s, err)
	}
	r = b.get("/admin/subscribers.csv")
	if r.status != http.StatusOK || !strings.Contains(r.header.Get("Content-Type"), "csv") || !strings.Contains(r.body, "imp1@example.org") {
		t.Fatalf("export: %d %q\n%s", r.status, r.header.Get("Content-Type"), r.body)
	}
}

var runLocRe = regexp.MustCompile(`^/admin/runs/(\d+)$`)

var runConfirmRe = regexp.MustCompile(`^/admin/runs/(\d+)\?send=1$`)

// waitRunJSON follows a run through its page's JSON until it ends.
func waitRunJSON(t *testing.T, b *browser, id string) runView {
	t.Helper()
	var last runView
	deadline := time.Now().Add(20 * time.Second)
	for {
		r := b.get("/admin/runs/" + id + ".json")
		if r.status != http.StatusOK || !strings.HasPrefix(r.header.Get("Content-Type"), "application/json") {
			t.Fatalf("run JSON: %d %q", r.status, r.header.Get("Content-Type"))
		}
		last = runView{&herald.Run{}}
		if err := json.Unmarshal([]byte(r.body), last.Run); err != nil {
			t.Fatal(err)
		}
		if last.Finished() {
			return last
		}
		if time.Now().After(deadline) {
			t.Fatalf("run did not finish: %+v", last)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Send asks first: the first press counts (a dry run) and shows how many
// readers would get mail and which posts; only the second press sends.
func TestSendNowAsksFirst(t *testing.T) {
	e := newEnv(t, envOpts{})
	for i := range 5 {
		e.addConfirmed(fmt.Sprintf("r%d@example.org", i), "", "daily")
	}
	e.addConfirmed("w@example.org", "", "weekly")
	e.addPosts(3)
	e.smtp.RejectRecipient(func(rcpt string) (int, string, bool) {
		if rcpt == "r3@example.org" {
			return 550, "5.1.1 mailbox unavailable", true
		}
		return 0, "", false
	})
	b := e.browser()
	b.login()
	r := b.get("/admin/runs")
	if !strings.Contains(r.body, `id="send-daily"`) || !strings.Contains(r.body, "No run has mailed anyone yet") {
		t.Fatalf("runs page:\n%s", r.body)
	}
	r = b.form("/admin/runs", url.Values{"frequency": {"daily"}})
	m := runConfirmRe.FindStringSubmatch(r.location())
	if r.status != http.StatusSeeOther || m == nil {
		t.Fatalf("first press: %d %q\n%s", r.status, r.location(), r.body)
	}
	dry := m[1]
	if run := waitRunJSON(t, b, dry); !run.DryRun || run.Trigger != herald.TriggerAdmin || run.Total != 5 || len(run.Posts) != 3 {
		t.Fatalf("the count: %+v", run.Run)
	}
	r = b.get("/admin/runs/" + dry + "?send=1")
	for _, want := range []string{`A daily run now would email <span id="would-send">5</span> readers.`, "Post number 1", "Post number 3",
		`<strong class="subject">Test Blog: 3 new posts</strong>`, `id="send-confirm"`, "Send to 5 readers now", `name="confirm" value="yes"`} {
		if !strings.Contains(r.body, want) {
			t.Fatalf("confirm page lacks %q:\n%s", want, r.body)
		}
	}
	if n := len(e.smtp.Messages()); n != 0 {
		t.Fatalf("the first press sent %d emails", n)
	}
	// The second press sends.
	r = b.form("/admin/runs", url.Values{"frequency": {"daily"}, "confirm": {"yes"}})
	m = runLocRe.FindStringSubmatch(r.location())
	if r.status != http.StatusSeeOther || m == nil {
		t.Fatalf("second press: %d %q\n%s", r.status, r.location(), r.body)
	}
	id := m[1]
	r = b.get("/admin/runs/" + id)
	if r.status != http.StatusOK || !strings.Contains(r.body, `id="run-progress"`) || !strings.Contains(r.body, "Started a daily run.") {
		t.Fatalf("run page: %d\n%s", r.status, r.body)
	}
	last := waitRunJSON(t, b, id)
	if last.State != "done" || last.Sent != 4 || last.Failed != 1 || last.Total != 5 || last.Trigger != herald.TriggerAdmin {
		t.Fatalf("finished run: %+v", last.Run)
	}
	r = b.get("/admin/runs/" + id)
	if strings.Contains(r.body, `data-poll="`) {
		t.Error("a finished run still polls")
	}
	for _, want := range []string{`max="5" value="5"`, "r3@example.org", "mailbox unavailable", `<dd id="run-trigger">admin</dd>`,
		`<dd id="run-subjects">Test Blog: 3 new posts</dd>`, `<ul class="posts-list" id="run-posts">`, "Post number 2"} {
		if !strings.Contains(r.body, want) {
			t.Errorf("finished run's page lacks %q:\n%s", want, r.body)
		}
	}
	// The history and the dashboard list it; the dry run only when asked.
	for _, p := range []string{"/admin/runs", "/admin/"} {
		r := b.get(p)
		if !strings.Contains(r.body, `href="/admin/runs/`+id+`"`) || strings.Contains(r.body, `href="/admin/runs/`+dry+`"`) {
			t.Errorf("%s lists run %s and not the dry run %s:\n%s", p, id, dry, r.body)
		}
	}
	if r := b.get("/admin/runs?all=1"); !strings.Contains(r.body, `href="/admin/runs/`+dry+`"`) {
		t.Error("?all=1 does not list the dry run")
	}
	// The reader the server refused still has the posts waiting.
	r = b.form("/admin/runs", url.Values{"frequency": {"daily"}})
	if m = runConfirmRe.FindStringSubmatch(r.location()); m == nil {
		t.Fatalf("first press again: %d %q", r.status, r.location())
	}
	waitRunJSON(t, b, m[1])
	if r = b.get(r.location()); !strings.Contains(r.body, `would email <span id="would-send">1</span> reader.`) {
		t.Fatalf("after the run:\n%s", r.body)
	}
	// Nobody reads instantly: the count says so and offers no Send.
	r = b.form("/admin/runs", url.Values{"frequency": {"instant"}})
	m = runConfirmRe.FindStringSubmatch(r.location())
	if m == nil {
		t.Fatalf("first press again: %d %q", r.status, r.location())
	}
	waitRunJSON(t, b, m[1])
	if r = b.get(r.location()); !strings.Contains(r.body, "Nobody would get mail now") || strings.Contains(r.body, `id="send-confirm"`) {
		t.Fatalf("nothing to send:\n%s", r.body)
	}
	r = b.form("/admin/runs", url.Values{"frequency": {"hourly"}})
	if r.status != http.StatusUnprocessableEntity || !strings.Contains(r.body, "unknown frequency") {
		t.Fatalf("bad frequency: %d\n%s", r.status, r.body)
	}
}

func TestPreviewAndTestEmail(t *testing.T) {
	e := newEnv(t, envOpts{})
	e.addConfirmed("reader@example.org", "Reader", "daily")
	b := e.browser()
	b.login()
	r := b.get("/admin/preview/frame?email=reader@example.org")
	if r.status != http.StatusOK || !strings.Contains(r.body, "Nothing new for reader@example.org") {
		t.Fatalf("preview with nothing new: %d\n%s", r.status, r.body)
	}
	e.addPosts(2)
	r = b.get("/admin/preview?email=reader@example.org")
	if !strings.Contains(r.body, `<iframe class="preview" id="preview-frame" sandbox src="/admin/preview/frame?email=reader%40example.org"`) {
		t.Fatalf("preview page:\n%s", r.body)
	}
	if !strings.Contains(r.body, `<option value="reader@example.org">`) {
		t.Error("no reader to pick")
	}
	r = b.get("/admin/preview/frame?email=reader@example.org")
	if r.status != http.StatusOK || !strings.Contains(r.body, "Post number 2") {
		t.Fatalf("preview frame: %d\n%s", r.status, r.body)
	}
	r = b.get("/admin/preview/frame?email=nobody@example.org")
	if r.status != http.StatusNotFound {
		t.Fatalf("preview of an unknown reader: %d", r.status)
	}
	r = b.form("/admin/preview/test", url.Values{"to": {"me@example.org"}, "email": {"reader@example.org"}})
	if r.status != http.StatusSeeOther || r.location() != "/admin/preview?email=reader%40example.org" {
		t.Fatalf("test email: %d %q", r.status, r.location())
	}
	if r = b.get(r.location()); !strings.Contains(r.body, "A test digest is on its way to me@example.org.") {
		t.Fatal("no confirmation of the test email")
	}
	msgs := e.smtp.WaitFor(t, 1, 10*time.Second)
	if !strings.Contains(string(msgs[len(msgs)-1].Data), "[Test]") {
		t.Fatal("the test email is not marked")
	}
	r = b.form("/admin/preview/test", url.Values{"to": {"nope"}})
	if r = b.get(r.location()); !strings.Contains(r.body, "Could not send a test to nope") {
		t.Fatalf("bad test address:\n%s", r.body)
	}
}

func TestDashboard(t *testing.T) {
	e := newEnv(t, envOpts{})
	e.addConfirmed("a@example.org", "", "daily")
	e.addConfirmed("b@example.org", "", "weekly")
	b := e.browser()
	b.login()
	r := b.get("/admin/")
	if r.status != http.StatusOK {
		t.Fatalf("dashboard: %d", r.status)
	}
	for _, want := range []string{`<svg class="chart"`, "2 confirmed readers", "Last runs", "Feeds"} {
		if !strings.Contains(r.body, want) {
			t.Errorf("dashboard lacks %q", want)
		}
	}
	// Changes made in the UI show at once, past the chart's cache.
	b.form("/admin/subscribers", url.Values{"email": {"c@example.org"}, "frequency": {"daily"}, "confirmed": {"1"}})
	if r := b.get("/admin/"); !strings.Contains(r.body, "3 confirmed readers") {
		t.Error("dashboard chart stale after an add")
	}
}

// With topics and local time, the dashboard shows readers per topic (and
// those who chose none) and the next digest of each slot.
func TestDashboardTopicsAndSlots(t *testing.T) {
	e := newEnv(t, envOpts{topics: []string{"Prisons", "Courts"}, digest: func(o *digest.Options) {
		o.LocalTime, o.Daily, o.Location = true, "0 7 * * *", time.UTC
		o.Now = func() time.Time { return time.Date(2026, 1, 10, 12, 0, 0, 0, time.UTC) } // New York on EST
	}})
	for _, r := range []struct{ email, body string }{
		{"a@example.org", `"topics":["Courts"],"timezone":"Asia/Kolkata"`},
		{"b@example.org", `"topics":["courts","Prisons"],"timezone":"Asia/Kolkata"`},
		{"c@example.org", `"timezone":"America/New_York"`},
		{"d@example.org", `"topics":["Prisons"],"frequency":"weekly"`},
	} {
		if r := e.api(http.MethodPost, "/api/v1/subscribers", `{"email":"`+r.email+`","frequency":"daily","confirmed":true,`+strings.TrimPrefix(r.body, ",")+`}`); r.status != http.StatusCreated {
			t.Fatalf("add: %d %s", r.status, r.body)
		}
	}
	b := e.browser()
	b.login()
	r := b.get("/admin/")
	topics := section(t, r.body, `id="readers-by-topic"`)
	for _, want := range []string{`<td>Prisons</td><td class="num">2</td>`, `<td>Courts</td><td class="num">2</td>`, `(no topic chosen)</small></td><td class="num">1</td>`} {
		if !strings.Contains(topics, want) {
			t.Errorf("readers by topic lacks %q:\n%s", want, topics)
		}
	}
	next := section(t, r.body, `id="schedule"`)
	for _, want := range []string{`datetime="2026-01-11T01:30:00Z"`, `<td>Asia/Kolkata</td><td class="num">2</td>`, `datetime="2026-01-11T12:00:00Z"`, `<td>America/New_York</td><td class="num">1</td>`} {
		if !strings.Contains(next, want) {
			t.Errorf("next digests lack %q:\n%s", want, next)
		}
	}
}

// The preview of a reader with topics says so, and the test it sends is
// of the latest posts for their topics.
func TestPreviewAndTestWithTopics(t *testing.T) {
	e := newEnv(t, envOpts{topics: []string{"Prisons", "Courts"}})
	if r := e.api(http.MethodPost, "/api/v1/subscribers", `{"email":"c@example.org","frequency":"daily","confirmed":true,"topics":["Courts"]}`); r.status != http.StatusCreated {
		t.Fatalf("add: %d %s", r.status, r.body)
	}
	for i, cat := range []string{"Courts", "Prisons", "Courts"} {
		p := &herald.Post{GUID: fmt.Sprintf("t%d", i), URL: fmt.Sprintf("https://blog.example.org/t%d", i), Title: fmt.Sprintf("%s story %d", cat, i),
			Categories: []string{cat}, Summary: "<p>s</p>", PublishedAt: time.Now(), FoundAt: time.Now(), Feed: "https://blog.example.org/feed/"}
		if _, err := e.db.UpsertPost(context.Background(), p); err != nil {
			t.Fatal(err)
		}
	}
	b := e.browser()
	b.login()
	r := b.get("/admin/preview?email=c%40example.org")
	if !strings.Contains(r.body, `id="preview-topics">Their topics: Courts.`) || !strings.Contains(r.body, `<input type="hidden" name="topics" value="Courts">`) {
		t.Fatalf("preview page:\n%s", r.body)
	}
	frame := b.get("/admin/preview/frame?email=c%40example.org")
	if !strings.Contains(frame.body, "Courts story 0") || !strings.Contains(frame.body, "Courts story 2") || strings.Contains(frame.body, "Prisons story") {
		t.Errorf("the preview holds other topics' posts:\n%s", frame.body)
	}
	r = b.form("/admin/preview/test", url.Values{"to": {"me@example.org"}, "email": {"c@example.org"}, "topics": {"Courts"}})
	if r = b.get(r.location()); !strings.Contains(r.body, "A test digest of the latest posts for Courts is on its way") {
		t.Fatalf("after the test:\n%s", r.body)
	}
	msgs := e.smtp.WaitFor(t, 1, 10*time.Second)
	body := string(msgs[len(msgs)-1].Data)
	if !strings.Contains(body, "Courts story 2") || strings.Contains(body, "Prisons story") {
		t.Errorf("the test digest for Courts:\n%s", body)
	}
}

// section is the HTML from the element with attr to the end of its table.
func section(t *testing.T, body, attr string) string {
	t.Helper()
	i := strings.Index(body, attr)
	if i < 0 {
		t.Fatalf("no %s in:\n%s", attr, body)
	}
	s := body[i:]
	return s[:strings.Index(s, "</table>")]
}

// The Delivery table shows each relay with what it sent and deferred,
// and a relay set aside with until when and why.
func TestDashboardDelivery(t *testing.T) {
	e := newEnv(t, envOpts{relays: 1})
	down := e.app.Relays[0]
	if err := down.SetRefuse(true); err != nil {
		t.Fatal(err)
	}
	for i := range 6 {
		err := e.app.Transport.Send(context.Background(), &herald.Message{From: "digest@example.org", To: fmt.Sprintf("r%d@example.net", i),
			MessageID: fmt.Sprintf("<d%d@example.org>", i), Raw: []byte("Subject: hi\r\nMessage-ID: <x@example.org>\r\n\r\nhello\r\n")})
		if err != nil {
			t.Fatal(err)
		}
	}
	b := e.browser()
	b.login()
	r := b.get("/admin/")
	i := strings.Index(r.body, `id="routes"`)
	if i < 0 {
		t.Fatalf("dashboard has no Delivery table:\n%s", r.body)
	}
	table := r.body[i:]
	table = table[:strings.Index(table, "</section>")]
	up, aside := e.smtp.Addr(), down.Addr()
	rows := strings.Split(table, "<tr>")
	row := func(name string) string {
		for _, r := range rows {
			if strings.Contains(r, "<code>"+name+"</code>") {
				return r
			}
		}
		t.Fatalf("no row for %s in %s", name, table)
		return ""
	}
	if r := row(up); !strings.Contains(r, ">up<") || !strings.Contains(r, `<td class="num">6</td>`) {
		t.Errorf("the working relay's row: %s", r)
	}
	if r := row(aside); !strings.Contains(r, "set aside") || !strings.Contains(r, "until ") || !strings.Contains(r, `<td class="num">3</td>`) {
		t.Errorf("the refusing relay's row (3 deferred, set aside): %s", r)
	}
}

// TestDashboardShowsWaitingConfirmations: past the hourly budget the
// dashboard says how many confirmations wait, why, and that the challenge
// is on.
func TestDashboardShowsWaitingConfirmations(t *testing.T) {
	e := newEnv(t, envOpts{budget: 1})
	b := e.browser()
	b.login()
	if r := b.get("/admin/"); strings.Contains(r.body, `id="confirmations-waiting"`) {
		t.Fatal("the dashboard shows waiting confirmations before any")
	}
	for i := range 3 {
		res, err := http.Post(e.srv.URL+"/subscribe", "application/x-www-form-urlencoded", strings.NewReader(url.Values{"email": {fmt.Sprintf("r%d@example.org", i)}}.Encode()))
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
	}
	r := b.get("/admin/")
	for _, want := range []string{`id="confirmations-waiting"`, "2 confirmation emails waiting", "security.confirmations_per_hour (1 an hour)", "did not solve the sign-up challenge", `security.challenge = "auto"`} {
		if !strings.Contains(r.body, want) {
			t.Errorf("dashboard lacks %q", want)
		}
	}
}

func TestBuildChart(t *testing.T) {
	now := time.Date(2026, 11, 25, 15, 0, 0, 0, time.UTC)
	day := func(daysAgo int) time.Time { return now.AddDate(0, 0, -daysAgo) }
	times := []time.Time{day(400), day(200), day(89), day(30), day(30), day(0), now.Add(time.Hour)}
	c := buildChart(times, now, 90, false)
	if c.Total != 7 || c.Gained != 5 {
		t.Fatalf("total %d gained %d", c.Total, c.Gained)
	}
	if !strings.HasPrefix(c.Line, "M6.0 ") || strings.Count(c.Line, "L") != 89 {
		t.Fatalf("line: %q", c.Line)
	}
	// The line never falls.
	ys := regexp.MustCompile(`[ML][\d.]+ ([\d.]+)`).FindAllStringSubmatch(c.Line, -1)
	prev := 1e9
	for _, y := range ys {
		v, _ := strconv.ParseFloat(y[1], 64)
		if v > prev {
			t.Fatalf("cumulative line falls: %q", c.Line)
		}
		prev = v
	}
	if c.YTicks[len(c.YTicks)-1].Label != "8" {
		t.Errorf("top tick %q, want 8", c.YTicks[len(c.YTicks)-1].Label)
	}
	empty := buildChart(nil, now, 90, false)
	if empty.Total != 0 || empty.Line == "" {
		t.Fatalf("empty chart: %+v", empty)
	}
	for n, want := range map[int]int{0: 4, 3: 4, 5: 6, 9: 10, 11: 20, 99: 100, 100: 100, 101: 200, 4999: 5000, 120000: 200000} {
		if got := niceCeil(n); got != want {
			t.Errorf("niceCeil(%d) = %d, want %d", n, got, want)
		}
	}
}

// TestSilentPostSentByHand: a post held back by max_age shows why on the
// posts page, and its button mails it after all (it becomes the newest
// post, so an instant reader gets it).
func TestSilentPostSentByHand(t *testing.T) {
	e := newEnv(t, envOpts{})
	e.addConfirmed("reader@example.org", "Reader", "instant")
	held := &herald.Post{
		Feed: "https://blog.example.org/feed/", GUID: "old-1", URL: "https://blog.example.org/old",
		Title: "An old post, moved", PublishedAt: time.Date(2019, 3, 1, 9, 0, 0, 0, time.UTC),
		Silent: true, SilentReason: "max_age: published 2019-03-01 09:00 UTC, first seen 2820d later (max_age 72h0m0s)",
	}
	if _, err := e.db.UpsertPost(context.Background(), held); err != nil {
		t.Fatal(err)
	}
	b := e.browser()
	b.login()
	page := b.get("/admin/posts")
	for _, want := range []string{"Not mailed: max_age: published 2019-03-01 09:00 UTC", `id="send-post-` + fmt.Sprint(held.ID) + `"`} {
		if !strings.Contains(page.body, want) {
			t.Fatalf("posts page lacks %q:\n%s", want, page.body)
		}
	}
	r := b.form(fmt.Sprintf("/admin/posts/%d/send", held.ID), nil)
	if r.status != http.StatusSeeOther {
		t.Fatalf("send = %d %s", r.status, r.body)
	}
	if !strings.Contains(b.get(r.location()).body, "goes out with every reader") {
		t.Error("no confirmation after sending")
	}
	ps, _, _ := e.db.ListPosts(context.Background(), 10, 0)
	if len(ps) != 1 || ps[0].Silent || ps[0].ID == held.ID {
		t.Fatalf("posts after send = %+v", ps)
	}
	msg := e.smtp.WaitFor(t, 1, 10*time.Second)
	if !strings.Contains(string(msg[0].Data), "An old post, moved") {
		t.Fatalf("the instant email is not the post:\n%s", msg[0].Data)
	}
	// Sending a post that is mailed already is refused with the reason.
	r = b.form(fmt.Sprintf("/admin/posts/%d/send", ps[0].ID), nil)
	if !strings.Contains(b.get(r.location()).body, "only a silent post can be sent by hand") {
		t.Error("a second send was not refused")
	}
}

// TestDashboardFeedPushAndSkipped: the dashboard's feed list shows a
// feed's WebSub state and what its last poll left out.
func TestDashboardFeedPushAndSkipped(t *testing.T) {
	e := newEnv(t, envOpts{})
	now := time.Now().UTC()
	err := e.db.PutFeedState(context.Background(), &herald.FeedState{
		URL: "https://blog.example.org/feed/", Initialized: true, LastPoll: now, LastSuccess: now,
		Skipped: []string{`item 3 ("Tags"): 300002 elements, more than the 10000 an item may have`},
		Push:    &herald.PushState{Hub: "https://hub.example/", Topic: "https://blog.example.org/feed/", State: "active"},
	})
	if err != nil {
		t.Fatal(err)
	}
	b := e.browser()
	b.login()
	r := b.get("/admin/")
	for _, want := range []string{"WebSub: active", "Last poll left out 1: item 3 (&#34;Tags&#34;): 300002 elements"} {
		if !strings.Contains(r.body, want) {
			t.Errorf("dashboard lacks %q", want)
		}
	}
}

// A subscriber's page shows and changes topics and time zone through the
// PATCH, and pauses and resumes the reader; a bad zone is shown again
// with the message, and changes nothing.
func TestSubscriberPageTopicsZonePause(t *testing.T) {
	e := newEnv(t, envOpts{topics: []string{"Prisons", "Courts"}})
	e.clock.Add(time.Since(e.clock.Now())) // the pause is counted from the server's now
	if r := e.api(http.MethodPost, "/api/v1/subscribers", `{"email":"zoe@example.org","frequency":"daily","confirmed":true,"topics":["courts"],"timezone":"Asia/Kolkata"}`); r.status != http.StatusCreated {
		t.Fatalf("add: %d %s", r.status, r.body)
	}
	b := e.browser()
	b.login()
	page := "/admin/subscribers/zoe@example.org"
	r := b.get(page)
	for _, want := range []string{`id="sub-topics">Courts</dd>`, `id="sub-timezone">Asia/Kolkata</dd>`,
		`value="Courts" checked>`, `value="Prisons"> Prisons`, `id="sub-tz" name="timezone" value="Asia/Kolkata"`, `name="weeks" value="2"`} {
		if !strings.Contains(r.body, want) {
			t.Fatalf("the page lacks %q:\n%s", want, r.body)
		}
	}
	get := func() *herald.Subscriber {
		s, err := e.db.SubscriberByEmail(context.Background(), "zoe@example.org")
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	r = b.form(page, url.Values{"name": {"Zoe"}, "frequency": {"weekly"}, "topics": {"Prisons"}, "timezone": {"America/New_York"}})
	if r.status != http.StatusSeeOther {
		t.Fatalf("save: %d %s", r.status, r.body)
	}
	if s := get(); s.Frequency != herald.Weekly || !slices.Equal(s.Topics, herald.TopicList{"Prisons"}) || s.Timezone != "America/New_York" {
		t.Fatalf("after the save: %+v", s)
	}
	// A made-up zone: 422, the form as sent, nothing changed.
	r = b.form(page, url.Values{"name": {"Zoe"}, "frequency": {"daily"}, "topics": {"Courts"}, "timezone": {"Mars/Olympus"}})
	if r.status != http.StatusUnprocessableEntity || !strings.Contains(r.body, `id="edit-error"`) || !strings.Contains(r.body, `value="Mars/Olympus"`) || !strings.Contains(r.body, `value="Courts" checked>`) {
		t.Fatalf("a bad zone: %d\n%s", r.status, r.body)
	}
	if s := get(); s.Frequency != herald.Weekly || s.Timezone != "America/New_York" {
		t.Fatalf("a refused save changed the reader: %+v", s)
	}
	// None ticked: every post; no zone: the site's.
	if r = b.form(page, url.Values{"name": {"Zoe"}, "frequency": {"weekly"}}); r.status != http.StatusSeeOther {
		t.Fatalf("clear: %d %s", r.status, r.body)
	}
	if s := get(); len(s.Topics) != 0 || s.Timezone != "" {
		t.Fatalf("cleared: %+v", s)
	}

	if r = b.form(page+"/pause", url.Values{"weeks": {"3"}}); r.status != http.StatusSeeOther || get().PausedUntil != nil {
		t.Fatalf("a pause not offered: %d %+v", r.status, get())
	}
	before := time.Now()
	if r = b.form(page+"/pause", url.Values{"weeks": {"2"}}); r.status != http.StatusSeeOther {
		t.Fatalf("pause: %d %s", r.status, r.body)
	}
	s := get()
	if !s.Paused(time.Now()) || s.PausedUntil.Before(before.Add(14*24*time.Hour-time.Minute)) || s.PausedUntil.After(time.Now().Add(14*24*time.Hour+time.Minute)) {
		t.Fatalf("paused until %v, want two weeks ahead", s.PausedUntil)
	}
	r = b.get(page)
	if !strings.Contains(r.body, "is paused until") || !strings.Contains(r.body, `id="sub-paused"`) || !strings.Contains(r.body, `id="resume"`) {
		t.Fatalf("the paused reader's page:\n%s", r.body)
	}
	if r = b.form(page+"/pause", url.Values{}); r.status != http.StatusSeeOther || get().Paused(time.Now()) {
		t.Fatalf("resume: %d %+v", r.status, get())
	}
	if r = b.get(page); !strings.Contains(r.body, "resumes now") || strings.Contains(r.body, `id="sub-paused"`) {
		t.Fatalf("after resuming:\n%s", r.body)
	}
}
