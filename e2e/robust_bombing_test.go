package e2e

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/herald-dev/herald/internal/smtptest"
	"github.com/herald-dev/herald/internal/testmail"
)

// TestRobustBombing: a script submits one victim's address from many IPs
// (behind a trusted proxy, each request with its own X-Forwarded-For), as
// forms and JSON, concurrently, with a spam text as the name. Every answer
// looks like success, and the victim gets at most
// security.confirmations_per_address (3/24h) confirmation emails, none
// carrying the spam. The per-IP limit holds for each forwarded address,
// and a client that is not a trusted proxy can't escape it by making up
// X-Forwarded-For. And the bombing does not use up the global cap
// (confirmations_per_hour = 50, fewer than the requests): a real reader
// signing up afterwards gets in and gets their email.
func TestRobustBombing(t *testing.T) {
	ips := scale(100, 1000)
	const perAddress = 3 // confirmations_per_address = "3/24h", the default
	sm := smtptest.Start(t)
	in := newInstance(t, robustConfig(sm.Port(), "warn",
		"[server]\ntrusted_proxies = [\"127.0.0.1/32\"]",
		"[mail]\nretry_backoff = \"200ms\"",
		"[security]\nsubscribe_per_ip = \"10/h\"\nconfirmations_per_address = \"3/24h\"\nconfirmations_per_hour = 50"))
	p := in.start()
	defer p.stop()

	const spam = "WIN BIG at http://spam.example/claim"
	variants := []string{"victim@example.org", "victim@EXAMPLE.org", " victim@Example.Org "}
	var success, other atomic.Int64
	var firstOther atomic.Value
	var wg sync.WaitGroup
	begin := time.Now()
	next := atomic.Int64{}
	for range 20 {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= ips {
					return
				}
				ip := fmt.Sprintf("198.51.%d.%d", 100+i/250, 1+i%250)
				addr := variants[i%len(variants)]
				var r response
				if i%2 == 0 {
					r = in.do("POST", "/subscribe", "application/x-www-form-urlencoded",
						form(map[string]string{"email": addr, "name": fmt.Sprintf("%s #%d", spam, i), "frequency": "daily"}),
						"X-Forwarded-For", ip)
				} else {
					r = in.do("POST", "/subscribe", "application/json",
						fmt.Sprintf(`{"email":%q,"name":"%s #%d"}`, addr, spam, i), "X-Forwarded-For", "10.0.0.1, "+ip)
				}
				looksOK := (i%2 == 0 && r.Status == 303 && r.Header.Get("Location") == "/subscribe/check-email?lang=en") ||
					(i%2 == 1 && r.Status == 202 && strings.Contains(r.Body, `"status":"pending"`))
				if looksOK {
					success.Add(1)
				} else {
					other.Add(1)
					firstOther.CompareAndSwap(nil, fmt.Sprintf("%d %s", r.Status, r.Body))
				}
			}
		})
	}
	wg.Wait()
	took := time.Since(begin)
	if other.Load() != 0 {
		t.Fatalf("%d of %d bombing requests did not look like success: %v", other.Load(), ips, firstOther.Load())
	}
	// A real reader signs up after the bombing; once their email is
	// through, anything queued for the victim before it has gone too.
	if r := in.do("POST", "/subscribe", "application/json", `{"email":"newcomer@example.org"}`, "X-Forwarded-For", "192.0.2.1"); r.Status != 202 {
		t.Fatalf("a real reader after the bombing: %d %s", r.Status, r.Body)
	}
	deadline := time.Now().Add(30 * time.Second)
	for newcomer := false; !newcomer; {
		if time.Now().After(deadline) {
			t.Fatal("the real reader's confirmation did not arrive")
		}
		time.Sleep(20 * time.Millisecond)
		for _, m := range sm.Messages() {
			switch m.To[0] {
			case "victim@example.org":
			case "newcomer@example.org":
				newcomer = true
			default:
				t.Fatalf("mail to %v", m.To)
			}
		}
	}
	in.outboxSent() // and nothing more comes
	toVictim := onlyTo(sm.Messages(), "victim@example.org")
	if len(toVictim) == 0 || len(toVictim) > perAddress {
		t.Fatalf("the victim got %d confirmation emails from %d requests, want 1..%d", len(toVictim), ips, perAddress)
	}
	for _, m := range toVictim {
		pm := testmail.MustParse(t, m.Data)
		if strings.Contains(pm.Text+pm.HTML+pm.Subject, "spam.example") || strings.Contains(pm.Text+pm.HTML, "WIN BIG") {
			t.Fatalf("the confirmation email carries the bomber's name:\n%s", pm.Text)
		}
	}
	if st := in.status("victim@example.org"); st != "pending" {
		t.Fatalf("victim is %s", st)
	}

	// The per-IP limit (10/h) per forwarded address: the 11th from one
	// address is refused, with Retry-After.
	perIP := 0
	var refused response
	for i := range 12 {
		r := in.do("POST", "/subscribe", "application/json", fmt.Sprintf(`{"email":"ip%d@example.org"}`, i), "X-Forwarded-For", "192.0.2.77")
		if r.Status == 202 {
			perIP++
		} else {
			refused = r
			break
		}
	}
	if perIP != 10 || refused.Status != 429 || refused.Header.Get("Retry-After") == "" {
		t.Fatalf("one forwarded address: %d accepted, then %d (Retry-After %q)", perIP, refused.Status, refused.Header.Get("Retry-After"))
	}

	// A client that is not a trusted proxy (127.0.0.2) gets no say with
	// X-Forwarded-For: its own address is limited.
	spoofer := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}}).DialContext,
	}}
	spoofOK := 0
	spoofStatus := 0
	for i := range 12 {
		req, _ := http.NewRequestWithContext(context.Background(), "POST", in.base+"/subscribe", strings.NewReader(fmt.Sprintf(`{"email":"spoof%d@example.org"}`, i)))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Forwarded-For", fmt.Sprintf("203.0.113.%d", i+1))
		res, err := spoofer.Do(req)
		if err != nil {
			t.Fatalf("cannot connect from 127.0.0.2 (all of 127.0.0.0/8 is loopback on Linux): %v", err)
		}
		_, _ = io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if res.StatusCode != 202 {
			spoofStatus = res.StatusCode
			break
		}
		spoofOK++
	}
	if spoofOK != 10 || spoofStatus != 429 {
		t.Fatalf("untrusted client with made-up X-Forwarded-For: %d accepted, then %d", spoofOK, spoofStatus)
	}
	t.Logf("FIGURES bombing: %d requests from %d forwarded IPs in %v, %d answered like success (303/202); confirmation emails to the victim %d (limit %d), none with the bomber's text; a real reader after it (global cap 50/h) got in; one forwarded IP: %d accepted then 429; untrusted client faking X-Forwarded-For: %d accepted then %d",
		ips, ips, took.Round(time.Millisecond), success.Load(), len(toVictim), perAddress, perIP, spoofOK, spoofStatus)
}
