package handlers_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/herald-dev/herald"
	"github.com/herald-dev/herald/handlers"
	"github.com/herald-dev/herald/internal/testenv"
	"github.com/herald-dev/herald/internal/testmail"
)

const adminToken = testenv.Token

// env is a whole herald (internal/testenv) with the shorthands these
// tests use.
type env struct{ *testenv.App }

func newEnv(t testing.TB, o testenv.Options) *env { return &env{testenv.New(t, o)} }

func (e *env) do(method, path, contentType, body string, header ...string) testenv.Resp {
	e.T.Helper()
	return e.Do(method, path, contentType, strings.NewReader(body), header...)
}

func (e *env) form(path string, vals url.Values) testenv.Resp {
	e.T.Helper()
	return e.Form(path, vals)
}

func (e *env) admin(method, path, contentType, body string) testenv.Resp {
	e.T.Helper()
	return e.Admin(method, path, contentType, body)
}

// api is admin with a JSON body.
func (e *env) api(method, path, body string) testenv.Resp {
	e.T.Helper()
	ct := ""
	if body != "" {
		ct = "application/json"
	}
	return e.Admin(method, path, ct, body)
}

func (e *env) status(email string) herald.Status {
	e.T.Helper()
	return e.Subscriber(email).Status
}

func (e *env) sub(email string) *herald.Subscriber {
	e.T.Helper()
	return e.Subscriber(email)
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
	e := newEnv(t, testenv.Options{})
	r := e.form("/subscribe", url.Values{"email": {"reader@example.org"}, "name": {"Reader"}, "frequency": {"weekly"}})
	if r.Status != http.StatusSeeOther || r.Header.Get("Location") != "/subscribe/check-email?lang=en" {
		t.Fatalf("POST /subscribe: %d %s", r.Status, r.Header.Get("Location"))
	}
	msgs := e.SMTP.WaitFor(t, 1, 10*time.Second)
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
		if g.Status != http.StatusOK || !strings.Contains(g.Body, `name="token"`) || !strings.Contains(g.Body, "<script nonce=") {
			t.Fatalf("GET confirm: %d\n%s", g.Status, g.Body)
		}
	}
	if st := e.status("reader@example.org"); st != herald.StatusPending {
		t.Fatalf("GET /confirm changed the status to %s", st)
	}
	// The POST confirms and sends the browser on (a reload asks nothing).
	c := e.form("/confirm", url.Values{"token": {tokenOf(t, link)}})
	if c.Status != http.StatusSeeOther || !strings.HasPrefix(c.Location(), "/subscribed?token=") {
		t.Fatalf("POST /confirm: %d %q\n%s", c.Status, c.Location(), c.Body)
	}
	if st := e.status("reader@example.org"); st != herald.StatusConfirmed {
		t.Fatalf("after confirm: %s", st)
	}
	for range 2 {
		if g := e.do(http.MethodGet, c.Location(), "", ""); g.Status != http.StatusOK || !strings.Contains(g.Body, "You&#39;re subscribed") || !strings.Contains(g.Body, "/preferences?token=") {
			t.Fatalf("the confirmed page: %d\n%s", g.Status, g.Body)
		}
	}
	// Idempotent.
	if c2 := e.form("/confirm", url.Values{"token": {tokenOf(t, link)}}); c2.Status != http.StatusSeeOther {
		t.Fatalf("second POST /confirm: %d", c2.Status)
	}
	// The welcome email carries the one-click headers.
	msgs = e.SMTP.WaitFor(t, 2, 10*time.Second)
	w := testmail.MustParse(t, msgs[1].Data)
	lu := w.Header.Get("List-Unsubscribe")
	if w.Header.Get("List-Unsubscribe-Post") != "List-Unsubscribe=One-Click" || !strings.HasPrefix(lu, "<http://herald.test/unsubscribe?token=") {
		t.Fatalf("welcome headers: %q %q", lu, w.Header.Get("List-Unsubscribe-Post"))
	}
	unsubPath := strings.TrimPrefix(strings.Trim(lu, "<>"), "http://herald.test")

	// The unsubscribe page changes nothing; the RFC 8058 POST does, with no
	// cookie, no auth and no redirect.
	if g := e.do(http.MethodGet, unsubPath, "", ""); g.Status != http.StatusOK || !strings.Contains(g.Body, "Unsubscribe") {
		t.Fatalf("GET unsubscribe: %d", g.Status)
	}
	if st := e.status("reader@example.org"); st != herald.StatusConfirmed {
		t.Fatalf("GET /unsubscribe changed the status to %s", st)
	}
	u := e.do(http.MethodPost, unsubPath, "application/x-www-form-urlencoded", "List-Unsubscribe=One-Click")
	if u.Status != http.StatusOK {
		t.Fatalf("one-click: %d %s", u.Status, u.Body)
	}
	if st := e.status("reader@example.org"); st != herald.StatusUnsubscribed {
		t.Fatalf("after one-click: %s", st)
	}
	if u2 := e.do(http.MethodPost, unsubPath, "application/x-www-form-urlencoded", "List-Unsubscribe=One-Click"); u2.Status != http.StatusOK {
		t.Fatalf("second one-click: %d", u2.Status)
	}
	// One-click never redirects, even when it looks like a browser's own
	// navigation (the redirect after a form is for the page's button only).
	if u3 := e.do(http.MethodPost, unsubPath, "application/x-www-form-urlencoded", "List-Unsubscribe=One-Click", "Sec-Fetch-Mode", "navigate"); u3.Status != http.StatusOK || u3.Header.Get("Location") != "" {
		t.Fatalf("one-click as a navigation: %d, Location %q", u3.Status, u3.Header.Get("Location"))
	}
	// Re-subscribing works: a fresh opt-in with a fresh email.
	if r := e.form("/subscribe", url.Values{"email": {"reader@example.org"}}); r.Status != http.StatusSeeOther {
		t.Fatalf("re-subscribe: %d", r.Status)
	}
	msgs = e.SMTP.WaitFor(t, 3, 10*time.Second)
	if st := e.status("reader@example.org"); st != herald.StatusPending {
		t.Fatalf("re-subscribe status %s", st)
	}
	if c := e.form("/confirm", url.Values{"token": {tokenOf(t, link)}}); c.Status != http.StatusBadRequest {
		t.Fatalf("the first sign-up's link still works: %d", c.Status)
	}
	p3 := testmail.MustParse(t, msgs[2].Data)
	if c := e.form("/confirm", url.Values{"token": {tokenOf(t, p3.Link("/confirm?token="))}}); c.Status != http.StatusSeeOther {
		t.Fatalf("new link: %d", c.Status)
	}
}

func TestPreferencesPage(t *testing.T) {
	e := newEnv(t, testenv.Options{})
	sub, err := e.Subs.Subscribe(context.Background(), herald.SubscribeRequest{Email: "pref@example.org", Confirmed: true})
	if err != nil {
		t.Fatal(err)
	}
	tok := e.Subs.ManageToken(sub.ID)
	g := e.do(http.MethodGet, "/preferences?token="+tok, "", "")
	if g.Status != http.StatusOK || !strings.Contains(g.Body, "pref@example.org") {
		t.Fatalf("GET preferences: %d", g.Status)
	}
	r := e.form("/preferences", url.Values{"token": {tok}, "frequency": {"instant"}, "action": {"save"}})
	if r.Status != http.StatusSeeOther {
		t.Fatalf("save: %d %s", r.Status, r.Body)
	}
	s, _ := e.DB.SubscriberByEmail(context.Background(), "pref@example.org")
	if s.Frequency != herald.Instant {
		t.Fatalf("frequency %s", s.Frequency)
	}
	if r := e.form("/preferences", url.Values{"token": {tok}, "frequency": {"hourly"}}); r.Status != http.StatusUnprocessableEntity {
		t.Fatalf("bad frequency: %d", r.Status)
	}
	if r := e.form("/preferences", url.Values{"token": {tok}, "action": {"unsubscribe"}}); r.Status != http.StatusSeeOther || r.Location() != "/preferences?done=left&token="+url.QueryEscape(tok) {
		t.Fatalf("unsubscribe from preferences: %d %q", r.Status, r.Location())
	}
	if st := e.status("pref@example.org"); st != herald.StatusUnsubscribed {
		t.Fatalf("status %s", st)
	}
}

// The answer is the same for a new, a pending and a confirmed address.
func TestNoEnumeration(t *testing.T) {
	e := newEnv(t, testenv.Options{})
	if _, err := e.Subs.Subscribe(context.Background(), herald.SubscribeRequest{Email: "known@example.org", Confirmed: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Subs.Subscribe(context.Background(), herald.SubscribeRequest{Email: "pending@example.org"}); err != nil {
		t.Fatal(err)
	}
	var forms, jsons []testenv.Resp
	for _, addr := range []string{"new@example.org", "pending@example.org", "known@example.org"} {
		forms = append(forms, e.form("/subscribe", url.Values{"email": {addr}}))
		jsons = append(jsons, e.do(http.MethodPost, "/subscribe", "application/json", `{"email":"`+addr+`"}`))
	}
	for i := 1; i < 3; i++ {
		if forms[i].Status != forms[0].Status || forms[i].Header.Get("Location") != forms[0].Header.Get("Location") || forms[i].Body != forms[0].Body {
			t.Errorf("form answer %d differs: %d %q vs %d %q", i, forms[i].Status, forms[i].Body, forms[0].Status, forms[0].Body)
		}
		if jsons[i].Status != jsons[0].Status || jsons[i].Body != jsons[0].Body {
			t.Errorf("JSON answer %d differs: %d %q vs %d %q", i, jsons[i].Status, jsons[i].Body, jsons[0].Status, jsons[0].Body)
		}
	}
	if jsons[0].Status != http.StatusAccepted || strings.TrimSpace(jsons[0].Body) != `{"status":"pending"}` {
		t.Fatalf("JSON answer %d %s", jsons[0].Status, jsons[0].Body)
	}
}

func TestHoneypot(t *testing.T) {
	e := newEnv(t, testenv.Options{})
	r := e.form("/subscribe", url.Values{"email": {"bot-target@example.org"}, "website": {"http://spam.example"}})
	if r.Status != http.StatusSeeOther || r.Header.Get("Location") != "/subscribe/check-email?lang=en" {
		t.Fatalf("honeypot answer %d", r.Status)
	}
	j := e.do(http.MethodPost, "/subscribe", "application/json", `{"email":"bot2@example.org","website":"x"}`)
	if j.Status != http.StatusAccepted {
		t.Fatalf("honeypot JSON answer %d", j.Status)
	}
	// A real sign-up afterwards proves the sender runs; the bot's got nothing.
	e.form("/subscribe", url.Values{"email": {"human@example.org"}})
	e.OutboxSent()
	msgs := e.SMTP.Messages()
	if len(msgs) != 1 || msgs[0].To[0] != "human@example.org" {
		t.Fatalf("mail went to %d: %v", len(msgs), msgs)
	}
	if _, err := e.DB.SubscriberByEmail(context.Background(), "bot-target@example.org"); herald.ErrorCode(err) != herald.ENOTFOUND {
		t.Fatal("honeypot sign-up was stored")
	}
}

func TestRateLimitPerIP(t *testing.T) {
	e := newEnv(t, testenv.Options{SubscribePerIP: handlers.Rate{N: 3, Period: time.Hour}})
	for i := 0; i < 3; i++ {
		if r := e.form("/subscribe", url.Values{"email": {"r" + string(rune('a'+i)) + "@example.org"}}); r.Status != http.StatusSeeOther {
			t.Fatalf("request %d: %d", i, r.Status)
		}
	}
	r := e.form("/subscribe", url.Values{"email": {"rz@example.org"}})
	if r.Status != http.StatusTooManyRequests || r.Header.Get("Retry-After") == "" {
		t.Fatalf("4th request: %d Retry-After %q", r.Status, r.Header.Get("Retry-After"))
	}
	j := e.do(http.MethodPost, "/subscribe", "application/json", `{"email":"ry@example.org"}`)
	if j.Status != http.StatusTooManyRequests || !strings.Contains(j.Body, `"error"`) {
		t.Fatalf("JSON 5th request: %d %s", j.Status, j.Body)
	}
	e.OutboxSent()
	if n := e.SMTP.Count(); n != 3 {
		t.Fatalf("%d confirmation emails, want 3", n)
	}
	if _, err := e.DB.SubscriberByEmail(context.Background(), "rz@example.org"); herald.ErrorCode(err) != herald.ENOTFOUND {
		t.Fatal("a rate-limited sign-up was stored")
	}
}

func TestBadInput(t *testing.T) {
	e := newEnv(t, testenv.Options{})
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
			if r.Status != tc.status {
				t.Fatalf("status %d, want %d\n%s", r.Status, tc.status, r.Body)
			}
			if strings.HasPrefix(tc.ct, "application/json") && tc.status != 405 {
				var body map[string]string
				if err := json.Unmarshal([]byte(r.Body), &body); err != nil || body["error"] == "" {
					t.Fatalf("JSON error body %q", r.Body)
				}
				if tc.field != "" && body["field"] != tc.field {
					t.Fatalf("field %q, want %q", body["field"], tc.field)
				}
			} else if tc.status == 422 && !strings.Contains(r.Body, `role="alert"`) {
				t.Fatalf("the form is not shown again with the message:\n%s", r.Body)
			}
		})
	}
	if n, _ := e.DB.CountSubscribers(context.Background()); total(n) != 0 {
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
	e := newEnv(t, testenv.Options{})
	sub, _ := e.Subs.Subscribe(context.Background(), herald.SubscribeRequest{Email: "t@example.org", Confirmed: true})
	good := e.Subs.ManageToken(sub.ID)
	tampered := good[:10] + string("AB"[(strings.IndexByte("AB", good[10])+1)&1]) + good[11:]
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
			if r.Status != http.StatusBadRequest {
				t.Fatalf("%s %s: %d, want 400", tc.method, tc.path, r.Status)
			}
			if !strings.Contains(r.Body, `href="/"`) {
				t.Fatalf("%s %s: no way to subscribe again", tc.method, tc.path)
			}
		}
		switch r := e.do("GET", "/preferences?token="+url.QueryEscape(tok), "", ""); {
		case tok == "":
			// No token: the way to get one by email.
			if r.Status != http.StatusOK || !strings.Contains(r.Body, `action="/preferences/link"`) {
				t.Fatalf("preferences without a token: %d\n%s", r.Status, r.Body)
			}
		case tok != good:
			if r.Status != http.StatusBadRequest || !strings.Contains(r.Body, `href="/preferences"`) {
				t.Fatalf("preferences with %q: %d", tok, r.Status)
			}
		}
	}
	if st := e.status("t@example.org"); st != herald.StatusConfirmed {
		t.Fatalf("bad tokens changed the status to %s", st)
	}
}

func TestSecurityHeadersAndHealth(t *testing.T) {
	e := newEnv(t, testenv.Options{})
	r := e.do("GET", "/", "", "")
	if r.Status != 200 || !strings.Contains(r.Body, `name="website"`) || !strings.Contains(r.Body, `<label for="email">`) {
		t.Fatalf("subscribe page: %d", r.Status)
	}
	csp := r.Header.Get("Content-Security-Policy")
	m := regexp.MustCompile(`'nonce-([^']+)'`).FindStringSubmatch(csp)
	if m == nil || !strings.Contains(r.Body, `nonce="`+m[1]+`"`) || !strings.Contains(csp, "default-src 'none'") {
		t.Fatalf("CSP %q does not match the page's nonce", csp)
	}
	if r.Header.Get("X-Content-Type-Options") != "nosniff" || r.Header.Get("Referrer-Policy") == "" {
		t.Fatalf("headers %v", r.Header)
	}
	if strings.Contains(r.Body, "http://") && strings.Contains(r.Body, "<link rel=\"stylesheet\"") {
		t.Fatal("external CSS")
	}
	h := e.do("GET", "/healthz", "", "")
	if h.Status != 200 || strings.TrimSpace(h.Body) != `{"status":"ok"}` {
		t.Fatalf("healthz %d %s", h.Status, h.Body)
	}
}

func TestCORS(t *testing.T) {
	e := newEnv(t, testenv.Options{})
	r := e.do("OPTIONS", "/subscribe", "", "", "Origin", "https://blog.example.org", "Access-Control-Request-Method", "POST")
	if r.Status != 204 || r.Header.Get("Access-Control-Allow-Origin") != "https://blog.example.org" {
		t.Fatalf("preflight %d %v", r.Status, r.Header)
	}
	r = e.do("POST", "/subscribe", "application/json", `{"email":"cors@example.org"}`, "Origin", "https://blog.example.org")
	if r.Status != 202 || r.Header.Get("Access-Control-Allow-Origin") != "https://blog.example.org" {
		t.Fatalf("CORS POST %d %v", r.Status, r.Header)
	}
	r = e.do("POST", "/subscribe", "application/json", `{"email":"cors2@example.org"}`, "Origin", "https://evil.example")
	if r.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatal("CORS allowed for another origin")
	}
}

func TestAdminSubscribersAPI(t *testing.T) {
	disabled := newEnv(t, testenv.Options{})
	if r := disabled.do("GET", "/api/v1/subscribers", "", "", "Authorization", "Bearer "+adminToken); r.Status != 403 {
		t.Fatalf("admin disabled: %d", r.Status)
	}
	e := newEnv(t, testenv.Options{AdminToken: adminToken})
	auth := []string{"Authorization", "Bearer " + adminToken}
	for _, h := range [][]string{nil, {"Authorization", "Bearer wrong"}, {"Authorization", adminToken}, {"Authorization", "Bearer " + adminToken + "x"}} {
		if r := e.do("GET", "/api/v1/subscribers", "", "", h...); r.Status != 401 {
			t.Fatalf("auth %v: %d", h, r.Status)
		}
	}
	r := e.do("POST", "/api/v1/subscribers", "application/json", `{"email":"Api@Example.org","name":"Ann","frequency":"instant","confirmed":true}`, auth...)
	if r.Status != 201 {
		t.Fatalf("create: %d %s", r.Status, r.Body)
	}
	var created map[string]any
	_ = json.Unmarshal([]byte(r.Body), &created)
	for _, k := range []string{"id", "email", "name", "status", "frequency", "created_at", "confirmed_at"} {
		if _, ok := created[k]; !ok {
			t.Errorf("subscriber JSON lacks %q: %s", k, r.Body)
		}
	}
	if created["email"] != "Api@example.org" || created["status"] != "confirmed" {
		t.Fatalf("created %v", created)
	}
	if r := e.do("POST", "/api/v1/subscribers", "application/json", `{"email":"Api@example.org"}`, auth...); r.Status != 409 {
		t.Fatalf("duplicate: %d", r.Status)
	}
	if r := e.do("POST", "/api/v1/subscribers", "application/json", `{"email":"pending@example.org"}`, auth...); r.Status != 201 {
		t.Fatalf("create pending: %d", r.Status)
	}
	e.SMTP.WaitFor(t, 1, 10*time.Second) // a confirmation for the pending one
	if r := e.do("POST", "/api/v1/subscribers", "application/json", `{"email":"x"}`, auth...); r.Status != 422 || !strings.Contains(r.Body, `"field":"email"`) {
		t.Fatalf("invalid: %d %s", r.Status, r.Body)
	}
	if r := e.do("POST", "/api/v1/subscribers", "application/json", `nope`, auth...); r.Status != 400 {
		t.Fatalf("malformed: %d", r.Status)
	}
	for i := 0; i < 5; i++ {
		e.Subs.Subscribe(context.Background(), herald.SubscribeRequest{Email: "page" + string(rune('a'+i)) + "@example.org", Confirmed: true})
	}
	var all []string
	next := ""
	for {
		r := e.do("GET", "/api/v1/subscribers?status=confirmed&limit=2&after="+next, "", "", auth...)
		if r.Status != 200 {
			t.Fatalf("list: %d %s", r.Status, r.Body)
		}
		var page struct {
			Subscribers []herald.Subscriber `json:"subscribers"`
			Next        string              `json:"next"`
		}
		if err := json.Unmarshal([]byte(r.Body), &page); err != nil {
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
	if r := e.do("GET", "/api/v1/subscribers?q=PAGEC", "", "", auth...); !strings.Contains(r.Body, "pagec@example.org") || strings.Contains(r.Body, "paged@") {
		t.Fatalf("search: %s", r.Body)
	}
	if r := e.do("GET", "/api/v1/subscribers?status=nope", "", "", auth...); r.Status != 422 {
		t.Fatalf("bad status filter: %d", r.Status)
	}
	if r := e.do("GET", "/api/v1/subscribers?limit=x", "", "", auth...); r.Status != 422 {
		t.Fatalf("bad limit: %d", r.Status)
	}
	if r := e.do("GET", "/api/v1/subscribers/api@EXAMPLE.org", "", "", auth...); r.Status != 404 {
		// the local part keeps its case; Api@ and api@ are different addresses
		t.Fatalf("get other-case: %d", r.Status)
	}
	if r := e.do("GET", "/api/v1/subscribers/Api@EXAMPLE.org", "", "", auth...); r.Status != 200 || !strings.Contains(r.Body, `"name":"Ann"`) {
		t.Fatalf("get: %d %s", r.Status, r.Body)
	}
	if r := e.do("DELETE", "/api/v1/subscribers/Api@example.org", "", "", auth...); r.Status != 204 {
		t.Fatalf("delete: %d", r.Status)
	}
	if r := e.do("GET", "/api/v1/subscribers/Api@example.org", "", "", auth...); r.Status != 404 {
		t.Fatalf("get after delete: %d", r.Status)
	}
	if r := e.do("DELETE", "/api/v1/subscribers/Api@example.org", "", "", auth...); r.Status != 404 {
		t.Fatalf("second delete: %d", r.Status)
	}
	if r := e.do("PATCH", "/api/v1/subscribers", "", "", auth...); r.Status != 405 {
		t.Fatalf("wrong method: %d", r.Status)
	}
	_ = bytes.MinRead
}

// /healthz answers 503 when the database does not answer.
func TestHealthzWhenTheDatabaseIsGone(t *testing.T) {
	e := newEnv(t, testenv.Options{})
	if r := e.do("GET", "/healthz", "", ""); r.Status != http.StatusOK {
		t.Fatalf("healthz with the database open: %d", r.Status)
	}
	if err := e.DB.Close(); err != nil {
		t.Fatal(err)
	}
	r := e.do("GET", "/healthz", "", "")
	if r.Status != http.StatusServiceUnavailable || !strings.Contains(r.Body, `"error"`) {
		t.Fatalf("healthz with the database closed: %d %s", r.Status, r.Body)
	}
}
