package mailer

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/herald-dev/herald"
	"github.com/herald-dev/herald/internal/smtptest"
)

// memStore is an in-memory herald.OutboxStore: the store package is built
// elsewhere, and the Sender needs only this contract.
type memStore struct {
	mu      sync.Mutex
	next    uint64
	msgs    map[uint64]*herald.OutboxMessage
	sent    []uint64
	failed  map[uint64]string
	dueErrs int // DueMessages fails this many times
	// nextDue counts NextDue calls: the sender asks it right before it
	// sleeps.
	nextDue int
}

func newMemStore() *memStore {
	return &memStore{msgs: map[uint64]*herald.OutboxMessage{}, failed: map[uint64]string{}}
}

func (s *memStore) Enqueue(_ context.Context, msgs ...*herald.OutboxMessage) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, m := range msgs {
		s.next++
		m.ID = s.next
		c := *m
		s.msgs[m.ID] = &c
	}
	return nil
}

func (s *memStore) DueMessages(_ context.Context, now time.Time, limit int) ([]*herald.OutboxMessage, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.dueErrs > 0 {
		s.dueErrs--
		return nil, errors.New("store unavailable")
	}
	var out []*herald.OutboxMessage
	for _, m := range s.msgs {
		if !m.NextAttempt.After(now) {
			c := *m
			out = append(out, &c)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	if len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

func (s *memStore) NextDue(context.Context) (time.Time, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nextDue++
	var next time.Time
	for _, m := range s.msgs {
		if next.IsZero() || m.NextAttempt.Before(next) {
			next = m.NextAttempt
		}
	}
	return next, nil
}

func (s *memStore) MessageSent(_ context.Context, id uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.msgs[id]; !ok {
		return fmt.Errorf("message %d: %w", id, errors.New("not found"))
	}
	delete(s.msgs, id)
	s.sent = append(s.sent, id)
	return nil
}

func (s *memStore) RetryMessage(_ context.Context, id uint64, next time.Time, errMsg string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, ok := s.msgs[id]
	if !ok {
		return fmt.Errorf("message %d not found", id)
	}
	m.Attempts++
	m.NextAttempt = next
	m.LastError = errMsg
	return nil
}

func (s *memStore) MessageFailed(_ context.Context, id uint64, errMsg string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.msgs[id]; !ok {
		return fmt.Errorf("message %d not found", id)
	}
	delete(s.msgs, id)
	s.failed[id] = errMsg
	return nil
}

func (s *memStore) OutboxDepth(context.Context) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.msgs), nil
}

func (s *memStore) get(id uint64) (herald.OutboxMessage, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, ok := s.msgs[id]
	if !ok {
		return herald.OutboxMessage{}, false
	}
	return *m, true
}

func (s *memStore) state() (depth, sent int, failed map[uint64]string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	failed = make(map[uint64]string, len(s.failed))
	for k, v := range s.failed {
		failed[k] = v
	}
	return len(s.msgs), len(s.sent), failed
}

var _ herald.OutboxStore = (*memStore)(nil)

func outboxMessage(t testing.TB, to string) *herald.OutboxMessage {
	t.Helper()
	m := testMessage(t, to)
	return &herald.OutboxMessage{
		Kind:      herald.KindDigest,
		To:        m.To,
		MessageID: m.MessageID,
		Raw:       m.Raw,
		CreatedAt: time.Now(),
	}
}

// results records OnResult calls.
type results struct {
	mu   sync.Mutex
	errs map[string][]error
}

func (r *results) on(kind herald.MessageKind, to string, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.errs == nil {
		r.errs = map[string][]error{}
	}
	r.errs[to] = append(r.errs[to], err)
}

func (r *results) get(to string) []error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]error(nil), r.errs[to]...)
}

// runSender starts s.Run and stops it when the test ends.
func runSender(t *testing.T, s *Sender) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run: %v", err)
				}
			case <-time.After(10 * time.Second):
				t.Error("Run did not return after cancel")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func fastOptions(t *testing.T, r *results) SenderOptions {
	o := SenderOptions{
		Logger:       testLogger(t),
		BaseBackoff:  20 * time.Millisecond,
		MaxBackoff:   100 * time.Millisecond,
		PollInterval: 50 * time.Millisecond,
	}
	if r != nil {
		o.OnResult = r.on
	}
	return o
}

func TestSenderDelivers(t *testing.T) {
	srv := smtptest.Start(t)
	store := newMemStore()
	var r results
	s := NewSender(store, newTransport(t, srv, nil), fastOptions(t, &r))
	runSender(t, s)
	for i := range 10 {
		store.Enqueue(context.Background(), outboxMessage(t, fmt.Sprintf("r%d@example.com", i)))
	}
	s.Notify()
	msgs := srv.WaitFor(t, 10, 5*time.Second)
	waitUntil(t, 5*time.Second, "outbox drained", func() bool { d, n, _ := store.state(); return d == 0 && n == 10 })
	seen := map[string]bool{}
	for _, m := range msgs {
		if m.From != "digest@blog.example.org" {
			t.Errorf("envelope from %q", m.From)
		}
		seen[m.To[0]] = true
	}
	if len(seen) != 10 {
		t.Errorf("recipients %v", seen)
	}
	waitUntil(t, time.Second, "results", func() bool { return len(r.get("r9@example.com")) == 1 })
	if errs := r.get("r3@example.com"); len(errs) != 1 || errs[0] != nil {
		t.Errorf("OnResult for r3: %v", errs)
	}
}

func TestSenderSMTPDown(t *testing.T) {
	srv := smtptest.Start(t)
	srv.SetRefuse(true)
	store := newMemStore()
	var r results
	s := NewSender(store, newTransport(t, srv, nil), fastOptions(t, &r))
	runSender(t, s)
	for i := range 3 {
		store.Enqueue(context.Background(), outboxMessage(t, fmt.Sprintf("r%d@example.com", i)))
	}
	s.Notify()
	// Every message waits and is retried, none failed.
	waitUntil(t, 5*time.Second, "retries", func() bool {
		for id := uint64(1); id <= 3; id++ {
			if m, ok := store.get(id); !ok || m.Attempts < 2 {
				return false
			}
		}
		return true
	})
	m, _ := store.get(1)
	if !strings.Contains(m.LastError, "temporary") || !m.NextAttempt.After(m.CreatedAt) {
		t.Errorf("retry state: %+v", m)
	}
	if _, _, failed := store.state(); len(failed) != 0 {
		t.Fatalf("failed while SMTP was down: %v", failed)
	}
	if errs := r.get("r0@example.com"); len(errs) < 2 || herald.IsPermanent(errs[0]) {
		t.Errorf("OnResult: %v", errs)
	}
	if err := srv.SetRefuse(false); err != nil {
		t.Fatal(err)
	}
	srv.WaitFor(t, 3, 5*time.Second)
	waitUntil(t, 5*time.Second, "outbox drained", func() bool { d, n, _ := store.state(); return d == 0 && n == 3 })
}

func TestSenderPermanentFailure(t *testing.T) {
	srv := smtptest.Start(t)
	var rcpts atomic.Int32
	srv.RejectRecipient(func(addr string) (int, string, bool) {
		if addr == "gone@example.com" {
			rcpts.Add(1)
			return 550, "no such user", true
		}
		return 0, "", false
	})
	store := newMemStore()
	var r results
	s := NewSender(store, newTransport(t, srv, nil), fastOptions(t, &r))
	runSender(t, s)
	store.Enqueue(context.Background(), outboxMessage(t, "gone@example.com"), outboxMessage(t, "here@example.com"))
	s.Notify()
	srv.WaitFor(t, 1, 5*time.Second)
	waitUntil(t, 5*time.Second, "outbox drained", func() bool { d, _, _ := store.state(); return d == 0 })
	_, sent, failed := store.state()
	if sent != 1 || len(failed) != 1 || !strings.Contains(failed[1], "550") {
		t.Errorf("sent %d failed %v", sent, failed)
	}
	// A permanent failure leaves the outbox at once: nothing is retried.
	if n := rcpts.Load(); n != 1 {
		t.Errorf("rejected recipient tried %d times", n)
	}
	errs := r.get("gone@example.com")
	var se *herald.SendError
	if len(errs) != 1 || !herald.IsPermanent(errs[0]) || !errors.As(errs[0], &se) || se.Code != 550 {
		t.Errorf("OnResult: %v", errs)
	}
}

func TestSenderTemporaryBurst(t *testing.T) {
	srv := smtptest.Start(t)
	srv.FailNext(5, 451, "slow down")
	store := newMemStore()
	s := NewSender(store, newTransport(t, srv, nil), fastOptions(t, nil))
	runSender(t, s)
	for i := range 3 {
		store.Enqueue(context.Background(), outboxMessage(t, fmt.Sprintf("r%d@example.com", i)))
	}
	s.Notify()
	srv.WaitFor(t, 3, 10*time.Second)
	waitUntil(t, 5*time.Second, "outbox drained", func() bool { d, n, _ := store.state(); return d == 0 && n == 3 })
	if _, _, failed := store.state(); len(failed) != 0 {
		t.Errorf("failed: %v", failed)
	}
}

func TestSenderDrop(t *testing.T) {
	srv := smtptest.Start(t)
	store := newMemStore()
	var r results
	opts := fastOptions(t, &r)
	opts.Drop = func(_ context.Context, m *herald.OutboxMessage) (bool, string) {
		return m.To == "left@example.com", "subscriber unsubscribed"
	}
	s := NewSender(store, newTransport(t, srv, nil), opts)
	runSender(t, s)
	store.Enqueue(context.Background(), outboxMessage(t, "left@example.com"), outboxMessage(t, "stays@example.com"))
	s.Notify()
	msgs := srv.WaitFor(t, 1, 5*time.Second)
	waitUntil(t, 5*time.Second, "outbox drained", func() bool { d, _, _ := store.state(); return d == 0 })
	if msgs[0].To[0] != "stays@example.com" || srv.Count() != 1 {
		t.Errorf("delivered %v", msgs)
	}
	_, _, failed := store.state()
	if !strings.Contains(failed[1], "subscriber unsubscribed") {
		t.Errorf("failed %v", failed)
	}
	if errs := r.get("left@example.com"); len(errs) != 1 || !errors.Is(errs[0], ErrDropped) || herald.IsPermanent(errs[0]) {
		t.Errorf("OnResult: %v", errs)
	}
}

func TestSenderNotify(t *testing.T) {
	srv := smtptest.Start(t)
	store := newMemStore()
	opts := fastOptions(t, nil)
	opts.PollInterval = time.Hour
	s := NewSender(store, newTransport(t, srv, nil), opts)
	runSender(t, s)
	waitUntil(t, 5*time.Second, "the sender to sleep on an empty outbox", func() bool {
		store.mu.Lock()
		defer store.mu.Unlock()
		return store.nextDue > 0
	})
	store.Enqueue(context.Background(), outboxMessage(t, "a@example.com"))
	s.Notify()
	s.Notify() // never blocks
	// It sleeps an hour (PollInterval) unless Notify wakes it.
	srv.WaitFor(t, 1, 30*time.Second)
}

// Without Notify the sender wakes at the next message's NextAttempt.
func TestSenderWakesAtNextDue(t *testing.T) {
	srv := smtptest.Start(t)
	store := newMemStore()
	opts := fastOptions(t, nil)
	opts.PollInterval = time.Hour
	m := outboxMessage(t, "a@example.com")
	m.NextAttempt = time.Now().Add(200 * time.Millisecond)
	store.Enqueue(context.Background(), m)
	s := NewSender(store, newTransport(t, srv, nil), opts)
	start := time.Now()
	runSender(t, s)
	srv.WaitFor(t, 1, 3*time.Second)
	if d := time.Since(start); d < 150*time.Millisecond {
		t.Errorf("sent after %v, before it was due", d)
	}
}

func TestSenderExpiry(t *testing.T) {
	srv := smtptest.Start(t)
	store := newMemStore()
	var r results
	opts := fastOptions(t, &r)
	opts.Expiry = time.Hour
	s := NewSender(store, newTransport(t, srv, nil), opts)
	old := outboxMessage(t, "old@example.com")
	old.CreatedAt = time.Now().Add(-2 * time.Hour)
	old.Attempts, old.LastError = 7, "temporary failure: connection refused"
	past := outboxMessage(t, "past@example.com")
	past.ExpiresAt = time.Now().Add(-time.Minute)
	fresh := outboxMessage(t, "fresh@example.com")
	store.Enqueue(context.Background(), old, past, fresh)
	runSender(t, s)
	srv.WaitFor(t, 1, 5*time.Second)
	waitUntil(t, 5*time.Second, "outbox drained", func() bool { d, _, _ := store.state(); return d == 0 })
	_, sent, failed := store.state()
	if sent != 1 || len(failed) != 2 || !strings.Contains(failed[1], "expired after 7 attempts") ||
		!strings.Contains(failed[1], "connection refused") || !strings.Contains(failed[2], "expired") {
		t.Errorf("sent %d failed %v", sent, failed)
	}
	if errs := r.get("old@example.com"); len(errs) != 1 || !errors.Is(errs[0], ErrExpired) || herald.IsPermanent(errs[0]) {
		t.Errorf("OnResult: %v", errs)
	}
}

// A retry is never scheduled past expiry: the message then fails as
// expired instead of lingering.
func TestSenderRetryCappedAtExpiry(t *testing.T) {
	srv := smtptest.Start(t)
	srv.SetRefuse(true)
	store := newMemStore()
	opts := fastOptions(t, nil)
	opts.BaseBackoff, opts.MaxBackoff = time.Hour, time.Hour
	s := NewSender(store, newTransport(t, srv, nil), opts)
	m := outboxMessage(t, "a@example.com")
	m.ExpiresAt = time.Now().Add(300 * time.Millisecond)
	store.Enqueue(context.Background(), m)
	runSender(t, s)
	waitUntil(t, 5*time.Second, "expired", func() bool { _, _, f := store.state(); return len(f) == 1 })
	_, _, failed := store.state()
	if !strings.Contains(failed[1], "expired after 1 attempts") {
		t.Errorf("failed %v", failed)
	}
}

func TestSenderShutdownFinishesInFlight(t *testing.T) {
	srv := smtptest.Start(t)
	srv.SetDelay(300 * time.Millisecond)
	store := newMemStore()
	s := NewSender(store, newTransport(t, srv, nil), fastOptions(t, nil))
	stop := runSender(t, s)
	store.Enqueue(context.Background(), outboxMessage(t, "a@example.com"), outboxMessage(t, "b@example.com"))
	s.Notify()
	waitUntil(t, 5*time.Second, "sends in flight", func() bool { return srv.Connections() == 2 })
	stopped := make(chan struct{})
	go func() { defer close(stopped); stop() }()
	select { // the sends in flight take 300ms each
	case <-stopped:
	case <-time.After(time.Minute):
		t.Fatal("shutdown hangs")
	}
	// Both in-flight messages finished and were recorded as sent.
	depth, sent, failed := store.state()
	if depth != 0 || sent != 2 || len(failed) != 0 || srv.Count() != 2 {
		t.Errorf("after shutdown: depth %d sent %d failed %v delivered %d", depth, sent, failed, srv.Count())
	}
}

func TestSenderStoreErrors(t *testing.T) {
	srv := smtptest.Start(t)
	store := newMemStore()
	store.dueErrs = 2
	s := NewSender(store, newTransport(t, srv, nil), fastOptions(t, nil))
	store.Enqueue(context.Background(), outboxMessage(t, "a@example.com"))
	runSender(t, s)
	srv.WaitFor(t, 1, 10*time.Second)
}

func TestSenderRunTwice(t *testing.T) {
	s := NewSender(newMemStore(), &fakeTransport{}, fastOptions(t, nil))
	runSender(t, s)
	waitUntil(t, 5*time.Second, "the first Run to start", s.running.Load)
	if err := s.Run(context.Background()); err == nil {
		t.Error("second Run started")
	}
}

// fakeTransport counts concurrency; used where SMTP adds nothing.
type fakeTransport struct {
	mu        sync.Mutex
	active    int
	maxActive int
	froms     []string
	delay     time.Duration
	panicOn   string
}

func (f *fakeTransport) Send(ctx context.Context, m *herald.Message) error {
	f.mu.Lock()
	f.active++
	f.maxActive = max(f.maxActive, f.active)
	f.froms = append(f.froms, m.From)
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		f.active--
		f.mu.Unlock()
	}()
	if m.To == f.panicOn {
		panic("boom")
	}
	time.Sleep(f.delay)
	return nil
}

func (f *fakeTransport) Close() error { return nil }

func TestSenderConcurrency(t *testing.T) {
	store := newMemStore()
	tr := &fakeTransport{delay: 20 * time.Millisecond}
	opts := fastOptions(t, nil)
	opts.Workers = 4
	s := NewSender(store, tr, opts)
	for i := range 40 {
		store.Enqueue(context.Background(), outboxMessage(t, fmt.Sprintf("r%d@example.com", i)))
	}
	runSender(t, s)
	waitUntil(t, 10*time.Second, "outbox drained", func() bool { d, n, _ := store.state(); return d == 0 && n == 40 })
	tr.mu.Lock()
	defer tr.mu.Unlock()
	if tr.maxActive > 4 || tr.maxActive < 2 {
		t.Errorf("max %d sends at once, want 2..4", tr.maxActive)
	}
	if len(tr.froms) != 40 {
		t.Errorf("%d sends for 40 messages", len(tr.froms))
	}
}

func TestSenderEnvelopeFromAndPanic(t *testing.T) {
	store := newMemStore()
	tr := &fakeTransport{panicOn: "boom@example.com"}
	opts := fastOptions(t, nil)
	opts.EnvelopeFrom = "bounces@blog.example.org"
	opts.BaseBackoff, opts.MaxBackoff = time.Hour, time.Hour
	s := NewSender(store, tr, opts)
	store.Enqueue(context.Background(), outboxMessage(t, "a@example.com"), outboxMessage(t, "boom@example.com"))
	runSender(t, s)
	waitUntil(t, 5*time.Second, "sent and retried", func() bool {
		m, ok := store.get(2)
		_, sent, _ := store.state()
		return sent == 1 && ok && m.Attempts == 1
	})
	if m, _ := store.get(2); !strings.Contains(m.LastError, "panic") {
		t.Errorf("last error %q", m.LastError)
	}
	tr.mu.Lock()
	defer tr.mu.Unlock()
	if tr.froms[0] != "bounces@blog.example.org" {
		t.Errorf("envelope from %q", tr.froms[0])
	}
}

func TestSenderUnparsableFrom(t *testing.T) {
	store := newMemStore()
	s := NewSender(store, &fakeTransport{}, fastOptions(t, nil))
	store.Enqueue(context.Background(), &herald.OutboxMessage{To: "a@example.com", Raw: []byte("From: nonsense\r\n\r\nhi\r\n")})
	runSender(t, s)
	waitUntil(t, 5*time.Second, "failed", func() bool { _, _, f := store.state(); return len(f) == 1 })
}

func TestBackoff(t *testing.T) {
	for failures, want := range map[int]time.Duration{1: time.Second, 2: 2 * time.Second, 4: 8 * time.Second, 11: time.Minute, 1000: time.Minute} {
		for range 50 {
			if d := Backoff(time.Second, time.Minute, failures); d < want/2 || d > want {
				t.Fatalf("Backoff after %d failures = %v, want in [%v, %v]", failures, d, want/2, want)
			}
		}
	}
	// Defaults.
	d := NewSender(newMemStore(), &fakeTransport{}, SenderOptions{})
	if d.opts.Workers != 4 || d.opts.BaseBackoff != 30*time.Second || d.opts.MaxBackoff != time.Hour ||
		d.opts.Expiry != 72*time.Hour || d.opts.PollInterval != 5*time.Second {
		t.Errorf("defaults %+v", d.opts)
	}
}
