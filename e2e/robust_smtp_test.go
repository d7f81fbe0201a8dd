package e2e

import (
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/herald-dev/herald/internal/smtptest"
	"github.com/herald-dev/herald/internal/testenv"
)

// TestRobustSMTPMisbehaving runs digests against an SMTP server that
// misbehaves in every way smtptest knows, in one whole-process run:
//
//   - it refuses connections for a while in the middle of the run (short
//     3s, HERALD_LONG=1 30s), and readers sign up meanwhile;
//   - after it comes back it answers 421 and 451 at the end of DATA in
//     bursts, and drops the connection after DATA now and then;
//   - it answers 550 at RCPT for every 25th reader.
//
// Nothing is lost: every other reader gets exactly one digest (one
// distinct Message-ID; extra copies only for the messages the outage cut
// after the server took them); the run counts failed = the 550 readers;
// those stay confirmed after one run and become bounced after a second
// (mail.bounce_limit = 2), and a third run leaves them out. The sign-ups
// made during the outage get their confirmation once SMTP is back.
func TestRobustSMTPMisbehaving(t *testing.T) {
	readers := scale(300, 2000)
	outage := scale(3*time.Second, 30*time.Second)
	const connections = 2
	sm := smtptest.Start(t)
	in := newInstance(t, robustConfig(sm.Port(), "info",
		"[mail]\nretry_backoff = \"200ms\"\nbounce_limit = 2",
		"[digest]\ndaily = \"\"\nweekly = \"\"",
		"[security]\nsubscribe_per_ip = \"0\""))
	p := in.start()
	defer func() { p.stop() }()
	emails := in.importReaders(readers, "example.org", "daily")
	rejected := map[string]bool{}
	for i, e := range emails {
		if i%25 == 3 {
			rejected[e] = true
		}
	}
	sm.RejectRecipient(func(addr string) (int, string, bool) {
		if rejected[addr] {
			return 550, "5.1.1 mailbox unavailable", true
		}
		return 0, "", false
	})
	in.addPost("smtp-1", "Misbehaving SMTP, part one")
	sm.SetDelay(2 * time.Millisecond)
	begin := time.Now()
	runID := in.startRun("daily")

	// Bursts of 421/451 and dropped connections through the first half
	// of the run; then the outage. (Bursts after the outage would push a
	// few readers' backoff, already long from the outage, further out:
	// same behaviour, only slower to watch.)
	var mu sync.Mutex
	bursts := map[string]int{}
	stop := make(chan struct{})
	injected := make(chan struct{})
	go func() {
		defer close(injected)
		step := max(readers/16, 10)
		last := 0
		for i := 0; ; {
			select {
			case <-stop:
				return
			case <-time.After(2 * time.Millisecond):
			}
			if n := sm.Count(); n >= last+step && n < readers/2-step/2 {
				last = n
				mu.Lock()
				switch i % 3 {
				case 0:
					sm.FailNext(5, 451, "4.7.1 greylisted, try again")
					bursts["451"]++
				case 1:
					sm.DropAfterData(2)
					bursts["drop"]++
				case 2:
					sm.FailNext(5, 421, "4.4.5 too busy")
					bursts["421"]++
				}
				mu.Unlock()
				i++
			}
		}
	}()

	// The outage, half way through the run.
	testenv.Eventually(t, 5*time.Minute, "half the run", func() bool { return sm.Count() >= readers/2 })
	close(stop)
	<-injected
	if err := sm.SetRefuse(true); err != nil {
		t.Fatal(err)
	}
	down := time.Now()
	atOutage := sm.Count()
	var late []string
	for i := range 5 {
		addr := fmt.Sprintf("late%d@example.net", i)
		ct, body := "application/x-www-form-urlencoded", form(map[string]string{"email": addr, "frequency": "weekly"})
		want := 303
		if i%2 == 1 {
			ct, body, want = "application/json", fmt.Sprintf(`{"email":%q}`, addr), 202
		}
		if r := in.do("POST", "/subscribe", ct, body); r.Status != want {
			t.Fatalf("subscribe %s during the outage: %d %s", addr, r.Status, r.Body)
		}
		late = append(late, addr)
	}
	time.Sleep(time.Until(down.Add(outage)))
	// Messages whose DATA was complete when the listener closed may still
	// have been recorded; nothing after that.
	duringOutage := sm.Count() - atOutage
	if duringOutage > connections {
		t.Fatalf("%d emails arrived while SMTP refused connections", duringOutage)
	}
	var mid map[string]any
	_ = json.Unmarshal([]byte(in.api("GET", fmt.Sprintf("/api/v1/runs/%d", runID), "").Body), &mid)
	if err := sm.SetRefuse(false); err != nil {
		t.Fatal(err)
	}
	up := time.Now()
	t.Logf("outage of %v from %d emails accepted; the run at its end: state %v sent %v failed %v retries %v",
		outage, atOutage, mid["state"], mid["sent"], mid["failed"], mid["retries"])

	run := in.waitRun(runID, outage+5*time.Minute)
	sm.SetDelay(0)

	ok := readers - len(rejected)
	if run["state"] != "done" || run["sent"] != float64(ok) || run["failed"] != float64(len(rejected)) || run["total"] != float64(readers) {
		t.Fatalf("run 1: %v; want sent %d failed %d total %d", run, ok, len(rejected), readers)
	}
	if fs, _ := run["failures"].([]any); len(fs) == 0 || !strings.Contains(fmt.Sprint(fs[0]), "550") {
		t.Errorf("run 1 keeps no 550 failure: %v", run["failures"])
	}
	// The confirmations queued during the outage arrive.
	deadline := time.Now().Add(2*outage + 2*time.Minute)
	var confirms map[string]map[string]int
	for {
		confirms = map[string]map[string]int{}
		for _, m := range sm.Messages() {
			if strings.HasPrefix(m.To[0], "late") {
				if confirms[m.To[0]] == nil {
					confirms[m.To[0]] = map[string]int{}
				}
				confirms[m.To[0]][headerValue(m.Data, "Message-Id")]++
			}
		}
		if len(confirms) == len(late) || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	var confirmedAfter time.Duration
	var lastDigest time.Time
	for _, m := range sm.Messages() {
		if strings.HasPrefix(m.To[0], "late") {
			confirmedAfter = max(confirmedAfter, m.Received.Sub(up))
		} else if m.Received.After(lastDigest) {
			lastDigest = m.Received
		}
	}
	for _, a := range late {
		if len(confirms[a]) != 1 {
			t.Errorf("%s: %d distinct confirmation emails, want 1", a, len(confirms[a]))
		}
		if st := in.status(a); st != "pending" {
			t.Errorf("%s is %s, want pending", a, st)
		}
	}

	digests := digestIDs(t, onlyTo(sm.Messages(), "@example.org"))
	resends := 0
	for _, e := range emails {
		ids := digests[e]
		if rejected[e] {
			if len(ids) != 0 {
				t.Fatalf("%s (550) got %v", e, ids)
			}
			continue
		}
		if len(ids) != 1 {
			t.Fatalf("%s got %d distinct digests for run 1: %v", e, len(ids), ids)
		}
		for _, n := range ids {
			resends += n - 1
		}
	}
	if resends > connections {
		t.Fatalf("%d resends: more than the %d connections the outage cut", resends, connections)
	}
	var bounced1 []string
	for e := range rejected {
		s := in.subscriber(e)
		if s["status"] != "confirmed" {
			t.Fatalf("%s after one 550 (bounce_limit 2): %v", e, s)
		}
		if len(bounced1) == 0 {
			b, _ := json.Marshal(s)
			bounced1 = append(bounced1, string(b))
		}
	}
	// The bounce counters themselves are not in the API's subscriber
	// (only the status is): read them from the database, herald stopped.
	p.stop()
	bounces := in.storedBounces(emails)
	p = in.start()
	counted := 0
	for _, e := range emails {
		want := 0
		if rejected[e] {
			want = 1
		}
		if bounces[e] != want {
			t.Fatalf("%s: %d consecutive bounces after run 1, want %d", e, bounces[e], want)
		}
		counted += bounces[e]
	}
	mu.Lock()
	t.Logf("FIGURES smtp run 1: readers %d, 550 readers %d; sent %v failed %v, temporary failures retried %v; bursts before the outage %v (%d connections dropped after DATA); outage %v, %d accepted during it, last digest %v after it ended; resends %d (≤ %d connections the outage cut); %d sign-ups during the outage, their confirmations all in %v after it; run 1 took %v",
		readers, len(rejected), run["sent"], run["failed"], run["retries"], bursts, sm.Dropped(), outage, duringOutage, lastDigest.Sub(up).Round(time.Millisecond), resends, connections, len(late), confirmedAfter.Round(time.Millisecond), time.Since(begin).Round(time.Millisecond))
	mu.Unlock()
	t.Logf("a 550 reader after run 1 (API): %s; bounce counters in the database: %d readers at 1, the rest at 0", bounced1[0], counted)

	// Run 2: the same addresses fail again and become bounced.
	sm.Reset()
	in.addPost("smtp-2", "Misbehaving SMTP, part two")
	run = in.waitRun(in.startRun("daily"), 2*time.Minute)
	if run["state"] != "done" || run["sent"] != float64(ok) || run["failed"] != float64(len(rejected)) {
		t.Fatalf("run 2: %v", run)
	}
	for e := range rejected {
		if st := in.status(e); st != "bounced" {
			t.Fatalf("%s after two 550s (bounce_limit 2): %s", e, st)
		}
	}
	digests = digestIDs(t, sm.Messages())
	for _, e := range emails {
		if n := len(digests[e]); (rejected[e] && n != 0) || (!rejected[e] && n != 1) {
			t.Fatalf("run 2: %s got %d digests", e, n)
		}
	}
	var stats struct {
		Subscribers struct {
			ByStatus map[string]int `json:"by_status"`
		}
		Emails struct{ Sent, Failed int }
	}
	_ = json.Unmarshal([]byte(in.api("GET", "/api/v1/stats", "").Body), &stats)
	if stats.Subscribers.ByStatus["bounced"] != len(rejected) {
		t.Fatalf("stats: %d bounced, want %d", stats.Subscribers.ByStatus["bounced"], len(rejected))
	}

	// Run 3: bounced readers get nothing and are not even tried.
	sm.Reset()
	in.addPost("smtp-3", "Misbehaving SMTP, part three")
	run3 := in.waitRun(in.startRun("daily"), 2*time.Minute)
	if run3["state"] != "done" || run3["sent"] != float64(ok) || run3["failed"] != float64(0) || run3["total"] != float64(ok) {
		t.Fatalf("run 3: %v", run3)
	}
	for _, m := range sm.Messages() {
		if rejected[m.To[0]] {
			t.Fatalf("bounced %s got mail", m.To[0])
		}
	}
	t.Logf("FIGURES smtp run 2: sent %v failed %v → %d readers bounced; run 3: total %v sent %v failed %v; stats: emails sent %d failed %d, by status %v",
		run["sent"], run["failed"], stats.Subscribers.ByStatus["bounced"], run3["total"], run3["sent"], run3["failed"], stats.Emails.Sent, stats.Emails.Failed, stats.Subscribers.ByStatus)
}

// onlyTo keeps the messages to addresses ending in suffix.
func onlyTo(msgs []smtptest.Message, suffix string) []smtptest.Message {
	var out []smtptest.Message
	for _, m := range msgs {
		if strings.HasSuffix(m.To[0], suffix) {
			out = append(out, m)
		}
	}
	return out
}
