package handlers_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/herald-dev/herald"
	"github.com/herald-dev/herald/handlers"
	"github.com/herald-dev/herald/internal/testenv"
	"github.com/herald-dev/herald/internal/testmail"
)

// A reader who lost their links asks for them by address: the answer is
// the same for a known and an unknown address, and only the known one
// gets an email, with the link to their preferences.
func TestLostLinkByEmail(t *testing.T) {
	e := newEnv(t, testenv.Options{SubscribePerIP: handlers.Rate{N: 4, Period: time.Hour}})
	e.Confirmed("ann@example.org", herald.Weekly)
	g := e.do(http.MethodGet, "/preferences", "", "")
	if g.Status != http.StatusOK || !strings.Contains(g.Body, `action="/preferences/link"`) || !strings.Contains(g.Body, "Email me my link") {
		t.Fatalf("/preferences without a token: %d\n%s", g.Status, g.Body)
	}
	var answers []testenv.Resp
	for _, addr := range []string{"ann@example.org", "nobody@example.org"} {
		answers = append(answers, e.form("/preferences/link", url.Values{"email": {addr}}))
	}
	for _, a := range answers {
		if a.Status != http.StatusSeeOther || a.Location() != "/preferences/link?sent=1" {
			t.Fatalf("answer %d %q", a.Status, a.Location())
		}
	}
	if answers[0].Body != answers[1].Body {
		t.Fatal("the answers for a known and an unknown address differ")
	}
	if r := e.do(http.MethodGet, "/preferences/link?sent=1", "", ""); r.Status != http.StatusOK || !strings.Contains(r.Body, "If that address is on our list") {
		t.Fatalf("sent page: %d\n%s", r.Status, r.Body)
	}
	msgs := e.SMTP.WaitFor(t, 1, 10*time.Second)
	e.OutboxSent()
	if n := e.SMTP.Count(); n != 1 || msgs[0].To[0] != "ann@example.org" {
		t.Fatalf("%d emails (to %v), want one to ann", n, msgs[0].To)
	}
	link := testmail.MustParse(t, msgs[0].Data).Link("/preferences?token=")
	if !strings.HasPrefix(link, "http://herald.test/preferences?token=") {
		t.Fatalf("link %q", link)
	}
	if r := e.do(http.MethodGet, strings.TrimPrefix(link, "http://herald.test"), "", ""); r.Status != http.StatusOK || !strings.Contains(r.Body, "ann@example.org") {
		t.Fatalf("the emailed link: %d", r.Status)
	}
	// A malformed address is said to be one; the per-IP limit holds.
	if r := e.form("/preferences/link", url.Values{"email": {"not an address"}}); r.Status != http.StatusUnprocessableEntity || !strings.Contains(r.Body, `aria-invalid="true"`) {
		t.Fatalf("bad address: %d\n%s", r.Status, r.Body)
	}
	e.form("/preferences/link", url.Values{"email": {"nobody@example.org"}}) // the 4th of 4 an hour
	r := e.form("/preferences/link", url.Values{"email": {"ann@example.org"}})
	if r.Status != http.StatusTooManyRequests || r.Header.Get("Retry-After") == "" || !strings.Contains(r.Body, "Slow down a little") || strings.Contains(r.Body, "Something is not right") {
		t.Fatalf("over the per-IP limit: %d\n%s", r.Status, r.Body)
	}
}

// Subscribing again with a subscribed address answers as for anyone, and
// mails that reader their preferences link; "Resend" on the check-email
// page does the same.
func TestSubscribeAgainWhileSubscribed(t *testing.T) {
	e := newEnv(t, testenv.Options{})
	e.Confirmed("ann@example.org", herald.Weekly)
	r := e.form("/subscribe", url.Values{"email": {"ann@example.org"}, "frequency": {"daily"}})
	if r.Status != http.StatusSeeOther || r.Location() != "/subscribe/check-email" {
		t.Fatalf("subscribe again: %d %q", r.Status, r.Location())
	}
	msgs := e.SMTP.WaitFor(t, 1, 10*time.Second)
	p := testmail.MustParse(t, msgs[0].Data)
	if p.Link("/preferences?token=") == "" || !strings.Contains(p.Text, "subscribed already") {
		t.Fatalf("email:\n%s", p.Text)
	}
	if s := e.sub("ann@example.org"); s.Frequency != herald.Weekly || s.Status != herald.StatusConfirmed {
		t.Fatalf("subscribing again changed the reader: %+v", s)
	}
	r = e.form("/subscribe/resend", url.Values{"email": {"ann@example.org"}})
	if r.Status != http.StatusSeeOther || r.Location() != "/subscribe/check-email?resent=1" {
		t.Fatalf("resend: %d %q", r.Status, r.Location())
	}
	msgs = e.SMTP.WaitFor(t, 2, 10*time.Second)
	if testmail.MustParse(t, msgs[1].Data).Link("/preferences?token=") == "" {
		t.Fatal("Resend sent no link")
	}
}

// Leave and come back: the unsubscribed reader's pages offer "Subscribe
// again", one press brings them back with their name and frequency, and
// no page says "Saved." about a change that did not happen.
func TestLeaveAndComeBack(t *testing.T) {
	e := newEnv(t, testenv.Options{})
	sub, err := e.Subs.Subscribe(context.Background(), herald.SubscribeRequest{Email: "bea@example.org", Name: "Bea", Frequency: "weekly", Confirmed: true})
	if err != nil {
		t.Fatal(err)
	}
	tok, unsub := e.Subs.ManageToken(sub.ID), e.Subs.UnsubscribeToken(sub.ID)
	prefs := "/preferences?token=" + url.QueryEscape(tok)
	// The unsubscribe button: the POST acts, then the browser lands on a
	// page it may reload.
	r := e.form("/unsubscribe?token="+url.QueryEscape(unsub), url.Values{})
	if r.Status != http.StatusSeeOther || r.Location() != "/unsubscribe?token="+url.QueryEscape(unsub) {
		t.Fatalf("unsubscribe button: %d %q", r.Status, r.Location())
	}
	g := e.do(http.MethodGet, r.Location(), "", "")
	if g.Status != http.StatusOK || !strings.Contains(g.Body, "You&#39;re unsubscribed") && !strings.Contains(g.Body, "You're unsubscribed") || !strings.Contains(g.Body, `value="resubscribe"`) {
		t.Fatalf("unsubscribed page: %d\n%s", g.Status, g.Body)
	}
	// Their preferences page says where they stand and offers the way back.
	g = e.do(http.MethodGet, prefs, "", "")
	if !strings.Contains(g.Body, "You're unsubscribed") || !strings.Contains(g.Body, `id="resubscribe"`) || strings.Contains(g.Body, `id="save"`) {
		t.Fatalf("preferences of a reader who left:\n%s", g.Body)
	}
	// A frequency change now would change nothing that matters: refused, saying why.
	r = e.form("/preferences", url.Values{"token": {tok}, "action": {"save"}, "frequency": {"daily"}})
	if r.Status != http.StatusConflict || strings.Contains(r.Body, "Saved.") || !strings.Contains(r.Body, "Subscribe again to choose one") {
		t.Fatalf("save while unsubscribed: %d\n%s", r.Status, r.Body)
	}
	// One press brings them back.
	r = e.form("/preferences", url.Values{"token": {tok}, "action": {"resubscribe"}, "frequency": {"weekly"}})
	if r.Status != http.StatusSeeOther || r.Location() != "/preferences?done=back&token="+url.QueryEscape(tok) {
		t.Fatalf("subscribe again: %d %q", r.Status, r.Location())
	}
	if s := e.sub("bea@example.org"); s.Status != herald.StatusConfirmed || s.Name != "Bea" || s.Frequency != herald.Weekly {
		t.Fatalf("back: %+v", s)
	}
	if g = e.do(http.MethodGet, r.Location(), "", ""); !strings.Contains(g.Body, "Welcome back") || !strings.Contains(g.Body, `id="save"`) {
		t.Fatalf("after coming back:\n%s", g.Body)
	}
	// Saving what is already so says so; saving a change says Saved.
	r = e.form("/preferences", url.Values{"token": {tok}, "action": {"save"}, "frequency": {"weekly"}})
	if g = e.do(http.MethodGet, r.Location(), "", ""); !strings.Contains(g.Body, "Nothing to save") || strings.Contains(g.Body, "Saved.") {
		t.Fatalf("saving the same frequency:\n%s", g.Body)
	}
	r = e.form("/preferences", url.Values{"token": {tok}, "action": {"save"}, "frequency": {"daily"}})
	if g = e.do(http.MethodGet, r.Location(), "", ""); !strings.Contains(g.Body, "Saved.") {
		t.Fatalf("saving a change:\n%s", g.Body)
	}
	// The one-click POST still answers itself (RFC 8058: no redirect).
	r = e.do(http.MethodPost, "/unsubscribe?token="+url.QueryEscape(unsub), "application/x-www-form-urlencoded", "List-Unsubscribe=One-Click")
	if r.Status != http.StatusOK || r.Location() != "" || e.status("bea@example.org") != herald.StatusUnsubscribed {
		t.Fatalf("one-click: %d %q", r.Status, r.Location())
	}
}

func TestErrorPagesSayWhatHappened(t *testing.T) {
	e := newEnv(t, testenv.Options{})
	r := e.do(http.MethodGet, "/no/such/page", "", "")
	if r.Status != http.StatusNotFound || strings.Contains(r.Body, "Subscribe again") || !strings.Contains(r.Body, "Page not found") || !strings.Contains(r.Body, `href="/"`) || !strings.Contains(r.Body, `href="https://blog.example.org"`) {
		t.Fatalf("404:\n%s", r.Body)
	}
	r = e.do(http.MethodPost, "/subscribe", "application/x-www-form-urlencoded", "email=%zz")
	if r.Status != http.StatusBadRequest || strings.Contains(r.Body, "Subscribe again") {
		t.Fatalf("malformed form: %d\n%s", r.Status, r.Body)
	}
}

// The admin API's new routes: PATCH a reader, resend a confirmation, the
// schedule, runs without the empty ones, and readers newest first.
func TestAdminAPIForTheSubscriberPage(t *testing.T) {
	e := newEnv(t, testenv.Options{AdminToken: adminToken})
	e.Confirmed("ann@example.org", herald.Weekly)
	r := e.api(http.MethodPatch, "/api/v1/subscribers/ann@example.org", `{"name":"Ann Other","frequency":"instant"}`)
	var s herald.Subscriber
	if r.Status != http.StatusOK || json.Unmarshal([]byte(r.Body), &s) != nil || s.Name != "Ann Other" || s.Frequency != herald.Instant {
		t.Fatalf("PATCH: %d %s", r.Status, r.Body)
	}
	for _, c := range []struct {
		path, body string
		status     int
		want       string
	}{
		{"/api/v1/subscribers/ann@example.org", `{"frequency":"hourly"}`, 422, `"field":"frequency"`},
		{"/api/v1/subscribers/ann@example.org", `{"name":"` + strings.Repeat("n", 150) + `"}`, 422, `"field":"name"`},
		{"/api/v1/subscribers/ann@example.org", `{"status":"confirmed"}`, 400, "unknown field"},
		{"/api/v1/subscribers/ann@example.org", `{"name":`, 400, "malformed JSON"},
		{"/api/v1/subscribers/nobody@example.org", `{"name":"X"}`, 404, "not found"},
	} {
		if r := e.api(http.MethodPatch, c.path, c.body); r.Status != c.status || !strings.Contains(r.Body, c.want) {
			t.Errorf("PATCH %s %s: %d %s", c.path, c.body, r.Status, r.Body)
		}
	}
	if s := e.sub("ann@example.org"); s.Name != "Ann Other" || s.Frequency != herald.Instant {
		t.Fatalf("a refused PATCH changed the reader: %+v", s)
	}
	// Resend: a pending reader only.
	if r := e.api(http.MethodPost, "/api/v1/subscribers", `{"email":"pat@example.org"}`); r.Status != http.StatusCreated {
		t.Fatal(r.Body)
	}
	if r := e.api(http.MethodPost, "/api/v1/subscribers/pat@example.org/resend", ""); r.Status != http.StatusAccepted {
		t.Fatalf("resend: %d %s", r.Status, r.Body)
	}
	e.SMTP.WaitFor(t, 2, 10*time.Second)
	if r := e.api(http.MethodPost, "/api/v1/subscribers/ann@example.org/resend", ""); r.Status != http.StatusConflict {
		t.Fatalf("resend to a confirmed reader: %d %s", r.Status, r.Body)
	}
	e.api(http.MethodPost, "/api/v1/subscribers/pat@example.org/resend", "")
	if r := e.api(http.MethodPost, "/api/v1/subscribers/pat@example.org/resend", ""); r.Status != http.StatusTooManyRequests || r.Header.Get("Retry-After") == "" {
		t.Fatalf("resend past the per-address limit: %d %s", r.Status, r.Body)
	}
	// Newest first.
	r = e.api(http.MethodGet, "/api/v1/subscribers?order=newest", "")
	if r.Status != http.StatusOK || strings.Index(r.Body, "pat@example.org") > strings.Index(r.Body, "ann@example.org") {
		t.Fatalf("newest first: %s", r.Body)
	}
	if r := e.api(http.MethodGet, "/api/v1/subscribers?order=sideways", ""); r.Status != http.StatusUnprocessableEntity {
		t.Fatalf("bad order: %d", r.Status)
	}
	// The schedule.
	r = e.api(http.MethodGet, "/api/v1/schedule", "")
	var tt herald.Timetable
	if r.Status != http.StatusOK || json.Unmarshal([]byte(r.Body), &tt) != nil || tt.Timezone != "UTC" || len(tt.Schedules) != 3 {
		t.Fatalf("schedule: %d %s", r.Status, r.Body)
	}
	// Runs: an API run is labelled api; skip_empty leaves the empty ones out.
	r = e.api(http.MethodPost, "/api/v1/runs", `{"frequency":"weekly","dry_run":true}`)
	if r.Status != http.StatusAccepted || !strings.Contains(r.Body, `"trigger":"api"`) {
		t.Fatalf("dry run: %d %s", r.Status, r.Body)
	}
	var started struct{ ID uint64 }
	_ = json.Unmarshal([]byte(r.Body), &started)
	e.WaitRun(started.ID)
	if r := e.api(http.MethodGet, "/api/v1/runs?skip_empty=true", ""); r.Status != http.StatusOK || strings.Contains(r.Body, `"dry_run":true`) {
		t.Fatalf("skip_empty: %d %s", r.Status, r.Body)
	}
	if r := e.api(http.MethodGet, "/api/v1/runs", ""); !strings.Contains(r.Body, `"dry_run":true`) {
		t.Fatalf("every run: %s", r.Body)
	}
	if r := e.api(http.MethodGet, "/api/v1/runs?skip_empty=maybe", ""); r.Status != http.StatusUnprocessableEntity {
		t.Fatalf("bad skip_empty: %d", r.Status)
	}
}

// TestConfirmAndUnsubscribeAnswerPrograms: post/redirect/get is for a
// browser's own navigation; a script or any other program that POSTs the
// confirm or unsubscribe form gets the answer page itself with 200, as
// these routes have always answered, and the change is made either way.
func TestConfirmAndUnsubscribeAnswerPrograms(t *testing.T) {
	e := newEnv(t, testenv.Options{})
	if r := e.form("/subscribe", url.Values{"email": {"prog@example.org"}}); r.Status != http.StatusSeeOther {
		t.Fatalf("subscribe: %d", r.Status)
	}
	conf := testmail.MustParse(t, e.SMTP.WaitFor(t, 1, 10*time.Second)[0].Data)
	body := url.Values{"token": {tokenOf(t, conf.Link("/confirm?token="))}}.Encode()
	c := e.do(http.MethodPost, "/confirm", "application/x-www-form-urlencoded", body)
	if c.Status != http.StatusOK || !strings.Contains(c.Body, "You're subscribed") || c.Location() != "" {
		t.Fatalf("POST /confirm from a program: %d %q\n%s", c.Status, c.Location(), c.Body)
	}
	if st := e.status("prog@example.org"); st != herald.StatusConfirmed {
		t.Fatalf("after confirm: %s", st)
	}
	sub, err := e.Subs.Subscriber(context.Background(), "prog@example.org")
	if err != nil {
		t.Fatal(err)
	}
	unsub := "/unsubscribe?token=" + url.QueryEscape(e.Subs.UnsubscribeToken(sub.ID))
	u := e.do(http.MethodPost, unsub, "application/x-www-form-urlencoded", "")
	if u.Status != http.StatusOK || u.Location() != "" || !strings.Contains(u.Body, "unsubscribed") {
		t.Fatalf("POST unsubscribe from a program: %d %q\n%s", u.Status, u.Location(), u.Body)
	}
	if st := e.status("prog@example.org"); st != herald.StatusUnsubscribed {
		t.Fatalf("after unsubscribe: %s", st)
	}
}
