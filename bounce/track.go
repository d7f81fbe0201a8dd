package bounce

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/herald-dev/herald"
)

// Tracker is a herald.Transport in front of the real one: it gives each
// message its VERP return path (when VERP is set) and records the
// Message-ID and recipient of each message sent in the SentLog (when
// set), so a bounce that quotes only the Message-ID finds its reader.
// Records are written in batches by Run, off the send path; a crash
// loses at most the last second's, whose bounces then go by VERP only.
type Tracker struct {
	next herald.Transport
	verp *VERP
	log  SentLogWriter
	slog *slog.Logger

	mu      sync.Mutex
	pending []herald.SentMessage
	now     func() time.Time
}

// SentLogWriter is the write side of herald.SentLog.
type SentLogWriter interface {
	RecordSent(ctx context.Context, ms []herald.SentMessage) error
}

// maxPending bounds the records waiting for Run (a stalled store must not
// eat memory); past it the oldest are dropped.
const maxPending = 200_000

// NewTracker wraps next. verp and log may be nil.
func NewTracker(next herald.Transport, verp *VERP, log SentLogWriter, logger *slog.Logger) *Tracker {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Tracker{next: next, verp: verp, log: log, slog: logger.With("component", "bounce-tracker"), now: time.Now}
}

// Send passes m on with its return path and records it once sent. m is
// not changed.
func (t *Tracker) Send(ctx context.Context, m *herald.Message) error {
	out := m
	if t.verp != nil {
		c := *m
		c.From = t.verp.Address(m.To)
		out = &c
	}
	err := t.next.Send(ctx, out)
	if err == nil && t.log != nil && m.MessageID != "" {
		t.mu.Lock()
		if len(t.pending) >= maxPending {
			t.pending = t.pending[len(t.pending)/10:]
		}
		t.pending = append(t.pending, herald.SentMessage{MessageID: m.MessageID, To: m.To, At: t.now()})
		t.mu.Unlock()
	}
	return err
}

// Run writes the records every interval until ctx ends, then once more.
func (t *Tracker) Run(ctx context.Context, interval time.Duration) error {
	if t.log == nil {
		<-ctx.Done()
		return nil
	}
	if interval <= 0 {
		interval = time.Second
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			t.Flush(context.WithoutCancel(ctx))
			return nil
		case <-tick.C:
			t.Flush(ctx)
		}
	}
}

// Flush writes the records waiting.
func (t *Tracker) Flush(ctx context.Context) {
	t.mu.Lock()
	batch := t.pending
	t.pending = nil
	t.mu.Unlock()
	if len(batch) == 0 {
		return
	}
	if err := t.log.RecordSent(ctx, batch); err != nil {
		t.slog.Warn("recording sent messages", "count", len(batch), "err", err)
	}
}

// Close closes the transport behind.
func (t *Tracker) Close() error { return t.next.Close() }
