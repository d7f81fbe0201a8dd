package digest_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/herald-dev/herald"
	"github.com/herald-dev/herald/digest"
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
