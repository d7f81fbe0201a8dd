package digest_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/herald-dev/herald"
	"github.com/herald-dev/herald/digest"
	"github.com/herald-dev/herald/internal/testmail"
	"github.com/herald-dev/herald/store"
)

// faultyStore is the real store with one fault: reading one reader by id
// fails, as a disk or a corrupt record would make it. It reports no
// subscriber generation, so the run reads every reader again before
// composing.
type faultyStore struct {
	*store.DB
	failID uint64
}

func (s *faultyStore) SubscriberByID(ctx context.Context, id uint64) (*herald.Subscriber, error) {
	if id == s.failID {
		return nil, errors.New("store: read subscriber: input/output error")
	}
	return s.DB.SubscriberByID(ctx, id)
}

func (s *faultyStore) SubscriberGeneration() uint64 { return 0 }

// A reader the run cannot read again is not dropped without a word: the
// run ends failed, saying why, and its totals are not rewritten to look
// complete.
func TestUnreadableReaderFailsTheRun(t *testing.T) {
	f := setup(t, nil)
	var bad *herald.Subscriber
	for i := range 5 {
		s := f.reader(fmt.Sprintf("r%d@example.org", i), herald.Daily)
		if i == 2 {
			bad = s
		}
	}
	f.post(1, false)
	d, err := digest.New(&faultyStore{DB: f.db, failID: bad.ID}, f.tr, f.subs, f.tpl, digest.Options{
		SiteName: "Test Blog", SiteURL: "https://blog.example.org", BaseURL: "https://news.example.org",
		From: "Test Blog <digest@example.org>", Workers: 2,
	})
	if err != nil {
		t.Fatal(err)
	}
	f.serve(d)
	run := f.runAndWait(d, herald.Daily)
	if run.State != herald.RunFailed || !strings.Contains(run.Error, "input/output error") || !strings.Contains(run.Error, fmt.Sprintf("reader %d", bad.ID)) {
		t.Fatalf("run %+v: want failed, naming the reader and the read error", run)
	}
	if run.Total != 5 || run.Sent != 4 {
		t.Fatalf("run %+v: want total 5 (as counted at the start), 4 sent", run)
	}
	if s, _ := f.db.SubscriberByID(f.ctx, bad.ID); s.Cursor != 0 || s.LastRunID != 0 {
		t.Fatalf("the unread reader is marked done: %+v", s)
	}
}

// holdingStore holds every recorded outcome until the run has read a
// reader again: the recorder writes outcomes behind the senders, so the
// store may be behind what was sent.
type holdingStore struct {
	*store.DB
	once   sync.Once
	reread chan struct{}
}

func (s *holdingStore) SubscriberByID(ctx context.Context, id uint64) (*herald.Subscriber, error) {
	sub, err := s.DB.SubscriberByID(ctx, id)
	s.once.Do(func() { close(s.reread) })
	return sub, err
}

func (s *holdingStore) RecordDeliveries(ctx context.Context, bounceLimit int, ds ...herald.Delivery) error {
	select {
	case <-s.reread:
	case <-time.After(20 * time.Second): // the run never read a reader again
	}
	return s.DB.RecordDeliveries(ctx, bounceLimit, ds...)
}

// An instant reader whose second post failed for a moment gets the first
// post once: the retry reads the reader again, and the store can still be
// behind the post that went out (its outcome not yet written), so the
// retry starts from the later of the two cursors.
func TestRetryWhileTheStoreIsBehindSendsNothingTwice(t *testing.T) {
	f := setup(t, nil)
	r := f.reader("instant@example.org", herald.Instant)
	f.post(1, false)
	f.post(2, false)
	var mu sync.Mutex
	rcpts := 0
	f.smtp.RejectRecipient(func(addr string) (int, string, bool) {
		mu.Lock()
		defer mu.Unlock()
		rcpts++
		if rcpts == 2 { // the second post, once
			return 451, "4.3.0 try again in a moment", true
		}
		return 0, "", false
	})
	hs := &holdingStore{DB: f.db, reread: make(chan struct{})}
	d, err := digest.New(hs, f.tr, f.subs, f.tpl, digest.Options{
		SiteName: "Test Blog", SiteURL: "https://blog.example.org", BaseURL: "https://news.example.org",
		From: "Test Blog <digest@example.org>", Workers: 1,
		RetryBackoff: time.Millisecond, MaxRetryBackoff: time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	f.serve(d)
	run := f.runAndWait(d, herald.Instant)
	if run.State != herald.RunDone || run.Sent != 2 {
		t.Fatalf("run %+v", run)
	}
	subjects := map[string]int{}
	for _, m := range f.smtp.Messages() {
		subjects[testmail.MustParse(t, m.Data).Subject]++
	}
	if subjects["Post number 1"] != 1 || subjects["Post number 2"] != 1 || len(subjects) != 2 {
		t.Fatalf("emails by subject %v: want each post once", subjects)
	}
	if s, _ := f.db.SubscriberByID(f.ctx, r.ID); s.Cursor != 2 {
		t.Fatalf("cursor %d, want 2", s.Cursor)
	}
}

// A run asked for before the service loop started is still the loop's to
// stop: shutdown does not wait on a run that retries a refusing server
// for ever.
func TestRunStartedBeforeRunStopsWithIt(t *testing.T) {
	f := setup(t, nil)
	d := f.newService(func(o *digest.Options) {
		o.RetryBackoff, o.MaxRetryBackoff = 10*time.Millisecond, 10*time.Millisecond
	})
	f.reader("a@example.org", herald.Daily)
	f.post(1, false)
	tried := make(chan struct{}, 1)
	f.smtp.RejectRecipient(func(string) (int, string, bool) {
		select {
		case tried <- struct{}{}:
		default:
		}
		return 451, "4.3.0 try again later", true
	})
	run, err := d.StartRun(f.ctx, herald.Daily, "api", false)
	if err != nil {
		t.Fatal(err)
	}
	// Nothing runs outside the loop: there is nothing yet to wait for.
	waited := make(chan struct{})
	go func() { defer close(waited); d.Wait() }()
	select {
	case <-waited:
	case <-time.After(20 * time.Second):
		t.Fatal("the run started outside Run's loop, on a context nothing cancels")
	}
	ctx, cancel := context.WithCancel(f.ctx)
	stopped := make(chan struct{})
	go func() { defer close(stopped); _ = d.Run(ctx) }()
	select { // the run has met the refusing server
	case <-tried:
	case <-time.After(20 * time.Second):
		t.Fatal("the run never tried to send")
	}
	cancel()
	select {
	case <-stopped:
	case <-time.After(20 * time.Second):
		t.Fatal("Run did not return after its context ended: the run started before it kept going")
	}
	if r, _ := f.db.Run(f.ctx, run.ID); r.State != herald.RunRunning {
		t.Fatalf("run %+v: want it left running, to resume at the next start", r)
	}
}

// brokenStore cannot list the unfinished runs: Run cannot start.
type brokenStore struct{ *store.DB }

func (brokenStore) UnfinishedRuns(context.Context) ([]*herald.Run, error) {
	return nil, errors.New("store: unfinished runs: input/output error")
}

// A Run that cannot start says why and returns: it does not wait for a
// shutdown that the failed start already is.
func TestRunThatCannotStartReturns(t *testing.T) {
	f := setup(t, nil)
	d, err := digest.New(brokenStore{f.db}, f.tr, f.subs, f.tpl, digest.Options{
		SiteName: "Test Blog", SiteURL: "https://blog.example.org", BaseURL: "https://news.example.org",
		From: "Test Blog <digest@example.org>",
	})
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { errc <- d.Run(f.ctx) }() // a context that never ends
	select {
	case err := <-errc:
		if err == nil || !strings.Contains(err.Error(), "input/output error") {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("Run did not return after failing to start")
	}
}
