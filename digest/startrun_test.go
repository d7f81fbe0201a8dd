package digest_test

import (
	"context"
	"testing"

	"github.com/herald-dev/herald"
	"github.com/herald-dev/herald/digest"
	"github.com/herald-dev/herald/store"
)

// slowArchive holds every archive write until released.
type slowArchive struct {
	digest.Archive
	release chan struct{}
}

func (a *slowArchive) PutArchive(ctx context.Context, e *herald.ArchiveEntry) error {
	<-a.release
	return a.Archive.PutArchive(ctx, e)
}

// askingStore tells when a run is looked up by id.
type askingStore struct {
	*store.DB
	asked chan struct{}
}

func (s *askingStore) Run(ctx context.Context, id uint64) (*herald.Run, error) {
	select {
	case s.asked <- struct{}{}:
	default:
	}
	return s.DB.Run(ctx, id)
}

// TestNextRunAfterDone: once the store says a run is done, a new run of
// the same frequency starts (after the finished one's last chores, like
// its archive copy), instead of "already in progress" — the e2e test
// that starts a daily run right after the previous one reported done got
// 409s once the archive copy was written after the done state.
func TestNextRunAfterDone(t *testing.T) {
	f := setup(t, nil)
	arch := &slowArchive{Archive: f.db, release: make(chan struct{})}
	// asked signals when StartRun looks up the run in progress: it does
	// so right before it waits for the run to finish.
	asked := make(chan struct{}, 1)
	store := &askingStore{DB: f.db, asked: asked}
	d, err := digest.New(store, f.tr, f.subs, f.tpl, digest.Options{
		SiteName: "Test Blog", SiteURL: "https://blog.example.org", BaseURL: "https://news.example.org",
		From: "Test Blog <digest@example.org>", Archive: arch,
	})
	if err != nil {
		t.Fatal(err)
	}
	f.serve(d)
	f.dig = d
	f.reader("a@example.org", herald.Daily)
	f.post(1, false)
	first := f.runAndWait(f.dig, herald.Daily) // done in the store; its archive copy is held
	if first.State != herald.RunDone || first.Sent != 1 {
		t.Fatalf("first run %+v", first)
	}
	type result struct {
		run *herald.Run
		err error
	}
	got := make(chan result, 1)
	go func() {
		r, err := f.dig.StartRun(f.ctx, herald.Daily, herald.TriggerAPI, false)
		got <- result{r, err}
	}()
	select {
	case <-asked: // it saw the run done in the store, and waits for it
	case r := <-got:
		t.Fatalf("StartRun did not wait for the finishing run: %+v %v", r.run, r.err)
	}
	close(arch.release)
	r := <-got
	if r.err != nil || r.run.ID == first.ID {
		t.Fatalf("second run: %+v %v", r.run, r.err)
	}
	f.waitRun(r.run.ID)
	f.dig.Wait()
	// A run still sending is a conflict, as before.
	f.smtp.Hold()
	f.post(2, false)
	running, err := f.dig.StartRun(f.ctx, herald.Daily, herald.TriggerAPI, false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.dig.StartRun(f.ctx, herald.Daily, herald.TriggerAPI, false); herald.ErrorCode(err) != herald.ECONFLICT {
		t.Fatalf("a run while one sends: %v", err)
	}
	f.smtp.Release()
	f.waitRun(running.ID)
	f.dig.Wait()
}
