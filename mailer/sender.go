package mailer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/mail"
	"sync"
	"sync/atomic"
	"time"

	"github.com/herald-dev/herald"
)

// SenderOptions tune a Sender. Zero values take the defaults noted.
type SenderOptions struct {
	Logger *slog.Logger
	Now    func() time.Time
	// Workers is how many messages are in flight at once (default 4).
	Workers int
	// BaseBackoff is the wait after the first temporary failure (default
	// 30s); each further failure doubles it, up to MaxBackoff (default 1h),
	// with jitter so a relay coming back is not hit by everything at once.
	BaseBackoff time.Duration
	MaxBackoff  time.Duration
	// Expiry fails messages this old when their ExpiresAt is zero (default 72h).
	Expiry time.Duration
	// Drop is asked before each attempt: true fails the message with the
	// reason instead of sending it (the reader unsubscribed meanwhile).
	Drop func(ctx context.Context, m *herald.OutboxMessage) (bool, string)
	// OnResult hears every final outcome and every temporary failure: err
	// is nil when sent, a *herald.SendError when delivery failed, and
	// wraps ErrExpired or ErrDropped otherwise. Only herald.IsPermanent
	// errors should count as bounces.
	OnResult func(kind herald.MessageKind, to string, err error)
	// PollInterval bounds every sleep, as a safety net for a missed Notify
	// (default 5s).
	PollInterval time.Duration
	// EnvelopeFrom is the SMTP MAIL FROM address; empty: the address in
	// each message's From header.
	EnvelopeFrom string
	// SendTimeout bounds one delivery attempt, including the store update
	// that records it (default 2m). Shutdown waits for attempts in flight.
	SendTimeout time.Duration
}

// Errors passed to OnResult and recorded as the failure reason.
var (
	ErrExpired = errors.New("mailer: message expired")
	ErrDropped = errors.New("mailer: message dropped")
)

// Sender drains the durable outbox through a transport.
type Sender struct {
	store   herald.OutboxStore
	tr      herald.Transport
	opts    SenderOptions
	log     *slog.Logger
	notify  chan struct{}
	running atomic.Bool
}

// NewSender returns a Sender; Run starts it.
func NewSender(store herald.OutboxStore, tr herald.Transport, opts SenderOptions) *Sender {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Workers <= 0 {
		opts.Workers = 4
	}
	if opts.BaseBackoff <= 0 {
		opts.BaseBackoff = 30 * time.Second
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = time.Hour
	}
	if opts.MaxBackoff < opts.BaseBackoff {
		opts.MaxBackoff = opts.BaseBackoff
	}
	if opts.Expiry <= 0 {
		opts.Expiry = 72 * time.Hour
	}
	if opts.PollInterval <= 0 {
		opts.PollInterval = 5 * time.Second
	}
	if opts.SendTimeout <= 0 {
		opts.SendTimeout = 2 * time.Minute
	}
	return &Sender{
		store:  store,
		tr:     tr,
		opts:   opts,
		log:    opts.Logger.With("component", "sender"),
		notify: make(chan struct{}, 1),
	}
}

// Notify wakes the sender at once; call it after enqueueing. It never blocks.
func (s *Sender) Notify() {
	select {
	case s.notify <- struct{}{}:
	default:
	}
}

// Run sends due messages until ctx is done. Then it takes no new ones,
// waits for those in flight (each bounded by SendTimeout, and not cut by
// ctx, so its outcome is recorded and it is not sent twice), and returns
// nil. It returns an error only when called while already running.
func (s *Sender) Run(ctx context.Context) error {
	if !s.running.CompareAndSwap(false, true) {
		return errors.New("mailer: sender already running")
	}
	defer s.running.Store(false)

	var wg sync.WaitGroup
	defer wg.Wait()
	workers := s.opts.Workers
	// done gets each finished message's id; it has room for every worker,
	// so workers never block on it.
	done := make(chan uint64, workers)
	inflight := make(map[uint64]bool, workers)
	errWait := min(time.Second, s.opts.PollInterval)

	for {
		// Forget finished messages without blocking.
		for drained := false; !drained; {
			select {
			case id := <-done:
				delete(inflight, id)
			default:
				drained = true
			}
		}
		if ctx.Err() != nil {
			return nil
		}

		started := 0
		if free := workers - len(inflight); free > 0 {
			now := s.opts.Now()
			// Ask for enough to skip the ones still in flight (they stay
			// due until their outcome is recorded).
			msgs, err := s.store.DueMessages(ctx, now, free+len(inflight))
			if err != nil {
				if ctx.Err() != nil {
					return nil
				}
				s.log.Error("reading the outbox", "err", err)
				s.sleep(ctx, done, inflight, errWait)
				errWait = min(2*errWait, s.opts.PollInterval)
				continue
			}
			errWait = min(time.Second, s.opts.PollInterval)
			for _, m := range msgs {
				if started == free {
					break
				}
				if inflight[m.ID] {
					continue
				}
				inflight[m.ID] = true
				started++
				wg.Go(func() {
					defer func() { done <- m.ID }()
					s.handle(ctx, m)
				})
			}
		}
		if started > 0 {
			continue // more may be due; the loop asks again
		}
		s.sleep(ctx, done, inflight, s.untilNextDue(ctx, len(inflight) > 0))
	}
}

// untilNextDue is how long to sleep when nothing new could start.
func (s *Sender) untilNextDue(ctx context.Context, busy bool) time.Duration {
	wait := s.opts.PollInterval
	next, err := s.store.NextDue(ctx)
	if err != nil || next.IsZero() {
		return wait
	}
	d := next.Sub(s.opts.Now())
	if d <= 0 {
		if busy {
			// What is due is in flight (or waits for a worker): a
			// finishing worker wakes the loop.
			return wait
		}
		// Due but not returned by DueMessages: a clock or store quirk.
		// A short pause keeps that from spinning.
		d = 10 * time.Millisecond
	}
	return min(d, wait)
}

// sleep waits for d, a Notify, a finished worker or ctx.
func (s *Sender) sleep(ctx context.Context, done <-chan uint64, inflight map[uint64]bool, d time.Duration) {
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-s.notify:
	case <-ctx.Done():
	case id := <-done:
		delete(inflight, id)
	}
}

// handle makes one attempt at m and records the outcome. It runs on a
// context of its own: a shutdown must not cut an attempt halfway.
func (s *Sender) handle(parent context.Context, m *herald.OutboxMessage) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(parent), s.opts.SendTimeout)
	defer cancel()
	log := s.log.With("id", m.ID, "kind", m.Kind, "to", m.To, "attempt", m.Attempts+1)
	now := s.opts.Now()

	expires := s.expiry(m)
	if !expires.IsZero() && !now.Before(expires) {
		err := fmt.Errorf("%w after %d attempts", ErrExpired, m.Attempts)
		if m.LastError != "" {
			err = fmt.Errorf("%w; last error: %s", err, m.LastError)
		}
		log.Warn("message expired", "err", err)
		s.fail(ctx, log, m, err)
		return
	}
	if s.opts.Drop != nil {
		if drop, reason := s.opts.Drop(ctx, m); drop {
			err := fmt.Errorf("%w: %s", ErrDropped, reason)
			log.Info("message dropped", "reason", reason)
			s.fail(ctx, log, m, err)
			return
		}
	}

	msg, err := s.message(m)
	if err != nil {
		log.Error("message cannot be sent", "err", err)
		s.fail(ctx, log, m, &herald.SendError{Err: err})
		return
	}
	err = s.send(ctx, msg)
	switch {
	case err == nil:
		if serr := s.store.MessageSent(ctx, m.ID); serr != nil {
			// It went out; if the store forgets that, it goes again with
			// the same Message-ID.
			log.Error("recording a sent message", "err", serr)
		}
		log.Debug("message sent")
		s.result(m, nil)
	case herald.IsPermanent(err):
		log.Warn("message failed", "err", err)
		s.fail(ctx, log, m, err)
	default:
		next := now.Add(Backoff(s.opts.BaseBackoff, s.opts.MaxBackoff, m.Attempts+1))
		if !expires.IsZero() && next.After(expires) {
			next = expires // then it is failed as expired, without another try
		}
		log.Warn("message will be retried", "err", err, "next", next)
		if serr := s.store.RetryMessage(ctx, m.ID, next, err.Error()); serr != nil {
			log.Error("recording a retry", "err", serr)
		}
		s.result(m, err)
	}
}

// send calls the transport, turning a panic into a temporary failure: a
// bug in one message must not stop the sender.
func (s *Sender) send(ctx context.Context, msg *herald.Message) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = &herald.SendError{Temporary: true, Err: fmt.Errorf("mailer: transport panic: %v", r)}
		}
	}()
	return s.tr.Send(ctx, msg)
}

func (s *Sender) fail(ctx context.Context, log *slog.Logger, m *herald.OutboxMessage, err error) {
	if serr := s.store.MessageFailed(ctx, m.ID, err.Error()); serr != nil {
		log.Error("recording a failed message", "err", serr)
	}
	s.result(m, err)
}

func (s *Sender) result(m *herald.OutboxMessage, err error) {
	if s.opts.OnResult != nil {
		s.opts.OnResult(m.Kind, m.To, err)
	}
}

func (s *Sender) expiry(m *herald.OutboxMessage) time.Time {
	if !m.ExpiresAt.IsZero() {
		return m.ExpiresAt
	}
	if m.CreatedAt.IsZero() {
		return time.Time{}
	}
	return m.CreatedAt.Add(s.opts.Expiry)
}

// Backoff is how long to wait before trying a message again after
// failures consecutive temporary failures (1 after the first): base,
// doubled with each further failure up to max, then jittered to between
// half and all of it, so a crowd of retries does not hit a relay coming
// back all at once. The outbox sender and the digest runs both wait this.
func Backoff(base, max time.Duration, failures int) time.Duration {
	d := base
	for i := 1; i < failures && d < max; i++ {
		if d > max/2 {
			d = max // and no overflow
			break
		}
		d *= 2
	}
	d = min(d, max)
	half := d / 2
	return half + rand.N(d-half+1)
}

// message builds the transport's view of m, with the envelope sender from
// the options or the From header.
func (s *Sender) message(m *herald.OutboxMessage) (*herald.Message, error) {
	from := s.opts.EnvelopeFrom
	if from == "" {
		var err error
		if from, err = headerFrom(m.Raw); err != nil {
			return nil, err
		}
	}
	return &herald.Message{Kind: m.Kind, From: from, To: m.To, MessageID: m.MessageID, Raw: m.Raw}, nil
}

func headerFrom(raw []byte) (string, error) {
	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		return "", fmt.Errorf("mailer: read message header: %w", err)
	}
	a, err := mail.ParseAddress(msg.Header.Get("From"))
	if err != nil {
		return "", fmt.Errorf("mailer: parse From header: %w", err)
	}
	return a.Address, nil
}
