package e2e

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/herald-dev/herald"
	"github.com/herald-dev/herald/challenge"
	"github.com/herald-dev/herald/internal/smtptest"
	"github.com/herald-dev/herald/internal/testenv"
)

// stats reads GET /api/v1/stats.
func (in *instance) stats() *herald.Stats {
	in.t.Helper()
	r := in.do("GET", "/api/v1/stats", "", "", "Authorization", "Bearer "+adminToken)
	var st herald.Stats
	if r.Status != 200 || json.Unmarshal([]byte(r.Body), &st) != nil {
		in.t.Fatalf("stats: %d %s", r.Status, r.Body)
	}
	return &st
}

var formChallenge = regexp.MustCompile(`name="challenge" value="([^"]+)" data-difficulty="(\d+)"`)

// arrived waits until a message to addr is at the SMTP server.
func arrived(t *testing.T, sm *smtptest.Server, addr string, within time.Duration) {
	t.Helper()
	testenv.Eventually(t, within, "the confirmation to "+addr, func() bool { return len(onlyTo(sm.Messages(), addr)) > 0 })
}

// TestAbuseNeverLocksReadersOut reproduces the lock-out of the default
// config: 100 forwarded addresses each signing up 10 made-up addresses
// (every one within the per-visitor limit of 10/h) spend the whole hourly
// budget of confirmations, after which a real reader was refused with 429
// and Retry-After of an hour. Now every sign-up of the flood is stored and
// answered; the real readers who come next (a browser whose script solves
// the challenge, and a blog embed posting JSON that solves the one its
// 429 hands it) are answered 303 and 202, and their confirmations arrive
// at the next token of the budget, ahead of the flood's; a reader without
// script is answered 303 too, stored, its confirmation waiting. The flood's
// confirmations wait durably: a SIGKILL and a restart neither lose them
// nor send them at once on a fresh budget. The budget is 900 an hour here
// (one every 4 s) so the test takes seconds; the default is 1000.
func TestAbuseNeverLocksReadersOut(t *testing.T) {
	const ips, perIP, budget = 100, 10, 900
	sm := smtptest.Start(t)
	cfg := robustConfig(sm.Port(), "warn",
		"[server]\ntrusted_proxies = [\"127.0.0.1/32\"]",
		fmt.Sprintf("[security]\nsubscribe_per_ip = \"%d/h\"\nconfirmations_per_hour = %d", perIP, budget))
	// The budget's worth of confirmations goes out first: over more
	// connections, so the test does not wait on two.
	in := newInstance(t, strings.Replace(cfg, "connections = 2", "connections = 8", 1))
	p := in.start()
	begin := time.Now()
	phase := func(name string) { t.Logf("%v: %s", time.Since(begin).Round(100*time.Millisecond), name) }

	// The flood: forms and JSON, no script, no solutions.
	var forms, jsonOK, jsonAsked, other atomic.Int64
	var firstOther atomic.Value
	var wg sync.WaitGroup
	next := atomic.Int64{}
	for range 16 {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= ips*perIP {
					return
				}
				ip := fmt.Sprintf("198.51.100.%d", 1+i%ips)
				email := fmt.Sprintf("made-up-%04d@flood.example", i)
				if i%2 == 0 {
					r := in.do("POST", "/subscribe", "application/x-www-form-urlencoded", form(map[string]string{"email": email}), "X-Forwarded-For", ip)
					if r.Status == 303 && r.Header.Get("Location") == "/subscribe/check-email" {
						forms.Add(1)
						continue
					}
					firstOther.CompareAndSwap(nil, fmt.Sprintf("form %d %s", r.Status, r.Body))
				} else {
					r := in.do("POST", "/subscribe", "application/json", fmt.Sprintf(`{"email":%q}`, email), "X-Forwarded-For", ip)
					switch {
					case r.Status == 202:
						jsonOK.Add(1)
						continue
					case r.Status == 429 && strings.Contains(r.Body, `"challenge":{`):
						jsonAsked.Add(1)
						continue
					}
					firstOther.CompareAndSwap(nil, fmt.Sprintf("JSON %d %s", r.Status, r.Body))
				}
				other.Add(1)
			}
		})
	}
	wg.Wait()
	if other.Load() != 0 {
		t.Fatalf("%d flood requests answered otherwise than 303, 202 or 429 with a challenge: %v", other.Load(), firstOther.Load())
	}
	if forms.Load() != ips*perIP/2 || jsonAsked.Load() == 0 {
		t.Fatalf("flood: %d forms answered 303, %d JSON 202, %d JSON asked for the challenge", forms.Load(), jsonOK.Load(), jsonAsked.Load())
	}
	phase("flood answered")
	st := in.stats().Confirmations
	if st.Waiting == 0 || st.WaitingByReason["challenge_unsolved"] == 0 || !st.ChallengeActive || !strings.Contains(st.Reason, "confirmations_per_hour") {
		t.Fatalf("after the flood, stats: %+v", st)
	}
	floodWaiting, floodUnsolved := st.Waiting, st.WaitingByReason["challenge_unsolved"]

	// A real reader in a browser, from a fresh address: the page asks for
	// the challenge and its script solves it.
	page := in.do("GET", "/", "", "", "X-Forwarded-For", "192.0.2.10")
	m := formChallenge.FindStringSubmatch(page.Body)
	if m == nil {
		t.Fatalf("under the flood the form carries no challenge:\n%s", page.Body)
	}
	bits, _ := strconv.Atoi(m[2])
	r := in.do("POST", "/subscribe", "application/x-www-form-urlencoded",
		form(map[string]string{"email": "reader@example.org", "challenge": m[1], "solution": challenge.Solve(herald.Challenge{Challenge: m[1], Difficulty: bits})}),
		"X-Forwarded-For", "192.0.2.10")
	if r.Status != 303 {
		t.Fatalf("the real reader after the flood: %d (Retry-After %q) %s", r.Status, r.Header.Get("Retry-After"), r.Body)
	}
	// A blog embed posting JSON: 429 with a challenge, solved, 202.
	r = in.do("POST", "/subscribe", "application/json", `{"email":"embed@example.org"}`, "X-Forwarded-For", "192.0.2.11")
	var asked struct {
		Challenge herald.Challenge `json:"challenge"`
	}
	if r.Status != 429 || json.Unmarshal([]byte(r.Body), &asked) != nil || asked.Challenge.Challenge == "" {
		t.Fatalf("JSON after the flood: %d %s", r.Status, r.Body)
	}
	r = in.do("POST", "/subscribe", "application/json",
		fmt.Sprintf(`{"email":"embed@example.org","challenge":%q,"solution":%q}`, asked.Challenge.Challenge, challenge.Solve(asked.Challenge)), "X-Forwarded-For", "192.0.2.11")
	if r.Status != 202 {
		t.Fatalf("JSON with the solution: %d %s", r.Status, r.Body)
	}
	// A reader without script: answered and stored; the confirmation waits.
	if r := in.do("POST", "/subscribe", "application/x-www-form-urlencoded", form(map[string]string{"email": "noscript@example.org"}), "X-Forwarded-For", "192.0.2.12"); r.Status != 303 {
		t.Fatalf("a reader without script: %d", r.Status)
	}
	if s := in.status("noscript@example.org"); s != "pending" {
		t.Fatalf("the no-script reader is %s", s)
	}
	// The budget frees one every 4 s: the two who solved get theirs
	// first, the flood's stay waiting.
	arrived(t, sm, "reader@example.org", 2*time.Minute)
	arrived(t, sm, "embed@example.org", 2*time.Minute)
	phase("the real readers' confirmations arrived")
	sent := len(sm.Messages())
	if sent > budget+10 {
		t.Fatalf("%d emails went out, want the budget (%d) and the next few tokens' worth", sent, budget)
	}
	if len(onlyTo(sm.Messages(), "noscript@example.org")) != 0 {
		t.Fatal("the no-script reader's confirmation went ahead of the flood's")
	}

	// SIGKILL: the waiting confirmations are durable, and the restarted
	// herald does not spend a fresh budget on them.
	p.kill()
	settled(t, sm)
	p = in.start()
	defer p.stop()
	phase("restarted")
	st = in.stats().Confirmations
	if st.Waiting < floodWaiting-10 || st.Available > 1 {
		t.Fatalf("after SIGKILL and restart: %d waiting (%d before), %d available; want them still waiting on a spent budget", st.Waiting, floodWaiting, st.Available)
	}
	// One more real reader after the restart gets theirs at the next token.
	page = in.do("GET", "/", "", "", "X-Forwarded-For", "192.0.2.20")
	if m = formChallenge.FindStringSubmatch(page.Body); m == nil {
		t.Fatal("after the restart the form carries no challenge")
	}
	bits, _ = strconv.Atoi(m[2])
	r = in.do("POST", "/subscribe", "application/x-www-form-urlencoded",
		form(map[string]string{"email": "after@example.org", "challenge": m[1], "solution": challenge.Solve(herald.Challenge{Challenge: m[1], Difficulty: bits})}),
		"X-Forwarded-For", "192.0.2.20")
	if r.Status != 303 {
		t.Fatalf("a reader after the restart: %d", r.Status)
	}
	arrived(t, sm, "after@example.org", 2*time.Minute)
	phase("the reader after the restart got theirs")
	// The flood's unsolved ones still wait, less a token's worth at most
	// (the budget's due mail from before the kill may still be going out).
	if now := in.stats().Confirmations.WaitingByReason["challenge_unsolved"]; now < st.WaitingByReason["challenge_unsolved"]-2 {
		t.Fatalf("%d unsolved confirmations wait once the new reader's arrived, %d at the restart: the restart spent a fresh budget on them", now, st.WaitingByReason["challenge_unsolved"])
	}
	t.Logf("FIGURES abuse: %d sign-ups from %d forwarded addresses: %d forms 303, %d JSON 202, %d JSON asked the challenge (429); %d confirmations waiting (%d without a solution); real readers 303/202, confirmations at the next token; %d sent before the restart (budget %d), %d waiting after SIGKILL",
		ips*perIP, ips, forms.Load(), jsonOK.Load(), jsonAsked.Load(), floodWaiting, floodUnsolved, sent, budget, st.Waiting)
}

// TestAbuseIPv6Rotation: one host rotating through addresses of its /64
// gets one visitor's allowance (subscribe_per_ip = 10/h), no more; the
// next /64 is another visitor.
func TestAbuseIPv6Rotation(t *testing.T) {
	sm := smtptest.Start(t)
	in := newInstance(t, robustConfig(sm.Port(), "warn", "[server]\ntrusted_proxies = [\"127.0.0.1/32\"]"))
	p := in.start()
	defer p.stop()
	accepted, refused := 0, 0
	for i := range 40 {
		ip := fmt.Sprintf("2001:db8:5:6:%x:%x:%x:%x", i*31, i*17+1, i*7, i+1)
		r := in.do("POST", "/subscribe", "application/json", fmt.Sprintf(`{"email":"rot%d@example.org"}`, i), "X-Forwarded-For", ip)
		switch r.Status {
		case 202:
			accepted++
		case 429:
			if r.Header.Get("Retry-After") == "" || strings.Contains(r.Body, `"challenge":{`) {
				t.Fatalf("rotation %d: 429 without Retry-After, or a challenge instead of the limit: %s", i, r.Body)
			}
			refused++
		default:
			t.Fatalf("rotation %d: %d %s", i, r.Status, r.Body)
		}
	}
	if accepted != 10 || refused != 30 {
		t.Fatalf("40 addresses of one /64: %d accepted, %d refused; want one visitor's 10", accepted, refused)
	}
	if r := in.do("POST", "/subscribe", "application/json", `{"email":"next64@example.org"}`, "X-Forwarded-For", "2001:db8:5:7::1"); r.Status != 202 {
		t.Fatalf("the next /64: %d", r.Status)
	}
}
