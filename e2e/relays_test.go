package e2e

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/herald-dev/herald"
	"github.com/herald-dev/herald/internal/smtptest"
	"github.com/herald-dev/herald/internal/testenv"
)

// relaysConfig is a herald sending over the relay set: one [[relays]]
// entry per server, two connections each ([smtp] is then unused).
func relaysConfig(servers ...*smtptest.Server) string {
	var b strings.Builder
	b.WriteString(robustConfig(servers[0].Port(), "warn",
		"[mail]\nretry_backoff = \"200ms\"\nrelay_failures = 3\nrelay_backoff = \"1s\"",
		"[digest]\ndaily = \"\"\nweekly = \"\"",
		"[security]\nconfirmations_per_hour = 0"))
	for i, s := range servers {
		fmt.Fprintf(&b, "[[relays]]\nname = \"relay-%c\"\nhost = \"127.0.0.1\"\nport = %d\ntls = \"none\"\nconnections = 2\nweight = 1\ntimeout = \"5s\"\n", 'a'+i, s.Port())
	}
	return b.String()
}

// routes reads the relays' figures from GET /api/v1/stats, by name.
func (in *instance) routes() map[string]herald.RouteStats {
	in.t.Helper()
	r := in.api("GET", "/api/v1/stats", "")
	var st herald.Stats
	if r.Status != 200 || json.Unmarshal([]byte(r.Body), &st) != nil {
		in.t.Fatalf("stats: %d %s", r.Status, r.Body)
	}
	out := map[string]herald.RouteStats{}
	for _, rt := range st.Routes {
		out[rt.Name] = rt
	}
	return out
}

// TestRelaySetFailover: a 5,000-reader run over three relays; a third of
// the way in, relay b goes down (connections refused, open ones cut), and
// after its share has gone to the others it comes back. The run finishes
// with every reader sent; every reader got exactly one distinct
// Message-ID (a message cut in flight may arrive twice, with the same
// id); relay b was set aside, a and c took its mail, and once back b is
// probed and used again. /api/v1/stats and /metrics show it all.
func TestRelaySetFailover(t *testing.T) {
	const readers = 5000
	a, b, c := smtptest.Start(t), smtptest.Start(t), smtptest.Start(t)
	in := newInstance(t, relaysConfig(a, b, c))
	p := in.start()
	defer p.stop()
	emails := in.importReaders(readers, "example.org", "daily")
	in.addPost("relays-1", "Over three relays")
	total := func() int { return a.Count() + b.Count() + c.Count() }
	runID := in.startRun("daily")

	testenv.Eventually(t, 2*time.Minute, "a third of the run sent", func() bool { return total() >= readers/3 })
	if err := b.SetRefuse(true); err != nil {
		t.Fatal(err)
	}
	downAt := b.Count()
	othersAt := a.Count() + c.Count()
	downFrom := downAt + othersAt
	testenv.Eventually(t, 2*time.Minute, "relay b set aside", func() bool { return in.routes()["relay-b"].State != "up" })
	testenv.Eventually(t, 2*time.Minute, "the others took b's share", func() bool { return a.Count()+c.Count() >= othersAt+readers/4 })
	if b.Count() != downAt {
		t.Fatalf("relay b took %d messages while down", b.Count()-downAt)
	}
	if err := b.SetRefuse(false); err != nil {
		t.Fatal(err)
	}

	run := in.waitRun(runID, 5*time.Minute)
	if run["state"] != "done" || run["sent"] != float64(readers) || run["failed"] != float64(0) {
		t.Fatalf("run: %v", run)
	}
	// Relay b back in use: once its backoff is over, the next message
	// probes it. Test emails go through the same relay set.
	for i := 0; in.routes()["relay-b"].State != "up"; i++ {
		if i == 100 {
			t.Fatalf("relay b not back in use: %+v", in.routes()["relay-b"])
		}
		if r := in.api("POST", "/api/v1/test-email", `{"to":"probe@example.net"}`); r.Status >= 300 {
			t.Fatalf("test email: %d %s", r.Status, r.Body)
		}
		time.Sleep(200 * time.Millisecond)
	}

	var msgs []smtptest.Message
	for _, s := range []*smtptest.Server{a, b, c} {
		msgs = append(msgs, onlyTo(s.Messages(), "@example.org")...)
	}
	ids := digestIDs(t, msgs)
	twice := 0
	for _, e := range emails {
		got := ids[e]
		if len(got) != 1 {
			t.Fatalf("%s got %d distinct Message-IDs: %v", e, len(got), got)
		}
		for _, n := range got {
			twice += n - 1
		}
	}
	if twice > 2 {
		t.Fatalf("%d digests arrived twice; only the 2 in flight on relay b when it went down may", twice)
	}
	rs := in.routes()
	if rs["relay-b"].SetAsides < 1 || rs["relay-b"].Deferred < 3 {
		t.Fatalf("relay b was not set aside: %+v", rs["relay-b"])
	}
	for _, name := range []string{"relay-a", "relay-c"} {
		if rs[name].State != "up" || rs[name].Deferred != 0 {
			t.Fatalf("%s: %+v", name, rs[name])
		}
	}
	if m := in.do("GET", "/metrics", "", "", "Authorization", "Bearer "+adminToken); !strings.Contains(m.Body, `herald_route_set_asides_total{kind="smtp",route="relay-b"}`) {
		t.Fatalf("metrics lack the relay figures:\n%s", m.Body)
	}
	t.Logf("FIGURES relays: %d readers over 3 relays, b down from message %d to %d; a %d, b %d (before the outage %d), c %d; duplicates %d; routes %+v",
		readers, downFrom, othersAt+downAt+readers/4, a.Count(), b.Count(), downAt, c.Count(), twice, rs)
}
