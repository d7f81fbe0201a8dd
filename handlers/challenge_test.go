package handlers_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/herald-dev/herald"
	"github.com/herald-dev/herald/api"
	"github.com/herald-dev/herald/challenge"
	"github.com/herald-dev/herald/handlers"
	"github.com/herald-dev/herald/internal/testenv"
	"github.com/herald-dev/herald/subscription"
)

func (e *env) stats() *herald.Stats {
	e.T.Helper()
	r := e.admin(http.MethodGet, "/api/v1/stats", "", "")
	var st herald.Stats
	if r.Status != http.StatusOK || json.Unmarshal([]byte(r.Body), &st) != nil {
		e.T.Fatalf("stats: %d %s", r.Status, r.Body)
	}
	return &st
}

var challengeField = regexp.MustCompile(`<input type="hidden" name="challenge" value="([^"]+)" data-difficulty="(\d+)">`)

// TestChallengeUnderPressure: with security.challenge = "auto", the form
// carries no challenge until the budget is spent; then it carries one
// (and the script, under the page's CSP nonce), JSON sign-ups are asked
// to solve one (429 with it, nothing stored), a solution counts once, and
// a form without one is stored with its confirmation waiting behind the
// solved ones. Stats and metrics say how many wait and why.
func TestChallengeUnderPressure(t *testing.T) {
	e := newEnv(t, testenv.Options{
		AdminToken: adminToken, ChallengeDifficulty: 8,
		Subscription: func(o *subscription.Options) { o.GlobalPerHour = 2; o.Challenge = subscription.ChallengeAuto },
	})
	if r := e.Get("/"); r.Status != 200 || strings.Contains(r.Body, `name="challenge"`) {
		t.Fatalf("the form asks for the challenge with the budget untouched: %d", r.Status)
	}
	for i := range 2 {
		if r := e.do(http.MethodPost, "/subscribe", "application/json", fmt.Sprintf(`{"email":"early%d@example.org"}`, i)); r.Status != http.StatusAccepted {
			t.Fatalf("sign-up %d: %d %s", i, r.Status, r.Body)
		}
	}
	// The budget is spent: the form asks.
	page := e.Get("/")
	m := challengeField.FindStringSubmatch(page.Body)
	if m == nil || m[2] != "8" {
		t.Fatalf("no challenge on the form under pressure:\n%s", page.Body)
	}
	nonce := regexp.MustCompile(`script-src 'nonce-([0-9a-f]+)'`).FindStringSubmatch(page.Header.Get("Content-Security-Policy"))
	if nonce == nil || !strings.Contains(page.Body, `<script nonce="`+nonce[1]+`" src="/subscribe/challenge.js" defer></script>`) {
		t.Fatalf("the challenge script is not loaded under the page's CSP nonce:\n%s", page.Body)
	}
	if r := e.Get("/subscribe/challenge.js"); r.Status != 200 || !strings.HasPrefix(r.Header.Get("Content-Type"), "text/javascript") || !strings.Contains(r.Body, "heraldSolve") {
		t.Fatalf("the script: %d %q", r.Status, r.Header.Get("Content-Type"))
	}

	// JSON without a solution: 429 with a challenge, nothing stored.
	r := e.do(http.MethodPost, "/subscribe", "application/json", `{"email":"embed@example.org"}`)
	var asked api.ChallengeAsked
	if r.Status != http.StatusTooManyRequests || r.Header.Get("Retry-After") == "" || json.Unmarshal([]byte(r.Body), &asked) != nil ||
		asked.Challenge.Challenge == "" || asked.Challenge.Difficulty != 8 || asked.Challenge.ExpiresAt.IsZero() || asked.Field != "solution" || asked.Error == "" {
		t.Fatalf("JSON without a solution: %d %s", r.Status, r.Body)
	}
	if _, err := e.DB.SubscriberByEmail(context.Background(), "embed@example.org"); herald.ErrorCode(err) != herald.ENOTFOUND {
		t.Fatal("a JSON sign-up asked for the challenge was stored")
	}
	// A wrong solution says what is wrong with it.
	bad := fmt.Sprintf(`{"email":"embed@example.org","challenge":%q,"solution":"x1"}`, asked.Challenge.Challenge)
	if r := e.do(http.MethodPost, "/subscribe", "application/json", bad); r.Status != http.StatusTooManyRequests || !strings.Contains(r.Body, "decimal") {
		t.Fatalf("JSON with a malformed solution: %d %s", r.Status, r.Body)
	}
	// Solved: accepted, and its confirmation waits in the first lane.
	sol := challenge.Solve(asked.Challenge)
	good := fmt.Sprintf(`{"email":"embed@example.org","challenge":%q,"solution":%q}`, asked.Challenge.Challenge, sol)
	if r := e.do(http.MethodPost, "/subscribe", "application/json", good); r.Status != http.StatusAccepted {
		t.Fatalf("JSON with the solution: %d %s", r.Status, r.Body)
	}
	// The same solution for another address: spent.
	again := fmt.Sprintf(`{"email":"other@example.org","challenge":%q,"solution":%q}`, asked.Challenge.Challenge, sol)
	if r := e.do(http.MethodPost, "/subscribe", "application/json", again); r.Status != http.StatusTooManyRequests || !strings.Contains(r.Body, "used already") {
		t.Fatalf("a spent solution again: %d %s", r.Status, r.Body)
	}
	// A form without a solution (no script): answered as usual, stored,
	// its confirmation behind the solved one.
	if r := e.form("/subscribe", url.Values{"email": {"noscript@example.org"}, "challenge": {m[1]}}); r.Status != http.StatusSeeOther || r.Location() != "/subscribe/check-email" {
		t.Fatalf("a form without the solution: %d %s", r.Status, r.Location())
	}
	if st := e.status("noscript@example.org"); st != herald.StatusPending {
		t.Fatalf("the no-script sign-up is %q", st)
	}
	// The form's own challenge, solved, is accepted once.
	formSol := challenge.Solve(herald.Challenge{Challenge: m[1], Difficulty: 8})
	if r := e.form("/subscribe", url.Values{"email": {"solver@example.org"}, "challenge": {m[1]}, "solution": {formSol}}); r.Status != http.StatusSeeOther {
		t.Fatalf("a form with the solution: %d", r.Status)
	}
	st := e.stats().Confirmations
	if st.Waiting != 3 || st.WaitingByReason["budget"] != 2 || st.WaitingByReason["challenge_unsolved"] != 1 ||
		!st.ChallengeActive || st.Challenge != "auto" || st.PerHour != 2 || !strings.Contains(st.Reason, "confirmations_per_hour") || st.NextRelease == nil {
		t.Fatalf("stats: %+v", st)
	}
	metrics := e.admin(http.MethodGet, "/metrics", "", "").Body
	for _, want := range []string{
		`herald_confirmations_waiting{reason="budget"} 2`,
		`herald_confirmations_waiting{reason="challenge_unsolved"} 1`,
		`herald_challenge_active 1`,
		`herald_confirmation_budget_available 0`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	// Nothing but the two early confirmations went out.
	testenv.Eventually(t, 10*time.Second, "the two early confirmations", func() bool { return e.SMTP.Count() == 2 })
}

// TestChallengeAlwaysAndOff: "always" asks every sign-up, with the budget
// untouched, and "off" never, even with it spent.
func TestChallengeAlwaysAndOff(t *testing.T) {
	always := newEnv(t, testenv.Options{ChallengeDifficulty: 4,
		Subscription: func(o *subscription.Options) { o.GlobalPerHour = 100; o.Challenge = subscription.ChallengeAlways }})
	if !challengeField.MatchString(always.Get("/").Body) {
		t.Fatal("always: no challenge on the form")
	}
	if r := always.do(http.MethodPost, "/subscribe", "application/json", `{"email":"a@example.org"}`); r.Status != http.StatusTooManyRequests {
		t.Fatalf("always: JSON without a solution: %d", r.Status)
	}
	// A form without a solution goes all the same: with budget to spare
	// its confirmation is released at once.
	if r := always.form("/subscribe", url.Values{"email": {"noscript@example.org"}}); r.Status != http.StatusSeeOther {
		t.Fatalf("always: form without a solution: %d", r.Status)
	}
	always.SMTP.WaitFor(t, 1, 10*time.Second)

	off := newEnv(t, testenv.Options{Subscription: func(o *subscription.Options) { o.GlobalPerHour = 1; o.Challenge = subscription.ChallengeOff }})
	for i := range 3 {
		if r := off.do(http.MethodPost, "/subscribe", "application/json", fmt.Sprintf(`{"email":"o%d@example.org"}`, i)); r.Status != http.StatusAccepted {
			t.Fatalf("off: sign-up %d: %d %s", i, r.Status, r.Body)
		}
	}
	if strings.Contains(off.Get("/").Body, `name="challenge"`) {
		t.Fatal("off: the form asks for the challenge")
	}
}

// TestIPv6VisitorIsItsPrefix: addresses rotated inside one /64 share one
// allowance; the next /64 is another visitor; ipv6_prefix = 48 makes the
// whole /48 one.
func TestIPv6VisitorIsItsPrefix(t *testing.T) {
	proxies := []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	e := newEnv(t, testenv.Options{TrustedProxies: proxies, SubscribePerIP: handlers.Rate{N: 3, Period: time.Hour}})
	try := func(e *env, i int, ip string) int {
		return e.do(http.MethodPost, "/subscribe", "application/json", fmt.Sprintf(`{"email":"v6-%d@example.org"}`, i), "X-Forwarded-For", ip).Status
	}
	for i := range 3 {
		if s := try(e, i, fmt.Sprintf("2001:db8:1:2:%x::%x", i*7919, i+1)); s != http.StatusAccepted {
			t.Fatalf("sign-up %d: %d", i, s)
		}
	}
	for i := 3; i < 8; i++ {
		if s := try(e, i, fmt.Sprintf("2001:db8:1:2:ffff:%x::1", i)); s != http.StatusTooManyRequests {
			t.Fatalf("a rotated address in the same /64, sign-up %d: %d", i, s)
		}
	}
	// The resend and "email me my link" buttons count against the same
	// visitor's allowance: spent by the sign-ups above.
	for _, path := range []string{"/subscribe/resend", "/preferences/link"} {
		if s := e.do(http.MethodPost, path, "application/x-www-form-urlencoded", "email=v6-0%40example.org",
			"X-Forwarded-For", "2001:db8:1:2:beef::7").Status; s != http.StatusTooManyRequests {
			t.Fatalf("%s from a rotated address in the same /64: %d", path, s)
		}
	}
	if s := try(e, 9, "2001:db8:1:3::1"); s != http.StatusAccepted {
		t.Fatalf("the next /64: %d", s)
	}
	if s := e.do(http.MethodPost, "/preferences/link", "application/x-www-form-urlencoded", "email=v6-9%40example.org",
		"X-Forwarded-For", "2001:db8:1:3::2").Status; s != http.StatusSeeOther {
		t.Fatalf("\"email me my link\" from the next /64: %d", s)
	}
	if s := try(e, 10, "::ffff:192.0.2.1"); s != http.StatusAccepted {
		t.Fatalf("an IPv4 visitor: %d", s)
	}
	if got := handlers.VisitorOf(netip.MustParseAddr("2001:db8:1:2:abcd::9"), 48); got.String() != "2001:db8:1::/48" {
		t.Fatalf("VisitorOf /48: %v", got)
	}
}

// FuzzVisitorOf: whatever the address, its visitor contains it, IPv4
// (mapped or not) is one address, and IPv6 addresses sharing the prefix
// are one visitor.
func FuzzVisitorOf(f *testing.F) {
	f.Add([]byte{0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 9}, []byte{0xff, 0xff}, 64)
	f.Add([]byte{192, 0, 2, 1}, []byte{}, 64)
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 0, 2, 1}, []byte{1}, 56)
	f.Fuzz(func(t *testing.T, addr, tail []byte, bits int) {
		a, ok := netip.AddrFromSlice(addr)
		if !ok {
			if got := handlers.VisitorOf(a, bits); got.IsValid() {
				t.Fatalf("an invalid address became %v", got)
			}
			return
		}
		v := handlers.VisitorOf(a, bits)
		if !v.IsValid() || !v.Contains(a.Unmap()) {
			t.Fatalf("VisitorOf(%v, %d) = %v, which does not hold it", a, bits, v)
		}
		if a.Unmap().Is4() {
			if v.Bits() != 32 {
				t.Fatalf("IPv4 %v counted as %v", a, v)
			}
			return
		}
		// Change the bits past the prefix: the same visitor.
		b := a.As16()
		for i, c := range tail {
			if at := v.Bits()/8 + 1 + i; at < 16 {
				b[at] ^= c
			}
		}
		if o := netip.AddrFrom16(b); !o.Is4In6() && handlers.VisitorOf(o, bits) != v {
			t.Fatalf("%v and %v in one /%d are two visitors", a, o, v.Bits())
		}
	})
}
