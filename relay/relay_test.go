package relay

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/herald-dev/herald"
	"github.com/herald-dev/herald/internal/smtptest"
	"github.com/herald-dev/herald/mailer"
)

// clock is a settable time for the set-aside backoff.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func newClock() *clock { return &clock{now: time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)} }

// smtpRelay is a Relay over a real SMTP server on loopback.
func smtpRelay(t *testing.T, srv *smtptest.Server, weight, conns int) Relay {
	t.Helper()
	tr := mailer.NewSMTPTransport(mailer.SMTPConfig{
		Host: srv.Host(), Port: srv.Port(), TLS: mailer.TLSNone, Connections: conns, Timeout: 5 * time.Second,
	}, nil)
	return Relay{Name: "smtp:" + srv.Addr(), Transport: tr, Weight: weight, Connections: conns}
}

func message(i int) *herald.Message {
	id := fmt.Sprintf("<msg-%05d@blog.example.org>", i)
	raw := "From: Blog <digest@blog.example.org>\r\nTo: r" + fmt.Sprint(i) + "@example.net\r\nSubject: post\r\nMessage-ID: " + id +
		"\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nHello.\r\n"
	return &herald.Message{From: "digest@blog.example.org", To: fmt.Sprintf("r%d@example.net", i), MessageID: id, Raw: []byte(raw)}
}

func newSet(t *testing.T, c *clock, relays ...Relay) *Set {
	t.Helper()
	s, err := New(relays, Options{Now: c.Now, FailLimit: 3, Backoff: time.Minute, MaxBackoff: 8 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func route(t *testing.T, s *Set, name string) herald.RouteStats {
	t.Helper()
	for _, r := range s.Routes() {
		if r.Name == name {
			return r
		}
	}
	t.Fatalf("no route %s in %+v", name, s.Routes())
	return herald.RouteStats{}
}

// ids counts each Message-ID over the servers' recorded messages.
func ids(servers ...*smtptest.Server) map[string]int {
	out := map[string]int{}
	for _, s := range servers {
		for _, m := range s.Messages() {
			for _, l := range strings.Split(string(m.Data), "\r\n") {
				if v, ok := strings.CutPrefix(l, "Message-ID: "); ok {
					out[v]++
				}
			}
		}
	}
	return out
}

func TestSpreadByWeight(t *testing.T) {
	a, b := smtptest.Start(t), smtptest.Start(t)
	s := newSet(t, newClock(), smtpRelay(t, a, 1, 2), smtpRelay(t, b, 3, 2))
	ctx := context.Background()
	for i := range 400 {
		if err := s.Send(ctx, message(i)); err != nil {
			t.Fatal(err)
		}
	}
	if a.Count() != 100 || b.Count() != 300 {
		t.Fatalf("weights 1:3 over 400 messages: relay a got %d, b got %d (want 100 and 300)", a.Count(), b.Count())
	}
	if r := route(t, s, "smtp:"+b.Addr()); r.Sent != 300 || r.State != herald.RouteUp || r.Weight != 3 {
		t.Fatalf("route b: %+v", r)
	}
}

// A busy relay passes its turn: with relay a's one connection held by a
// slow message, the next message goes to b at once.
func TestBusyRelayPassesItsTurn(t *testing.T) {
	a, b := smtptest.Start(t), smtptest.Start(t)
	s := newSet(t, newClock(), smtpRelay(t, a, 1, 1), smtpRelay(t, b, 1, 1))
	ctx := context.Background()
	a.SetDelay(time.Hour) // cut short by Close at the test's end
	// The first pick is a (equal weights: the first listed wins ties).
	go func() { _ = s.Send(ctx, message(0)) }()
	waitFor(t, func() bool { return a.ActiveConnections() == 1 && inflight(s, 0) == 1 })
	for i := 1; i <= 4; i++ {
		if err := s.Send(ctx, message(i)); err != nil {
			t.Fatal(err)
		}
	}
	if b.Count() != 4 {
		t.Fatalf("relay b got %d of the 4 messages sent while a was busy", b.Count())
	}
}

func inflight(s *Set, i int) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.members[i].inflight
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 10s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Each kind of relay fault: the messages go to the healthy relay, each
// exactly once with its own Message-ID, and the faulty relay is set aside
// after FailLimit failures in a row.
func TestFailover(t *testing.T) {
	cases := []struct {
		name  string
		fault func(*smtptest.Server)
	}{
		{"refusing connections", func(s *smtptest.Server) { _ = s.SetRefuse(true) }},
		{"answering 421", func(s *smtptest.Server) { s.FailNext(1000, 421, "4.3.2 try again later") }},
		{"answering 451 to DATA", func(s *smtptest.Server) { s.FailNext(1000, 451, "4.4.1 local error") }},
		{"dropping after DATA", func(s *smtptest.Server) { s.DropAfterData(1000) }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			bad, good := smtptest.Start(t), smtptest.Start(t)
			c := newClock()
			s := newSet(t, c, smtpRelay(t, bad, 1, 1), smtpRelay(t, good, 1, 1))
			tc.fault(bad)
			ctx := context.Background()
			const n = 20
			for i := range n {
				if err := s.Send(ctx, message(i)); err != nil {
					t.Fatalf("message %d: %v", i, err)
				}
			}
			got := ids(bad, good)
			if len(got) != n {
				t.Fatalf("%d distinct Message-IDs arrived, want %d", len(got), n)
			}
			for id, k := range got {
				if k != 1 {
					t.Errorf("%s arrived %d times", id, k)
				}
			}
			if good.Count() != n {
				t.Fatalf("the healthy relay got %d of %d", good.Count(), n)
			}
			r := route(t, s, "smtp:"+bad.Addr())
			if r.State != herald.RouteSetAside || r.Deferred != 3 || r.SetAsides != 1 || r.Sent != 0 || r.LastError == "" {
				t.Fatalf("faulty relay after %d messages: %+v", n, r)
			}
			if r.SetAsideUntil == nil || !r.SetAsideUntil.Equal(c.Now().Add(time.Minute)) {
				t.Fatalf("set aside until %v, want a minute from now", r.SetAsideUntil)
			}
			if g := route(t, s, "smtp:"+good.Addr()); g.Sent != n || g.Deferred != 0 {
				t.Fatalf("healthy relay: %+v", g)
			}
		})
	}
}

// A set-aside relay is probed once its backoff is over: a failed probe
// doubles the backoff (no mail is lost meanwhile), a good one brings the
// relay back into the spread.
func TestSetAsideProbeAndReturn(t *testing.T) {
	bad, good := smtptest.Start(t), smtptest.Start(t)
	c := newClock()
	var states []string
	s, err := New([]Relay{smtpRelay(t, bad, 1, 1), smtpRelay(t, good, 1, 1)}, Options{
		Now: c.Now, FailLimit: 2, Backoff: time.Minute, MaxBackoff: 3 * time.Minute,
		OnStateChange: func(name, state string) { states = append(states, state) },
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	_ = bad.SetRefuse(true)
	send := func(from, to int) {
		t.Helper()
		for i := from; i < to; i++ {
			if err := s.Send(ctx, message(i)); err != nil {
				t.Fatalf("message %d: %v", i, err)
			}
		}
	}
	send(0, 4)
	name := "smtp:" + bad.Addr()
	if r := route(t, s, name); r.State != herald.RouteSetAside {
		t.Fatalf("after 4 messages: %+v", r)
	}
	before := bad.Connections()
	send(4, 8)
	if bad.Connections() != before {
		t.Fatal("a set-aside relay was tried before its backoff ended")
	}

	c.Add(time.Minute) // backoff over; the relay is still down: the probe fails
	send(8, 9)
	r := route(t, s, name)
	if r.State != herald.RouteSetAside || !r.SetAsideUntil.Equal(c.Now().Add(2*time.Minute)) {
		t.Fatalf("after a failed probe: %+v (want set aside for 2m)", r)
	}
	c.Add(2 * time.Minute)
	send(9, 10) // fails again: 4m, capped at 3m
	if r := route(t, s, name); !r.SetAsideUntil.Equal(c.Now().Add(3 * time.Minute)) {
		t.Fatalf("backoff not capped at MaxBackoff: %+v", r)
	}

	if err := bad.SetRefuse(false); err != nil {
		t.Fatal(err)
	}
	c.Add(3 * time.Minute)
	send(10, 20)
	if r := route(t, s, name); r.State != herald.RouteUp || r.Sent == 0 {
		t.Fatalf("relay back up: %+v", r)
	}
	if bad.Count() != 5 || good.Count() != 15 {
		t.Fatalf("after coming back, relay got %d and the other %d of the last 10 (want 5 and 5 more)", bad.Count(), good.Count()-10)
	}
	got := ids(bad, good)
	if len(got) != 20 {
		t.Fatalf("%d distinct messages of 20", len(got))
	}
	want := []string{herald.RouteSetAside, herald.RouteSetAside, herald.RouteSetAside, herald.RouteUp}
	if fmt.Sprint(states) != fmt.Sprint(want) {
		t.Fatalf("state changes %v, want %v", states, want)
	}
}

// A permanent refusal is about the address: no other relay is asked, and
// the relay stays in use.
func TestPermanentFailureIsNotFailover(t *testing.T) {
	a, b := smtptest.Start(t), smtptest.Start(t)
	s := newSet(t, newClock(), smtpRelay(t, a, 1, 1), smtpRelay(t, b, 1, 1))
	reject := func(addr string) (int, string, bool) {
		return 550, "5.1.1 no such user", strings.HasPrefix(addr, "r0@")
	}
	a.RejectRecipient(reject)
	b.RejectRecipient(reject)
	err := s.Send(context.Background(), message(0))
	if !herald.IsPermanent(err) {
		t.Fatalf("550: %v, want a permanent error", err)
	}
	if a.Count()+b.Count() != 0 {
		t.Fatal("a rejected message was delivered")
	}
	total := 0
	for _, r := range s.Routes() {
		total += int(r.Failed)
		if r.State != herald.RouteUp || r.Deferred != 0 {
			t.Fatalf("a permanent refusal changed a relay's health: %+v", r)
		}
	}
	if total != 1 {
		t.Fatalf("failed counted %d times, want once", total)
	}
}

func TestEveryRelayDown(t *testing.T) {
	a, b := smtptest.Start(t), smtptest.Start(t)
	s := newSet(t, newClock(), smtpRelay(t, a, 1, 1), smtpRelay(t, b, 1, 1))
	_ = a.SetRefuse(true)
	_ = b.SetRefuse(true)
	for i := range 5 {
		err := s.Send(context.Background(), message(i))
		if err == nil || herald.IsPermanent(err) {
			t.Fatalf("every relay down: %v, want a temporary error", err)
		}
	}
	err := s.Send(context.Background(), message(9))
	if !strings.Contains(err.Error(), "every relay is set aside") {
		t.Fatalf("both set aside: %v", err)
	}
}

// Many senders at once over three relays, one going down a third of the
// way: every message arrives, each with its own Message-ID. A message the
// relay had taken when its connection was cut may arrive twice, with the
// same id: at most as many as it had connections (run with -race).
func TestConcurrentFailover(t *testing.T) {
	a, b, c := smtptest.Start(t), smtptest.Start(t), smtptest.Start(t)
	s := newSet(t, newClock(), smtpRelay(t, a, 1, 3), smtpRelay(t, b, 1, 3), smtpRelay(t, c, 1, 3))
	const n = 600
	work := make(chan int)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range s.Connections() {
		wg.Go(func() {
			for i := range work {
				if err := s.Send(context.Background(), message(i)); err != nil {
					errs <- err
				}
			}
		})
	}
	for i := range n {
		if i == n/3 {
			_ = b.SetRefuse(true)
		}
		work <- i
	}
	close(work)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	got := ids(a, b, c)
	if len(got) != n {
		t.Fatalf("%d distinct of %d", len(got), n)
	}
	twice := 0
	for _, k := range got {
		twice += k - 1
	}
	if twice > 3 {
		t.Fatalf("%d messages arrived twice; only the 3 in flight at the outage may", twice)
	}
	if r := route(t, s, "smtp:"+b.Addr()); r.State != herald.RouteSetAside {
		t.Fatalf("relay b: %+v", r)
	}
	if a.Count() < n/3 || c.Count() < n/3 {
		t.Fatalf("b's share did not go to the others: a %d b %d c %d", a.Count(), b.Count(), c.Count())
	}
}

func TestNewRefusesBadInput(t *testing.T) {
	if _, err := New(nil, Options{}); err == nil {
		t.Fatal("no relays accepted")
	}
	a := smtptest.Start(t)
	r := smtpRelay(t, a, 1, 1)
	if _, err := New([]Relay{r, r}, Options{}); err == nil {
		t.Fatal("the same relay twice accepted")
	}
	if _, err := New([]Relay{{Name: "x"}}, Options{}); err == nil {
		t.Fatal("a relay without a transport accepted")
	}
}
