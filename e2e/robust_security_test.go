package e2e

import (
	"bytes"
	"encoding/base64"
	bin "encoding/binary"
	"fmt"
	"mime/multipart"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/mux"

	"github.com/herald-dev/herald/internal/smtptest"
	"github.com/herald-dev/herald/internal/testenv"
	"github.com/herald-dev/herald/internal/testmail"
)

// adminRoute is one method and path that needs the admin token.
type adminRoute struct{ method, path string }

// adminRoutes enumerates the admin routes from the router itself (the
// handler of a whole herald in this process registers every route), so a
// route added later is covered without touching this test.
func adminRoutes(t *testing.T) []adminRoute {
	t.Helper()
	app := testenv.New(t, testenv.Options{AdminToken: "enumerate-routes-only", Archive: true})
	var out []adminRoute
	err := app.Handler.Router().Walk(func(route *mux.Route, _ *mux.Router, _ []*mux.Route) error {
		tpl, err := route.GetPathTemplate()
		if err != nil {
			return nil
		}
		methods, err := route.GetMethods()
		if err != nil {
			return nil // a subrouter's prefix, not a route
		}
		if !strings.HasPrefix(tpl, "/api/") && tpl != "/metrics" && !strings.HasPrefix(tpl, "/debug/") {
			return nil
		}
		path := strings.NewReplacer("{email}", "r00001@example.org", "{id}", "1").Replace(tpl)
		if strings.HasSuffix(path, "/") {
			path += "heap" // a prefix route: any name under it
		}
		for _, m := range methods {
			out = append(out, adminRoute{m, path})
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(out) < 20 {
		t.Fatalf("only %d admin routes found: %v", len(out), out)
	}
	return out
}

// adminUIRoutes reads the admin UI's routes from its source: it is an
// http.ServeMux, which cannot be walked.
func adminUIRoutes(t *testing.T) []adminRoute {
	t.Helper()
	src, err := os.ReadFile("../adminui/ui.go")
	if err != nil {
		t.Fatal(err)
	}
	var out []adminRoute
	for _, m := range regexp.MustCompile(`m\.Handle(?:Func)?\("(GET|POST) (/admin[^"]*)"`).FindAllStringSubmatch(string(src), -1) {
		path := strings.NewReplacer("{$}", "", "{id}", "1").Replace(m[2])
		out = append(out, adminRoute{m[1], path})
		if m[2] == "/admin/runs/{id}" {
			out = append(out, adminRoute{"GET", "/admin/runs/1.json"})
		}
	}
	out = append(out, adminRoute{"GET", "/admin/no-such-page"}, adminRoute{"POST", "/admin/no-such-page"})
	if len(out) < 15 {
		t.Fatalf("only %d admin UI routes found in adminui/ui.go", len(out))
	}
	return out
}

// TestRobustSecurity checks, over HTTP against the built binary:
//   - every admin API route (enumerated from the router), /metrics and
//     /debug/pprof answer 401 without the token, with a wrong one or
//     another scheme, and 403 when admin is disabled; other methods on
//     those paths 401 or 405; no answer leaks a reader's data;
//   - every admin UI route (read from adminui/ui.go) sends a visitor
//     without a session to the login form (303; 401 for .json), ignores
//     the API's bearer token, and answers 403 when admin is disabled;
//   - CSRF: the login form and every admin UI form refuse a POST without
//     the session's token, with a wrong one, and with another session's
//     (403, and nothing changes); session cookies are HttpOnly and
//     SameSite=Strict;
//   - tokens: one reader's token never acts on another reader (a token
//     re-signed for another id, altered, or from another herald fails),
//     and tokens of one purpose never work for another (confirm,
//     unsubscribe, preferences, data download);
//   - every response carries X-Content-Type-Options: nosniff and a
//     Referrer-Policy; pages carry a CSP with default-src 'none' and
//     frame-ancestors 'none', and each inline script and style has the
//     CSP's nonce.
func TestRobustSecurity(t *testing.T) {
	sm := smtptest.Start(t)
	in := newInstance(t, robustConfig(sm.Port(), "warn", "[mail]\nretry_backoff = \"200ms\""))
	p := in.start()
	defer p.stop()
	smOff := smtptest.Start(t)
	off := newInstance(t, strings.Replace(robustConfig(smOff.Port(), "warn"), `token = "`+adminToken+`"`, `token = ""`, 1))
	pOff := off.start()
	defer pOff.stop()
	in.importReaders(3, "example.org", "daily")
	checks := map[string]int{}

	// Admin API, /metrics, /debug/pprof.
	routes := adminRoutes(t)
	paths := map[string]bool{}
	for _, rt := range routes {
		paths[rt.path] = true
		for _, c := range []struct {
			name string
			hdr  []string
		}{
			{"no token", nil},
			{"wrong token", []string{"Authorization", "Bearer wrong-token-0123456789"}},
			{"token with a suffix", []string{"Authorization", "Bearer " + adminToken + "x"}},
			{"basic scheme", []string{"Authorization", "Basic " + base64.StdEncoding.EncodeToString([]byte("admin:"+adminToken))}},
			{"token in the query", nil},
		} {
			path := rt.path
			if c.name == "token in the query" {
				path += "?token=" + adminToken
			}
			r := in.do(rt.method, path, "application/json", `{}`, c.hdr...)
			checks["admin API 401"]++
			if r.Status != 401 {
				t.Errorf("%s %s with %s: %d, want 401", rt.method, path, c.name, r.Status)
			} else if r.Header.Get("WWW-Authenticate") == "" {
				t.Errorf("%s %s: 401 without WWW-Authenticate", rt.method, path)
			}
			noLeak(t, r, rt.method+" "+path)
		}
		for _, hdr := range [][]string{nil, {"Authorization", "Bearer " + adminToken}} {
			r := off.do(rt.method, rt.path, "application/json", `{}`, hdr...)
			checks["admin API 403 when disabled"]++
			if r.Status != 403 {
				t.Errorf("disabled admin: %s %s: %d, want 403", rt.method, rt.path, r.Status)
			}
			noLeak(t, r, rt.method+" "+rt.path)
		}
	}
	for path := range paths {
		for _, m := range []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"} {
			r := in.do(m, path, "application/json", `{}`)
			checks["admin API other methods"]++
			if r.Status != 401 && r.Status != 405 {
				t.Errorf("%s %s without a token: %d, want 401 or 405", m, path, r.Status)
			}
			noLeak(t, r, m+" "+path)
		}
	}
	// The token does work (the 401s are about the token, not the route).
	if r := in.api("GET", "/api/v1/stats", ""); r.Status != 200 {
		t.Fatalf("stats with the token: %d", r.Status)
	}

	// Admin UI without a session.
	uiRoutes := adminUIRoutes(t)
	for _, rt := range uiRoutes {
		for _, hdr := range [][]string{nil, {"Authorization", "Bearer " + adminToken}} {
			r := in.do(rt.method, rt.path, "application/x-www-form-urlencoded", "email=x%40example.org", hdr...)
			checks["admin UI without a session"]++
			switch {
			case rt.path == "/admin/login":
				if (rt.method == "GET" && r.Status != 200) || (rt.method == "POST" && r.Status != 403) {
					t.Errorf("%s /admin/login without a session: %d", rt.method, r.Status)
				}
			case rt.path == "/admin":
				if r.Status != 303 || r.Header.Get("Location") != "/admin/" {
					t.Errorf("GET /admin: %d %s", r.Status, r.Header.Get("Location"))
				}
			case strings.HasSuffix(rt.path, ".json"):
				if r.Status != 401 {
					t.Errorf("%s %s without a session: %d, want 401", rt.method, rt.path, r.Status)
				}
			default:
				if r.Status != 303 || !strings.HasPrefix(r.Header.Get("Location"), "/admin/login") {
					t.Errorf("%s %s without a session: %d to %q, want 303 to /admin/login", rt.method, rt.path, r.Status, r.Header.Get("Location"))
				}
			}
			if rt.path != "/admin/login" {
				noLeak(t, r, rt.method+" "+rt.path)
			}
		}
		r := off.do(rt.method, rt.path, "application/x-www-form-urlencoded", "")
		checks["admin UI 403 when disabled"]++
		if r.Status != 403 {
			t.Errorf("disabled admin UI: %s %s: %d, want 403", rt.method, rt.path, r.Status)
		}
	}

	// CSRF.
	csrfRe := regexp.MustCompile(`name="csrf" value="([^"]+)"`)
	login := func() (session, csrf string) {
		t.Helper()
		page := in.do("GET", "/admin/login", "", "")
		lc := cookieNamed(page, "herald_admin_login")
		m := csrfRe.FindStringSubmatch(page.Body)
		if lc == nil || m == nil {
			t.Fatalf("login page without its CSRF cookie or field: %d", page.Status)
		}
		// One character changed (never to itself: a token ending in "0"
		// must not be "changed" into the same token).
		last := "0"
		if strings.HasSuffix(m[1], "0") {
			last = "1"
		}
		for _, bad := range []string{"", "0123456789abcdef", m[1][:len(m[1])-1] + last} {
			r := in.do("POST", "/admin/login", "application/x-www-form-urlencoded",
				form(map[string]string{"token": adminToken, "csrf": bad}), "Cookie", lc.Name+"="+lc.Value)
			checks["CSRF refused"]++
			if r.Status != 403 || cookieNamed(r, "herald_admin") != nil {
				t.Errorf("login with csrf %q: %d", bad, r.Status)
			}
		}
		r := in.do("POST", "/admin/login", "application/x-www-form-urlencoded",
			form(map[string]string{"token": adminToken, "csrf": m[1]}), "Cookie", lc.Name+"="+lc.Value)
		sc := cookieNamed(r, "herald_admin")
		if r.Status != 303 || sc == nil {
			t.Fatalf("login: %d", r.Status)
		}
		if !sc.HttpOnly || sc.SameSite != http.SameSiteStrictMode {
			t.Errorf("session cookie: HttpOnly %v SameSite %v", sc.HttpOnly, sc.SameSite)
		}
		checks["cookie flags"]++
		page = in.do("GET", "/admin/subscribers", "", "", "Cookie", "herald_admin="+sc.Value)
		m = csrfRe.FindStringSubmatch(page.Body)
		if page.Status != 200 || m == nil {
			t.Fatalf("subscribers page after login: %d", page.Status)
		}
		return sc.Value, m[1]
	}
	sess1, csrf1 := login()
	_, csrf2 := login()
	cookie := "herald_admin=" + sess1
	runsBefore := in.api("GET", "/api/v1/runs", "").Body
	for _, rt := range uiRoutes {
		if rt.method != "POST" || rt.path == "/admin/login" || rt.path == "/admin/no-such-page" {
			continue
		}
		for _, tok := range []string{"", "wrong", csrf2, strings.ToUpper(csrf1)} {
			body := form(map[string]string{"csrf": tok, "email": "csrf@example.org", "frequency": "daily", "to": "csrf@example.org", "confirm": "csrf@example.org"})
			ct := "application/x-www-form-urlencoded"
			if rt.path == "/admin/subscribers/import" {
				ct, body = multipartImport(tok)
			}
			r := in.do("POST", rt.path, ct, body, "Cookie", cookie)
			checks["CSRF refused"]++
			if r.Status != 403 {
				t.Errorf("POST %s with csrf %q: %d, want 403", rt.path, tok, r.Status)
			}
		}
	}
	if r := in.api("GET", "/api/v1/subscribers/csrf%40example.org", ""); r.Status != 404 {
		t.Errorf("a refused form still added the subscriber: %d", r.Status)
	}
	if in.api("GET", "/api/v1/runs", "").Body != runsBefore {
		t.Errorf("a refused form still started a run")
	}
	if r := in.do("GET", "/admin/", "", "", "Cookie", cookie); r.Status != 200 {
		t.Errorf("a refused logout still ended the session: %d", r.Status)
	}
	// And the right token works.
	r := in.do("POST", "/admin/subscribers", "application/x-www-form-urlencoded",
		form(map[string]string{"csrf": csrf1, "email": "csrf@example.org", "frequency": "daily", "confirmed": "1"}), "Cookie", cookie)
	if r.Status >= 400 || in.status("csrf@example.org") != "confirmed" {
		t.Errorf("POST /admin/subscribers with the session's CSRF token: %d", r.Status)
	}

	// Tokens: readers A, B (confirmed) and C (pending), signed up through the form.
	sm.Reset()
	for _, e := range []string{"alice@example.net", "bob@example.net", "carol@example.net"} {
		if r := in.do("POST", "/subscribe", "application/x-www-form-urlencoded", form(map[string]string{"email": e})); r.Status != 303 {
			t.Fatalf("subscribe %s: %d", e, r.Status)
		}
	}
	type links struct{ confirm, unsub, prefs string }
	tok := map[string]*links{}
	for _, m := range sm.WaitFor(t, 3, 20*time.Second) {
		tok[m.To[0]] = &links{confirm: tokenOf(testmail.MustParse(t, m.Data).Link("/confirm?token="))}
	}
	for _, e := range []string{"alice@example.net", "bob@example.net"} {
		if r := in.do("POST", "/confirm", "application/x-www-form-urlencoded", "token="+tok[e].confirm); r.Status != 200 {
			t.Fatalf("confirm %s: %d", e, r.Status)
		}
	}
	for _, m := range sm.WaitFor(t, 5, 20*time.Second)[3:] {
		w := testmail.MustParse(t, m.Data)
		tok[m.To[0]].unsub = tokenOf(strings.Trim(w.Header.Get("List-Unsubscribe"), "<>"))
		tok[m.To[0]].prefs = tokenOf(w.Link("/preferences?token="))
	}
	a, b, c := tok["alice@example.net"], tok["bob@example.net"], tok["carol@example.net"]
	if a.unsub == "" || a.prefs == "" || b.unsub == "" || b.prefs == "" {
		t.Fatalf("welcome emails without links: %+v %+v", a, b)
	}
	idOf := func(email string) uint64 {
		v, _ := in.subscriber(email)["id"].(float64)
		return uint64(v)
	}
	forged := func(token string, id uint64) string {
		raw, err := base64.RawURLEncoding.DecodeString(token)
		if err != nil || len(raw) < 9 {
			t.Fatalf("token %q does not decode", token)
		}
		bin.BigEndian.PutUint64(raw[1:9], id)
		return base64.RawURLEncoding.EncodeToString(raw)
	}
	flip := func(token string) string {
		b := []byte(token)
		if b[len(b)/2] == 'A' {
			b[len(b)/2] = 'B'
		} else {
			b[len(b)/2] = 'A'
		}
		return string(b)
	}
	// The other herald signs with its own secret.
	if r := off.do("POST", "/subscribe", "application/x-www-form-urlencoded", form(map[string]string{"email": "alice@example.net"})); r.Status != 303 {
		t.Fatalf("subscribe on the other herald: %d", r.Status)
	}
	foreign := tokenOf(testmail.MustParse(t, smOff.WaitFor(t, 1, 20*time.Second)[0].Data).Link("/confirm?token="))

	type attempt struct {
		name, method, path, body string
	}
	var bad []attempt
	for _, x := range []struct{ name, token string }{
		{"A's unsubscribe token", a.unsub}, {"A's preferences token", a.prefs},
		{"A's confirm token re-signed for C", forged(a.confirm, idOf("carol@example.net"))},
		{"C's confirm token altered", flip(c.confirm)}, {"C's confirm token cut short", c.confirm[:len(c.confirm)-2]},
		{"a confirm token of another herald", foreign},
	} {
		bad = append(bad, attempt{"confirm with " + x.name, "POST", "/confirm", "token=" + url.QueryEscape(x.token)},
			attempt{"confirm page with " + x.name, "GET", "/confirm?token=" + url.QueryEscape(x.token), ""})
	}
	for _, x := range []struct{ name, token string }{
		{"A's confirm token", a.confirm}, {"A's preferences token", a.prefs},
		{"A's unsubscribe token re-signed for B", forged(a.unsub, idOf("bob@example.net"))},
		{"B's unsubscribe token altered", flip(b.unsub)}, {"a confirm token of another herald", foreign},
	} {
		q := url.QueryEscape(x.token)
		bad = append(bad, attempt{"unsubscribe with " + x.name, "POST", "/unsubscribe?token=" + q, "List-Unsubscribe=One-Click"},
			attempt{"unsubscribe form with " + x.name, "POST", "/unsubscribe", "token=" + q},
			attempt{"unsubscribe page with " + x.name, "GET", "/unsubscribe?token=" + q, ""})
	}
	for _, x := range []struct{ name, token string }{
		{"A's confirm token", a.confirm}, {"A's unsubscribe token", a.unsub},
		{"A's preferences token re-signed for B", forged(a.prefs, idOf("bob@example.net"))},
		{"B's preferences token altered", flip(b.prefs)},
	} {
		q := url.QueryEscape(x.token)
		bad = append(bad, attempt{"preferences page with " + x.name, "GET", "/preferences?token=" + q, ""},
			attempt{"preferences save with " + x.name, "POST", "/preferences", "action=save&frequency=weekly&token=" + q},
			attempt{"preferences unsubscribe with " + x.name, "POST", "/preferences", "action=unsubscribe&token=" + q},
			attempt{"data download with " + x.name, "GET", "/preferences/data?token=" + q, ""})
	}
	for _, x := range bad {
		r := in.do(x.method, x.path, "application/x-www-form-urlencoded", x.body)
		checks["token misuse refused"]++
		if r.Status != 400 {
			t.Errorf("%s: %d, want 400", x.name, r.Status)
		}
		for _, e := range []string{"alice@example.net", "bob@example.net", "carol@example.net"} {
			if strings.Contains(r.Body, e) {
				t.Errorf("%s: the answer names %s", x.name, e)
			}
		}
	}
	for e, want := range map[string]string{"alice@example.net": "confirmed", "bob@example.net": "confirmed", "carol@example.net": "pending"} {
		s := in.subscriber(e)
		if s["status"] != want || s["frequency"] != "daily" {
			t.Errorf("%s after the misuse: %v %v, want %s daily", e, s["status"], s["frequency"], want)
		}
	}
	// A's own tokens act on A alone, whatever else the request carries.
	if r := in.do("GET", "/preferences/data?token="+url.QueryEscape(a.prefs), "", ""); r.Status != 200 || !strings.Contains(r.Body, "alice@example.net") || strings.Contains(r.Body, "bob@") {
		t.Errorf("A's data download: %d", r.Status)
	}
	if r := in.do("POST", "/unsubscribe?token="+url.QueryEscape(a.unsub), "application/x-www-form-urlencoded", "token="+url.QueryEscape(b.unsub), "Sec-Fetch-Mode", "navigate"); r.Status != 303 || r.Header.Get("Location") != "/unsubscribe?token="+url.QueryEscape(a.unsub) {
		t.Errorf("A's unsubscribe with B's token in the form: %d %q", r.Status, r.Header.Get("Location"))
	}
	if in.status("alice@example.net") != "unsubscribed" || in.status("bob@example.net") != "confirmed" {
		t.Errorf("after A's unsubscribe: A %s, B %s", in.status("alice@example.net"), in.status("bob@example.net"))
	}
	checks["token misuse refused"] += 2

	// Security headers.
	nonceRe := regexp.MustCompile(`'nonce-([^']+)'`)
	tagRe := regexp.MustCompile(`<(script|style)\b[^>]*>`)
	type probe struct {
		method, path, ct, body string
		hdr                    []string
	}
	probes := []probe{
		{"GET", "/", "", "", nil}, {"GET", "/subscribe", "", "", nil}, {"GET", "/subscribe/check-email", "", "", nil},
		{"POST", "/subscribe", "application/x-www-form-urlencoded", "email=not-an-address", nil},
		{"POST", "/subscribe", "application/json", `{"email":"x"}`, nil},
		{"GET", "/confirm?token=" + url.QueryEscape(c.confirm), "", "", nil}, {"GET", "/confirm?token=bad", "", "", nil},
		{"GET", "/unsubscribe?token=" + url.QueryEscape(b.unsub), "", "", nil}, {"GET", "/preferences?token=" + url.QueryEscape(b.prefs), "", "", nil},
		{"GET", "/preferences/data?token=" + url.QueryEscape(b.prefs), "", "", nil},
		{"GET", "/archive", "", "", nil}, {"GET", "/archive.xml", "", "", nil}, {"GET", "/no-such-page", "", "", nil},
		{"GET", "/healthz", "", "", nil}, {"GET", "/api/v1/stats", "", "", nil},
		{"GET", "/api/v1/stats", "", "", []string{"Authorization", "Bearer " + adminToken}},
		{"GET", "/metrics", "", "", []string{"Authorization", "Bearer " + adminToken}},
		{"GET", "/admin/login", "", "", nil}, {"GET", "/admin/", "", "", []string{"Cookie", cookie}},
		{"GET", "/admin/subscribers", "", "", []string{"Cookie", cookie}}, {"GET", "/admin/runs", "", "", []string{"Cookie", cookie}},
	}
	pages := 0
	for _, pr := range probes {
		r := in.do(pr.method, pr.path, pr.ct, pr.body, pr.hdr...)
		name := fmt.Sprintf("%s %s (%d)", pr.method, pr.path, r.Status)
		checks["security headers"]++
		if r.Header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("%s: X-Content-Type-Options %q", name, r.Header.Get("X-Content-Type-Options"))
		}
		if rp := r.Header.Get("Referrer-Policy"); rp != "no-referrer" && rp != "same-origin" && rp != "strict-origin-when-cross-origin" {
			t.Errorf("%s: Referrer-Policy %q", name, rp)
		}
		if !strings.HasPrefix(r.Header.Get("Content-Type"), "text/html") {
			continue
		}
		pages++
		csp := r.Header.Get("Content-Security-Policy")
		if !strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "frame-ancestors 'none'") || strings.Contains(csp, "unsafe-inline") {
			t.Errorf("%s: CSP %q", name, csp)
		}
		nm := nonceRe.FindStringSubmatch(csp)
		for _, tag := range tagRe.FindAllString(r.Body, -1) {
			if nm == nil || !strings.Contains(tag, `nonce="`+nm[1]+`"`) {
				t.Errorf("%s: %s without the CSP nonce", name, tag)
			}
		}
	}
	names := make([]string, 0, len(checks))
	total := 0
	for k, n := range checks {
		names = append(names, fmt.Sprintf("%s %d", k, n))
		total += n
	}
	sort.Strings(names)
	t.Logf("FIGURES security: %d admin API routes (method, path) from the router, %d admin UI routes from adminui/ui.go, %d token misuse attempts, %d responses probed for headers (%d pages with CSP); %d checks: %s",
		len(routes), len(uiRoutes), checks["token misuse refused"], len(probes), pages, total, strings.Join(names, ", "))
}

// noLeak fails when an answer to an unauthenticated request carries
// anything of a reader's.
func noLeak(t *testing.T, r response, what string) {
	t.Helper()
	if strings.Contains(r.Body, "@example.org") || strings.Contains(r.Body, "@example.net") {
		t.Errorf("%s: the answer leaks an address: %.200s", what, r.Body)
	}
	if r.Status >= 200 && r.Status < 300 {
		t.Errorf("%s: %d without authorization", what, r.Status)
	}
}

func cookieNamed(r response, name string) *http.Cookie {
	for _, c := range (&http.Response{Header: r.Header}).Cookies() {
		if c.Name == name && c.Value != "" {
			return c
		}
	}
	return nil
}

// tokenOf takes the token parameter out of a link.
func tokenOf(link string) string {
	u, err := url.Parse(link)
	if err != nil {
		return ""
	}
	return u.Query().Get("token")
}

// multipartImport is the admin UI's import form with the given CSRF token.
func multipartImport(csrf string) (string, string) {
	var buf bytes.Buffer
	w := multipart.NewWriter(&buf)
	_ = w.WriteField("csrf", csrf)
	f, _ := w.CreateFormFile("file", "readers.csv")
	_, _ = f.Write([]byte("email\ncsrf@example.org\n"))
	_ = w.Close()
	return w.FormDataContentType(), buf.String()
}
