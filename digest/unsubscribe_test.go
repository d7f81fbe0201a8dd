package digest_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/herald-dev/herald"
	"github.com/herald-dev/herald/internal/testenv"
)

// Readers who leave while a run is under way get nothing composed after
// their unsubscribe (or frequency change, or erasure) returned, though
// the run read them before: the digest only trusts what it read while no
// reader changed, and reads them again otherwise.
func TestChangesDuringARunAreFinalAtOnce(t *testing.T) {
	f := setup(t, nil)
	// More readers than the deliverers hold and queue at the start, so the
	// last ones wait in the scan's page, read but not yet handed out.
	const n = 600
	subs := make([]*herald.Subscriber, n)
	var wg sync.WaitGroup
	for w := range 32 {
		wg.Go(func() {
			for i := w; i < n; i += 32 {
				s, err := f.subs.Subscribe(f.ctx, herald.SubscribeRequest{Email: fmt.Sprintf("r%03d@example.org", i), Frequency: "daily", Confirmed: true, Source: "import"})
				if err != nil {
					t.Error(err)
					return
				}
				subs[i] = s
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	f.post(1, false)
	f.smtp.SetDelay(5 * time.Millisecond)
	run, err := f.dig.StartRun(f.ctx, herald.Daily, herald.TriggerAPI, false)
	if err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, time.Minute, "the first emails", func() bool { return f.smtp.Count() >= 10 })
	// Hold the server while the last readers change their minds, so the
	// run cannot reach them first; they were read with the first page.
	f.smtp.Hold()
	left := map[string]bool{}
	at := f.smtp.Count()
	for i, s := range subs[n-15:] {
		switch i % 3 {
		case 0:
			if _, err := f.subs.UnsubscribeID(f.ctx, s.ID); err != nil {
				t.Fatal(err)
			}
		case 1:
			if _, err := f.db.MutateSubscriberByID(f.ctx, s.ID, func(cur *herald.Subscriber) (*herald.Subscriber, []*herald.OutboxMessage, error) {
				cur.Frequency = herald.Weekly
				return cur, nil, nil
			}); err != nil {
				t.Fatal(err)
			}
		case 2:
			if err := f.db.DeleteSubscriber(f.ctx, s.Email); err != nil {
				t.Fatal(err)
			}
		}
		left[s.Email] = true
	}
	if f.smtp.Count() >= n-15 {
		t.Fatalf("the run reached the last readers (%d sent when they began to leave) while the server was held", at)
	}
	f.smtp.SetDelay(0)
	f.smtp.Release()
	final := f.waitRun(run.ID)
	if final.State != herald.RunDone {
		t.Fatalf("run %+v", final)
	}
	for to := range byRecipient(f.smtp.Messages()) {
		if left[to] {
			t.Errorf("%s left during the run and still got the digest", to)
		}
	}
	if final.Sent != n-15 {
		t.Errorf("sent %d, want %d", final.Sent, n-15)
	}
}
