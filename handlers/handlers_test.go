package handlers_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/herald-dev/herald"
	"github.com/herald-dev/herald/handlers"
	"github.com/herald-dev/herald/internal/smtptest"
	"github.com/herald-dev/herald/internal/testmail"
	"github.com/herald-dev/herald/mailer"
	"github.com/herald-dev/herald/store"
	"github.com/herald-dev/herald/subscription"
	"github.com/herald-dev/herald/templates"
)

const adminToken = "test-admin-token-0123456789"

type env struct {
	t    *testing.T
	db   *store.DB
	smtp *smtptest.Server
	srv  *httptest.Server
	subs *subscription.Service
}

type envOpts struct {
	perIP      handlers.Rate
	adminToken string
}

func newEnv(t *testing.T, o envOpts) *env {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	log := slog.New(slog.DiscardHandler)
	db, err := store.Open(ctx, filepath.Join(t.TempDir(), "herald.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	sm := smtptest.Start(t)
	tr := mailer.NewSMTPTransport(mailer.SMTPConfig{Host: sm.Host(), Port: sm.Port(), TLS: "none", Connections: 2, Timeout: 5 * time.Second}, log)
	sender := mailer.NewSender(db, tr, mailer.SenderOptions{Logger: log, EnvelopeFrom: "digest@example.org", BaseBackoff: 50 * time.Millisecond, PollInterval: 100 * time.Millisecond})
	done := make(chan struct{})
	go func() { defer close(done); _ = sender.Run(ctx) }()
	tpl, err := templates.Load()
	if err != nil {
		t.Fatal(err)
	}
	secret, _ := subscription.LoadSecret(ctx, db, "")
	tokens, _ := subscription.NewTokens(secret, nil)
	subs, err := subscription.New(db, tokens, tpl, subscription.Options{
		SiteName: "Test Blog", SiteURL: "https://blog.example.org", BaseURL: "http://herald.test",
		From: "Test Blog <digest@example.org>", PerAddressN: 3, PerAddressWindow: 24 * time.Hour,
		Welcome: true, Enqueued: sender.Notify,
	})
	if err != nil {
		t.Fatal(err)
	}
	h := handlers.New(handlers.Options{
		SiteName: "Test Blog", SiteURL: "https://blog.example.org", BaseURL: "http://herald.test",
		AdminToken: o.adminToken, SubscribePerIP: o.perIP, Logger: log,
	}, handlers.Deps{Subs: subs, Store: db, Templates: tpl, Health: db.Ping})
	srv := httptest.NewServer(h)
	t.Cleanup(func() {
		srv.Close()
		cancel()
		<-done
		tr.Close()
		db.Close()
	})
	return &env{t: t, db: db, smtp: sm, srv: srv, subs: subs}
}

var noRedirect = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

type resp struct {
	status int
	header http.Header
	body   string
}

func (e *env) do(method, path, contentType, body string, hdr ...string) resp {
	e.t.Helper()
	req, err := http.NewRequest(method, e.srv.URL+path, strings.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := noRedirect.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return resp{res.StatusCode, res.Header, string(b)}
}

func (e *env) form(path string, vals url.Values) resp {
	return e.do(http.MethodPost, path, "application/x-www-form-urlencoded", vals.Encode())
}

func (e *env) status(email string) herald.Status {
	e.t.Helper()
	s, err := e.db.SubscriberByEmail(context.Background(), email)
	if err != nil {
		e.t.Fatalf("subscriber %s: %v", email, err)
	}
	return s.Status
}

func tokenOf(t *testing.T, link string) string {
	t.Helper()
	u, err := url.Parse(link)
	if err != nil {
		t.Fatal(err)
	}
	return u.Query().Get("token")
}

func TestSubscribeFlowOverHTTPAndSMTP(t *testing.T) {
	e := newEnv(t, envOpts{})
	r := e.form("/subscribe", url.Values{"email": {"reader@example.org"}, "name": {"Reader"}, "frequency": {"weekly"}})
	if r.status != http.StatusSeeOther || r.header.Get("Location") != "/subscribe/check-email" {
		t.Fatalf("POST /subscribe: %d %s", r.status, r.header.Get("Location"))
	}
	msgs := e.smtp.WaitFor(t, 1, 10*time.Second)
	if msgs[0].To[0] != "reader@example.org" {
		t.Fatalf("confirmation went to %v", msgs[0].To)
	}
	p := testmail.MustParse(t, msgs[0].Data)
	if !strings.HasSuffix(p.Header.Get("Message-Id"), "@example.org>") || p.Header.Get("Date") == "" || p.Header.Get("Mime-Version") != "1.0" {
		t.Errorf("headers: %v", p.Header)
	}
	link := p.Link("/confirm?token=")
	if !strings.HasPrefix(link, "http://herald.test/confirm?token=") {
		t.Fatalf("confirm link %q", link)
	}
	path := strings.TrimPrefix(link, "http://herald.test")

	// GET changes nothing: a mail scanner may have followed it.
	for i := 0; i < 3; i++ {
		g := e.do(http.MethodGet, path, "", "")
		if g.status != http.StatusOK || !strings.Contains(g.body, `name="token"`) || !strings.Contains(g.body, "<script nonce=") {
			t.Fatalf("GET confirm: %d\n%s", g.status, g.body)
		}
	}
	if st := e.status("reader@example.org"); st != herald.StatusPending {
		t.Fatalf("GET /confirm changed the status to %s", st)
	}
	c := e.form("/confirm", url.Values{"token": {tokenOf(t, link)}})
	if c.status != http.StatusOK || !strings.Contains(c.body, "You're subscribed") && !strings.Contains(c.body, "You&#39;re subscribed") {
		t.Fatalf("POST /confirm: %d\n%s", c.status, c.body)
	}
	if st := e.status("reader@example.org"); st != herald.StatusConfirmed {
		t.Fatalf("after confirm: %s", st)
	}
	// Idempotent.
	if c2 := e.form("/confirm", url.Values{"token": {tokenOf(t, link)}}); c2.status != http.StatusOK {
		t.Fatalf("second POST /confirm: %d", c2.status)
	}
	// The welcome email carries the one-click headers.
	msgs = e.smtp.WaitFor(t, 2, 10*time.Second)
	w := testmail.MustParse(t, msgs[1].Data)
	lu := w.Header.Get("List-Unsubscribe")
	if w.Header.Get("List-Unsubscribe-Post") != "List-Unsubscribe=One-Click" || !strings.HasPrefix(lu, "<http://herald.test/unsubscribe?token=") {
		t.Fatalf("welcome headers: %q %q", lu, w.Header.Get("List-Unsubscribe-Post"))
	}
	unsubPath := strings.TrimPrefix(strings.Trim(lu, "<>"), "http://herald.test")

	// The unsubscribe page changes nothing; the RFC 8058 POST does, with no
	// cookie, no auth and no redirect.
	if g := e.do(http.MethodGet, unsubPath, "", ""); g.status != http.StatusOK || !strings.Contains(g.body, "Unsubscribe") {
		t.Fatalf("GET unsubscribe: %d", g.status)
	}
	if st := e.status("reader@example.org"); st != herald.StatusConfirmed {
		t.Fatalf("GET /unsubscribe changed the status to %s", st)
	}
	u := e.do(http.MethodPost, unsubPath, "application/x-www-form-urlencoded", "List-Unsubscribe=One-Click")
	if u.status != http.StatusOK {
		t.Fatalf("one-click: %d %s", u.status, u.body)
	}
	if st := e.status("reader@example.org"); st != herald.StatusUnsubscribed {
		t.Fatalf("after one-click: %s", st)
	}
	if u2 := e.do(http.MethodPost, unsubPath, "application/x-www-form-urlencoded", "List-Unsubscribe=One-Click"); u2.status != http.StatusOK {
		t.Fatalf("second one-click: %d", u2.status)
	}
	// Re-subscribing works: a fresh opt-in with a fresh email.
	if r := e.form("/subscribe", url.Values{"email": {"reader@example.org"}}); r.status != http.StatusSeeOther {
		t.Fatalf("re-subscribe: %d", r.status)
	}
	msgs = e.smtp.WaitFor(t, 3, 10*time.Second)
	if st := e.status("reader@example.org"); st != herald.StatusPending {
		t.Fatalf("re-subscribe status %s", st)
	}
	if c := e.form("/confirm", url.Values{"token": {tokenOf(t, link)}}); c.status != http.StatusBadRequest {
		t.Fatalf("the first sign-up's link still works: %d", c.status)
	}
	p3 := testmail.MustParse(t, msgs[2].Data)
	if c := e.form("/confirm", url.Values{"token": {tokenOf(t, p3.Link("/confirm?token="))}}); c.status != http.StatusOK {
		t.Fatalf("new link: %d", c.status)
	}
}

func TestPreferencesPage(t *testing.T) {
	e := newEnv(t, envOpts{})
	sub, err := e.subs.Subscribe(context.Background(), herald.SubscribeRequest{Email: "pref@example.org", Confirmed: true})
	if err != nil {
		t.Fatal(err)
	}
	tok := e.subs.ManageToken(sub.ID)
	g := e.do(http.MethodGet, "/preferences?token="+tok, "", "")
	if g.status != http.StatusOK || !strings.Contains(g.body, "pref@example.org") {
		t.Fatalf("GET preferences: %d", g.status)
	}
	r := e.form("/preferences", url.Values{"token": {tok}, "frequency": {"instant"}, "action": {"save"}})
	if r.status != http.StatusSeeOther {
		t.Fatalf("save: %d %s", r.status, r.body)
	}
	s, _ := e.db.SubscriberByEmail(context.Background(), "pref@example.org")
	if s.Frequency != herald.Instant {
		t.Fatalf("frequency %s", s.Frequency)
	}
	if r := e.form("/preferences", url.Values{"token": {tok}, "frequency": {"hourly"}}); r.status != http.StatusUnprocessableEntity {
		t.Fatalf("bad frequency: %d", r.status)
	}
	if r := e.form("/preferences", url.Values{"token": {tok}, "action": {"unsubscribe"}}); r.status != http.StatusOK {
		t.Fatalf("unsubscribe from preferences: %d", r.status)
	}
	if st := e.status("pref@example.org"); st != herald.StatusUnsubscribed {
		t.Fatalf("status %s", st)
	}
}

// The answer is the same for a new, a pending and a confirmed address.
func TestNoEnumeration(t *testing.T) {
	e := newEnv(t, envOpts{})
	if _, err := e.subs.Subscribe(context.Background(), herald.SubscribeRequest{Email: "known@example.org", Confirmed: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.subs.Subscribe(context.Background(), herald.SubscribeRequest{Email: "pending@example.org"}); err != nil {
		t.Fatal(err)
	}
	var forms, jsons []resp
	for _, addr := range []string{"new@example.org", "pending@example.org", "known@example.org"} {
		forms = append(forms, e.form("/subscribe", url.Values{"email": {addr}}))
		jsons = append(jsons, e.do(http.MethodPost, "/subscribe", "application/json", `{"email":"`+addr+`"}`))
	}
	for i := 1; i < 3; i++ {
		if forms[i].status != forms[0].status || forms[i].header.Get("Location") != forms[0].header.Get("Location") || forms[i].body != forms[0].body {
			t.Errorf("form answer %d differs: %d %q vs %d %q", i, forms[i].status, forms[i].body, forms[0].status, forms[0].body)
		}
		if jsons[i].status != jsons[0].status || jsons[i].body != jsons[0].body {
			t.Errorf("JSON answer %d differs: %d %q vs %d %q", i, jsons[i].status, jsons[i].body, jsons[0].status, jsons[0].body)
		}
	}
	if jsons[0].status != http.StatusAccepted || strings.TrimSpace(jsons[0].body) != `{"status":"pending"}` {
		t.Fatalf("JSON answer %d %s", jsons[0].status, jsons[0].body)
	}
}

func TestHoneypot(t *testing.T) {
	e := newEnv(t, envOpts{})
	r := e.form("/subscribe", url.Values{"email": {"bot-target@example.org"}, "website": {"http://spam.example"}})
	if r.status != http.StatusSeeOther || r.header.Get("Location") != "/subscribe/check-email" {
		t.Fatalf("honeypot answer %d", r.status)
	}
	j := e.do(http.MethodPost, "/subscribe", "application/json", `{"email":"bot2@example.org","website":"x"}`)
	if j.status != http.StatusAccepted {
		t.Fatalf("honeypot JSON answer %d", j.status)
	}
	// A real sign-up afterwards proves the sender runs; the bot's got nothing.
	e.form("/subscribe", url.Values{"email": {"human@example.org"}})
	msgs := e.smtp.WaitFor(t, 1, 10*time.Second)
	time.Sleep(200 * time.Millisecond)
	for _, m := range e.smtp.Messages() {
		if strings.HasPrefix(m.To[0], "bot") {
			t.Fatalf("honeypot sign-up got mail: %v", m.To)
		}
	}
	_ = msgs
	if _, err := e.db.SubscriberByEmail(context.Background(), "bot-target@example.org"); herald.ErrorCode(err) != herald.ENOTFOUND {
		t.Fatal("honeypot sign-up was stored")
	}
}

func TestRateLimitPerIP(t *testing.T) {
	e := newEnv(t, envOpts{perIP: handlers.Rate{N: 3, Period: time.Hour}})
	for i := 0; i < 3; i++ {
		if r := e.form("/subscribe", url.Values{"email": {"r" + string(rune('a'+i)) + "@example.org"}}); r.status != http.StatusSeeOther {
			t.Fatalf("request %d: %d", i, r.status)
		}
	}
	r := e.form("/subscribe", url.Values{"email": {"rz@example.org"}})
	if r.status != http.StatusTooManyRequests || r.header.Get("Retry-After") == "" {
		t.Fatalf("4th request: %d Retry-After %q", r.status, r.header.Get("Retry-After"))
	}
	j := e.do(http.MethodPost, "/subscribe", "application/json", `{"email":"ry@example.org"}`)
	if j.status != http.StatusTooManyRequests || !strings.Contains(j.body, `"error"`) {
		t.Fatalf("JSON 5th request: %d %s", j.status, j.body)
	}
	e.smtp.WaitFor(t, 3, 10*time.Second)
	time.Sleep(300 * time.Millisecond) // a 4th email would be on its way by now
	if n := e.smtp.Count(); n != 3 {
		t.Fatalf("%d confirmation emails, want 3", n)
	}
	if _, err := e.db.SubscriberByEmail(context.Background(), "rz@example.org"); herald.ErrorCode(err) != herald.ENOTFOUND {
		t.Fatal("a rate-limited sign-up was stored")
	}
}

func TestBadInput(t *testing.T) {
	e := newEnv(t, envOpts{})
	big := strings.Repeat("a", handlers.MaxBody+1)
	for _, tc := range []struct {
		name, method, path, ct, body string
		status                       int
		field                        string
	}{
		{"invalid email form", "POST", "/subscribe", "application/x-www-form-urlencoded", "email=nope", 422, "email"},
		{"invalid email json", "POST", "/subscribe", "application/json", `{"email":"nope"}`, 422, "email"},
		{"long email", "POST", "/subscribe", "application/json", `{"email":"` + strings.Repeat("a", 250) + `@b.org"}`, 422, "email"},
		{"crlf email", "POST", "/subscribe", "application/json", `{"email":"a@b.org\r\nBcc: c@d.org"}`, 422, "email"},
		{"crlf name", "POST", "/subscribe", "application/json", `{"email":"a@b.org","name":"x\nBcc: c@d.org"}`, 422, "name"},
		{"long name", "POST", "/subscribe", "application/json", `{"email":"a@b.org","name":"` + strings.Repeat("n", 101) + `"}`, 422, "name"},
		{"bad frequency", "POST", "/subscribe", "application/json", `{"email":"a@b.org","frequency":"hourly"}`, 422, "frequency"},
		{"bad frequency form", "POST", "/subscribe", "application/x-www-form-urlencoded", "email=a@b.org&frequency=hourly", 422, "frequency"},
		{"malformed json", "POST", "/subscribe", "application/json", `{"email":`, 400, ""},
		{"json wrong type", "POST", "/subscribe", "application/json", `{"email":42}`, 400, ""},
		{"json unknown field", "POST", "/subscribe", "application/json", `{"mail":"a@b.org"}`, 400, ""},
		{"json two values", "POST", "/subscribe", "application/json", `{"email":"a@b.org"}{}`, 400, ""},
		{"too large", "POST", "/subscribe", "application/x-www-form-urlencoded", "email=" + big, 413, ""},
		{"too large json", "POST", "/subscribe", "application/json", `{"email":"` + big + `"}`, 413, ""},
		{"bad form encoding", "POST", "/subscribe", "application/x-www-form-urlencoded", "email=%zz", 400, ""},
		{"repeated field", "POST", "/subscribe", "application/x-www-form-urlencoded", "email=a@b.org&email=c@d.org", 400, ""},
		{"multipart", "POST", "/subscribe", "multipart/form-data; boundary=x", "--x--", 400, ""},
		{"wrong method subscribe", "PUT", "/subscribe", "", "", 405, ""},
		{"wrong method confirm", "DELETE", "/confirm", "", "", 405, ""},
		{"wrong method healthz", "POST", "/healthz", "", "", 405, ""},
		{"unknown page", "GET", "/nope", "", "", 404, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := e.do(tc.method, tc.path, tc.ct, tc.body)
			if r.status != tc.status {
				t.Fatalf("status %d, want %d\n%s", r.status, tc.status, r.body)
			}
			if strings.HasPrefix(tc.ct, "application/json") && tc.status != 405 {
				var body map[string]string
				if err := json.Unmarshal([]byte(r.body), &body); err != nil || body["error"] == "" {
					t.Fatalf("JSON error body %q", r.body)
				}
				if tc.field != "" && body["field"] != tc.field {
					t.Fatalf("field %q, want %q", body["field"], tc.field)
				}
			} else if tc.status == 422 && !strings.Contains(r.body, `role="alert"`) {
				t.Fatalf("the form is not shown again with the message:\n%s", r.body)
			}
		})
	}
	if n, _ := e.db.CountSubscribers(context.Background()); total(n) != 0 {
		t.Fatalf("bad input stored %d subscribers", total(n))
	}
}

func total(m map[herald.Status]map[herald.Frequency]int) int {
	n := 0
	for _, f := range m {
		for _, c := range f {
			n += c
		}
	}
	return n
}

func TestBadTokensChangeNothing(t *testing.T) {
	e := newEnv(t, envOpts{})
	sub, _ := e.subs.Subscribe(context.Background(), herald.SubscribeRequest{Email: "t@example.org", Confirmed: true})
	good := e.subs.ManageToken(sub.ID)
	tampered := good[:10] + string("AB"[strings.IndexByte("AB", good[10])+1&1]) + good[11:]
	if good[10] != 'A' && good[10] != 'B' {
		tampered = good[:10] + "A" + good[11:]
	}
	for _, tok := range []string{"", "garbage", tampered, good} {
		for _, tc := range []struct{ method, path, body string }{
			{"GET", "/confirm?token=" + url.QueryEscape(tok), ""},
			{"POST", "/confirm", "token=" + url.QueryEscape(tok)},
			{"GET", "/unsubscribe?token=" + url.QueryEscape(tok), ""},
			{"POST", "/unsubscribe?token=" + url.QueryEscape(tok), "List-Unsubscribe=One-Click"},
		} {
			r := e.do(tc.method, tc.path, "application/x-www-form-urlencoded", tc.body)
			// good is a preferences token: it must not work for confirm or unsubscribe.
			if r.status != http.StatusBadRequest {
				t.Fatalf("%s %s: %d, want 400", tc.method, tc.path, r.status)
			}
			if !strings.Contains(r.body, `href="/"`) {
				t.Fatalf("%s %s: no way to subscribe again", tc.method, tc.path)
			}
		}
		if tok != good {
			if r := e.do("GET", "/preferences?token="+url.QueryEscape(tok), "", ""); r.status != http.StatusBadRequest {
				t.Fatalf("preferences with %q: %d", tok, r.status)
			}
		}
	}
	if st := e.status("t@example.org"); st != herald.StatusConfirmed {
		t.Fatalf("bad tokens changed the status to %s", st)
	}
}

func TestSecurityHeadersAndHealth(t *testing.T) {
	e := newEnv(t, envOpts{})
	r := e.do("GET", "/", "", "")
	if r.status != 200 || !strings.Contains(r.body, `name="website"`) || !strings.Contains(r.body, `<label for="email">`) {
		t.Fatalf("subscribe page: %d", r.status)
	}
	csp := r.header.Get("Content-Security-Policy")
	m := regexp.MustCompile(`'nonce-([^']+)'`).FindStringSubmatch(csp)
	if m == nil || !strings.Contains(r.body, `nonce="`+m[1]+`"`) || !strings.Contains(csp, "default-src 'none'") {
		t.Fatalf("CSP %q does not match the page's nonce", csp)
	}
	if r.header.Get("X-Content-Type-Options") != "nosniff" || r.header.Get("Referrer-Policy") == "" {
		t.Fatalf("headers %v", r.header)
	}
	if strings.Contains(r.body, "http://") && strings.Contains(r.body, "<link rel=\"stylesheet\"") {
		t.Fatal("external CSS")
	}
	h := e.do("GET", "/healthz", "", "")
	if h.status != 200 || strings.TrimSpace(h.body) != `{"status":"ok"}` {
		t.Fatalf("healthz %d %s", h.status, h.body)
	}
}

func TestCORS(t *testing.T) {
	e := newEnv(t, envOpts{})
	r := e.do("OPTIONS", "/subscribe", "", "", "Origin", "https://blog.example.org", "Access-Control-Request-Method", "POST")
	if r.status != 204 || r.header.Get("Access-Control-Allow-Origin") != "https://blog.example.org" {
		t.Fatalf("preflight %d %v", r.status, r.header)
	}
	r = e.do("POST", "/subscribe", "application/json", `{"email":"cors@example.org"}`, "Origin", "https://blog.example.org")
	if r.status != 202 || r.header.Get("Access-Control-Allow-Origin") != "https://blog.example.org" {
		t.Fatalf("CORS POST %d %v", r.status, r.header)
	}
	r = e.do("POST", "/subscribe", "application/json", `{"email":"cors2@example.org"}`, "Origin", "https://evil.example")
	if r.header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatal("CORS allowed for another origin")
	}
}

func TestAdminSubscribersAPI(t *testing.T) {
	disabled := newEnv(t, envOpts{})
	if r := disabled.do("GET", "/api/v1/subscribers", "", "", "Authorization", "Bearer "+adminToken); r.status != 403 {
		t.Fatalf("admin disabled: %d", r.status)
	}
	e := newEnv(t, envOpts{adminToken: adminToken})
	auth := []string{"Authorization", "Bearer " + adminToken}
	for _, h := range [][]string{nil, {"Authorization", "Bearer wrong"}, {"Authorization", adminToken}, {"Authorization", "Bearer " + adminToken + "x"}} {
		if r := e.do("GET", "/api/v1/subscribers", "", "", h...); r.status != 401 {
			t.Fatalf("auth %v: %d", h, r.status)
		}
	}
	r := e.do("POST", "/api/v1/subscribers", "application/json", `{"email":"Api@Example.org","name":"Ann","frequency":"instant","confirmed":true}`, auth...)
	if r.status != 201 {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	var created map[string]any
	_ = json.Unmarshal([]byte(r.body), &created)
	for _, k := range []string{"id", "email", "name", "status", "frequency", "created_at", "confirmed_at"} {
		if _, ok := created[k]; !ok {
			t.Errorf("subscriber JSON lacks %q: %s", k, r.body)
		}
	}
	if created["email"] != "Api@example.org" || created["status"] != "confirmed" {
		t.Fatalf("created %v", created)
	}
	if r := e.do("POST", "/api/v1/subscribers", "application/json", `{"email":"Api@example.org"}`, auth...); r.status != 409 {
		t.Fatalf("duplicate: %d", r.status)
	}
	if r := e.do("POST", "/api/v1/subscribers", "application/json", `{"email":"pending@example.org"}`, auth...); r.status != 201 {
		t.Fatalf("create pending: %d", r.status)
	}
	e.smtp.WaitFor(t, 1, 10*time.Second) // a confirmation for the pending one
	if r := e.do("POST", "/api/v1/subscribers", "application/json", `{"email":"x"}`, auth...); r.status != 422 || !strings.Contains(r.body, `"field":"email"`) {
		t.Fatalf("invalid: %d %s", r.status, r.body)
	}
	if r := e.do("POST", "/api/v1/subscribers", "application/json", `nope`, auth...); r.status != 400 {
		t.Fatalf("malformed: %d", r.status)
	}
	for i := 0; i < 5; i++ {
		e.subs.Subscribe(context.Background(), herald.SubscribeRequest{Email: "page" + string(rune('a'+i)) + "@example.org", Confirmed: true})
	}
	var all []string
	next := ""
	for {
		r := e.do("GET", "/api/v1/subscribers?status=confirmed&limit=2&after="+next, "", "", auth...)
		if r.status != 200 {
			t.Fatalf("list: %d %s", r.status, r.body)
		}
		var page struct {
			Subscribers []herald.Subscriber `json:"subscribers"`
			Next        string              `json:"next"`
		}
		if err := json.Unmarshal([]byte(r.body), &page); err != nil {
			t.Fatal(err)
		}
		for _, s := range page.Subscribers {
			all = append(all, s.Email)
		}
		if page.Next == "" {
			break
		}
		next = page.Next
	}
	if len(all) != 6 {
		t.Fatalf("paged list of confirmed: %v", all)
	}
	if r := e.do("GET", "/api/v1/subscribers?q=PAGEC", "", "", auth...); !strings.Contains(r.body, "pagec@example.org") || strings.Contains(r.body, "paged@") {
		t.Fatalf("search: %s", r.body)
	}
	if r := e.do("GET", "/api/v1/subscribers?status=nope", "", "", auth...); r.status != 422 {
		t.Fatalf("bad status filter: %d", r.status)
	}
	if r := e.do("GET", "/api/v1/subscribers?limit=x", "", "", auth...); r.status != 422 {
		t.Fatalf("bad limit: %d", r.status)
	}
	if r := e.do("GET", "/api/v1/subscribers/api@EXAMPLE.org", "", "", auth...); r.status != 404 {
		// the local part keeps its case; Api@ and api@ are different addresses
		t.Fatalf("get other-case: %d", r.status)
	}
	if r := e.do("GET", "/api/v1/subscribers/Api@EXAMPLE.org", "", "", auth...); r.status != 200 || !strings.Contains(r.body, `"name":"Ann"`) {
		t.Fatalf("get: %d %s", r.status, r.body)
	}
	if r := e.do("DELETE", "/api/v1/subscribers/Api@example.org", "", "", auth...); r.status != 204 {
		t.Fatalf("delete: %d", r.status)
	}
	if r := e.do("GET", "/api/v1/subscribers/Api@example.org", "", "", auth...); r.status != 404 {
		t.Fatalf("get after delete: %d", r.status)
	}
	if r := e.do("DELETE", "/api/v1/subscribers/Api@example.org", "", "", auth...); r.status != 404 {
		t.Fatalf("second delete: %d", r.status)
	}
	if r := e.do("PATCH", "/api/v1/subscribers", "", "", auth...); r.status != 405 {
		t.Fatalf("wrong method: %d", r.status)
	}
	_ = bytes.MinRead
}

// SPEC §3: /healthz answers 503 when the database does not answer.
func TestHealthzWhenTheDatabaseIsGone(t *testing.T) {
	e := newEnv(t, envOpts{})
	if r := e.do("GET", "/healthz", "", ""); r.status != http.StatusOK {
		t.Fatalf("healthz with the database open: %d", r.status)
	}
	if err := e.db.Close(); err != nil {
		t.Fatal(err)
	}
	r := e.do("GET", "/healthz", "", "")
	if r.status != http.StatusServiceUnavailable || !strings.Contains(r.body, `"error"`) {
		t.Fatalf("healthz with the database closed: %d %s", r.status, r.body)
	}
}
