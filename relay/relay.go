// Package relay spreads mail over several SMTP relays: by weight, within
// each relay's own connections and rate, and around relays that fail. A
// relay that refuses connections or answers 4xx repeatedly is set aside,
// with a backoff that doubles while it stays down, and probed before it
// gets mail again. A message a relay failed to take goes to the next
// relay within the same Send, byte for byte (the same Message-ID), so
// failover neither loses mail nor changes what a digest run records.
package relay

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/herald-dev/herald"
)

// Relay is one member of a Set.
type Relay struct {
	// Name is what stats and logs call it (e.g. "smtp:relay-a.example.net:587").
	Name string
	// Transport delivers through this relay alone (a mailer.SMTPTransport
	// with the relay's own connections and rate).
	Transport herald.Transport
	// Weight is the relay's share of the mail (default 1).
	Weight int
	// Connections is how many messages the relay takes at once (its pool
	// size, default 1): a relay with all of them busy passes its turn to
	// one with a free connection.
	Connections int
	// Rate is the relay's cap in messages per second, shown in stats.
	Rate float64
}

// Prober is met by transports that can check their relay without sending
// mail (mailer.SMTPTransport: connect, EHLO, TLS, AUTH, QUIT).
type Prober interface {
	Probe(ctx context.Context) error
}

// Options tune a Set. Zero values take the defaults noted.
type Options struct {
	Logger *slog.Logger
	Now    func() time.Time
	// FailLimit is how many temporary failures in a row (refused or
	// dropped connections, 4xx replies) set a relay aside (default 3).
	FailLimit int
	// Backoff is how long a relay is first set aside (default 30s); each
	// failed probe doubles it, up to MaxBackoff (default 10m).
	Backoff    time.Duration
	MaxBackoff time.Duration
	// ProbeTimeout bounds one probe (default 15s).
	ProbeTimeout time.Duration
	// OnStateChange, if set, hears every relay set aside or back in use.
	OnStateChange func(name, state string)
}

// Set is a herald.Transport over several relays.
type Set struct {
	opt     Options
	log     *slog.Logger
	members []*member

	mu sync.Mutex // guards the scheduling and health fields of every member
}

type member struct {
	Relay
	idx int

	// Guarded by Set.mu.
	inflight   int
	current    int           // smooth weighted round-robin score
	fails      int           // temporary failures in a row
	asideUntil time.Time     // zero: in use
	backoff    time.Duration // length of the next set-aside
	probing    bool          // one attempt is testing the relay
	sent       int64
	failed     int64
	deferred   int64
	asides     int64
	lastErr    string
}

// New returns a Set over relays (at least one).
func New(relays []Relay, opt Options) (*Set, error) {
	if len(relays) == 0 {
		return nil, errors.New("relay: no relays")
	}
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.FailLimit <= 0 {
		opt.FailLimit = 3
	}
	if opt.Backoff <= 0 {
		opt.Backoff = 30 * time.Second
	}
	if opt.MaxBackoff < opt.Backoff {
		opt.MaxBackoff = max(opt.Backoff, 10*time.Minute)
	}
	if opt.ProbeTimeout <= 0 {
		opt.ProbeTimeout = 15 * time.Second
	}
	s := &Set{opt: opt, log: opt.Logger.With("component", "relays")}
	seen := map[string]bool{}
	for i, r := range relays {
		if r.Transport == nil {
			return nil, fmt.Errorf("relay: relay %d (%s) has no transport", i, r.Name)
		}
		if r.Name == "" {
			r.Name = fmt.Sprintf("relay-%d", i+1)
		}
		if seen[r.Name] {
			return nil, fmt.Errorf("relay: %s is listed twice", r.Name)
		}
		seen[r.Name] = true
		if r.Weight <= 0 {
			r.Weight = 1
		}
		if r.Connections <= 0 {
			r.Connections = 1
		}
		s.members = append(s.members, &member{Relay: r, idx: i, backoff: opt.Backoff})
	}
	return s, nil
}

// Connections is how many messages the set takes at once: the sum of its
// relays' connections (what the senders' worker counts should match).
func (s *Set) Connections() int {
	n := 0
	for _, m := range s.members {
		n += m.Connections
	}
	return n
}

// Send delivers msg through one relay, going on to the next while relays
// fail for a temporary reason. A permanent refusal (5xx to RCPT or DATA)
// is about the reader's address, not the relay: it is returned as it is.
// When every relay failed or is set aside, the last temporary error is
// returned and the caller retries later, as it would with one relay.
func (s *Set) Send(ctx context.Context, msg *herald.Message) error {
	tried := make([]bool, len(s.members))
	var last error
	for {
		m, probe := s.pick(tried)
		if m == nil {
			break
		}
		tried[m.idx] = true
		if probe {
			if err := s.probe(ctx, m); err != nil {
				s.release(m)
				if ctx.Err() != nil {
					s.interrupted(m)
					return &herald.SendError{Temporary: true, Err: fmt.Errorf("relay: %w", ctx.Err())}
				}
				s.failedProbe(m, err)
				last = err
				continue
			}
		}
		err := m.Transport.Send(ctx, msg)
		s.release(m)
		switch {
		case err == nil:
			s.answered(m, nil)
			return nil
		case herald.IsPermanent(err):
			// The relay answered: it is healthy, the address is not.
			s.answered(m, err)
			return err
		case ctx.Err() != nil:
			// Our own deadline or shutdown, not the relay's fault.
			s.interrupted(m)
			return err
		default:
			s.deferred(m, err)
			last = err
		}
	}
	if last == nil {
		return &herald.SendError{Temporary: true, Err: errors.New("relay: every relay is set aside")}
	}
	return &herald.SendError{Temporary: true, Err: fmt.Errorf("relay: no relay took the message; last error: %w", last)}
}

// pick chooses the relay for the next attempt among those not tried yet,
// and counts the attempt in its in-flight number. A set-aside relay
// whose backoff ended is picked first, to probe it (one attempt at a
// time). Otherwise the relays in use share by smooth weighted
// round-robin, a busy relay passing its turn to one with a free
// connection. probe is true when the relay must be probed first.
func (s *Set) pick(tried []bool) (m *member, probe bool) {
	now := s.opt.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.members {
		if !tried[c.idx] && !c.asideUntil.IsZero() && !c.probing && !now.Before(c.asideUntil) {
			c.probing = true
			c.inflight++
			return c, true
		}
	}
	total := 0
	var best, bestFree *member
	for _, c := range s.members {
		if tried[c.idx] || !c.asideUntil.IsZero() {
			continue
		}
		c.current += c.Weight
		total += c.Weight
		if best == nil || c.current > best.current {
			best = c
		}
		if c.inflight < c.Connections && (bestFree == nil || c.current > bestFree.current) {
			bestFree = c
		}
	}
	if best == nil {
		return nil, false
	}
	if bestFree != nil {
		best = bestFree
	}
	best.current -= total
	best.inflight++
	return best, false
}

func (s *Set) release(m *member) {
	s.mu.Lock()
	m.inflight--
	s.mu.Unlock()
}

// probe checks a relay whose set-aside time is over. Without a Prober,
// the attempt itself is the probe.
func (s *Set) probe(ctx context.Context, m *member) error {
	p, ok := m.Transport.(Prober)
	if !ok {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, s.opt.ProbeTimeout)
	defer cancel()
	err := p.Probe(ctx)
	if err != nil {
		return err
	}
	s.log.Debug("probe answered", "relay", m.Name)
	return nil
}

// answered records a relay's answer to a message: taken (err nil) or
// refused for good. Either way the relay works.
func (s *Set) answered(m *member, err error) {
	s.mu.Lock()
	if err == nil {
		m.sent++
	} else {
		m.failed++
	}
	m.fails = 0
	back := !m.asideUntil.IsZero()
	if back {
		m.asideUntil = time.Time{}
		m.probing = false
		m.backoff = s.opt.Backoff
		m.lastErr = ""
	}
	s.mu.Unlock()
	if back {
		s.log.Info("relay back in use", "relay", m.Name)
		s.stateChanged(m.Name, herald.RouteUp)
	}
}

// deferred counts a temporary failure and sets the relay aside when they
// come FailLimit in a row, or when it was the probe.
func (s *Set) deferred(m *member, err error) {
	s.mu.Lock()
	m.deferred++
	m.fails++
	m.lastErr = err.Error()
	probing := m.probing
	s.mu.Unlock()
	if probing {
		s.failedProbe(m, err)
		return
	}
	s.mu.Lock()
	aside := m.asideUntil.IsZero() && m.fails >= s.opt.FailLimit
	var until time.Time
	if aside {
		until = s.opt.Now().Add(m.backoff)
		m.asideUntil = until
		m.asides++
	}
	fails := m.fails
	s.mu.Unlock()
	if aside {
		s.log.Warn("relay set aside", "relay", m.Name, "failures", fails, "until", until, "err", err)
		s.stateChanged(m.Name, herald.RouteSetAside)
	}
}

// failedProbe sets the relay aside again for twice as long.
func (s *Set) failedProbe(m *member, err error) {
	s.mu.Lock()
	m.backoff = min(2*m.backoff, s.opt.MaxBackoff)
	until := s.opt.Now().Add(m.backoff)
	m.asideUntil = until
	m.probing = false
	m.lastErr = err.Error()
	s.mu.Unlock()
	s.log.Warn("relay still failing; set aside again", "relay", m.Name, "until", until, "err", err)
	s.stateChanged(m.Name, herald.RouteSetAside)
}

// interrupted: an attempt cut by the caller's context tells nothing about
// the relay; a probe it was is not over, the next attempt probes again.
func (s *Set) interrupted(m *member) {
	s.mu.Lock()
	m.probing = false
	s.mu.Unlock()
}

func (s *Set) stateChanged(name, state string) {
	if s.opt.OnStateChange != nil {
		s.opt.OnStateChange(name, state)
	}
}

// Routes reports every relay, in configuration order.
func (s *Set) Routes() []herald.RouteStats {
	now := s.opt.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]herald.RouteStats, 0, len(s.members))
	for _, m := range s.members {
		st := herald.RouteStats{
			Name: m.Name, Kind: "smtp", Weight: m.Weight, Rate: m.Rate,
			Sent: m.sent, Failed: m.failed, Deferred: m.deferred,
			SetAsides: m.asides, LastError: m.lastErr, State: herald.RouteUp,
		}
		switch {
		case m.asideUntil.IsZero():
		case m.probing || !now.Before(m.asideUntil):
			st.State = herald.RouteProbing
		default:
			st.State = herald.RouteSetAside
			until := m.asideUntil
			st.SetAsideUntil = &until
		}
		out = append(out, st)
	}
	return out
}

// Close closes every relay's transport.
func (s *Set) Close() error {
	var errs []error
	for _, m := range s.members {
		if err := m.Transport.Close(); err != nil {
			errs = append(errs, fmt.Errorf("relay: close %s: %w", m.Name, err))
		}
	}
	return errors.Join(errs...)
}
