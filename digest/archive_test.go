package digest_test

import (
	"strings"
	"testing"

	"github.com/herald-dev/herald"
	"github.com/herald-dev/herald/digest"
)

func TestFinishedRunsAreArchived(t *testing.T) {
	f := setup(t, func(o *digest.Options) { o.MaxPosts = 3 })
	f.dig = f.served(func(o *digest.Options) { o.MaxPosts = 3; o.Archive = f.db })
	list := func() []*herald.ArchiveEntry {
		t.Helper()
		f.dig.Wait() // the archive is written at the end of the run's execution
		es, _, err := f.db.ListArchive(f.ctx, 100, 0)
		if err != nil {
			t.Fatal(err)
		}
		return es
	}
	f.post(1, true) // backlog: never archived either
	f.reader("a@example.org", herald.Daily)
	f.reader("b@example.org", herald.Daily)
	f.reader("w@example.org", herald.Weekly)
	f.reader("i@example.org", herald.Instant)

	// Nothing new, nobody mailed: no entry.
	empty := f.runAndWait(f.dig, herald.Daily)
	if empty.Sent != 0 || len(list()) != 0 {
		t.Fatalf("an empty run was archived: %+v", list())
	}
	f.post(2, false)
	f.post(3, false)
	// A dry run sends nothing and archives nothing.
	dry, err := f.dig.StartRun(f.ctx, herald.Daily, herald.TriggerAPI, true)
	if err != nil {
		t.Fatal(err)
	}
	f.waitRun(dry.ID)
	if len(list()) != 0 {
		t.Fatal("a dry run was archived")
	}
	run := f.runAndWait(f.dig, herald.Daily)
	es := list()
	if run.Sent != 2 || len(es) != 1 {
		t.Fatalf("run %+v, archive %d entries", run, len(es))
	}
	e := es[0]
	if e.ID != run.ID || e.Frequency != herald.Daily || e.Posts != 2 || e.Subject != "Test Blog: 2 new posts" ||
		e.Cutoff != run.Cutoff || e.After != empty.Cutoff || len(e.Titles) != 2 || e.Titles[0] != "Post number 3" || e.Date.IsZero() {
		t.Fatalf("entry %+v", e)
	}
	for _, want := range []string{"Post number 2", "Post number 3", "https://blog.example.org/p/3", "web copy"} {
		if !strings.Contains(e.HTML, want) || !strings.Contains(e.Text, want) {
			t.Errorf("archive lacks %q", want)
		}
	}
	// No reader's links, no placeholders.
	for _, bad := range []string{"token=", "unsubscribe", "Unsubscribe", "preferences", "HERALDPLACEHOLDER", "a@example.org"} {
		if strings.Contains(e.HTML, bad) || strings.Contains(e.Text, bad) {
			t.Errorf("archive copy contains %q", bad)
		}
	}

	// Instant runs are not archived.
	f.post(4, false)
	if r := f.runAndWait(f.dig, herald.Instant); r.Sent == 0 || len(list()) != 1 {
		t.Fatalf("instant run %+v archived: %d entries", r, len(list()))
	}
	// The next daily entry holds only what came since the previous one.
	f.post(5, false)
	run2 := f.runAndWait(f.dig, herald.Daily)
	es = list()
	if len(es) != 2 || es[0].ID != run2.ID || es[0].After != run.Cutoff || es[0].Posts != 2 ||
		!strings.Contains(es[0].HTML, "Post number 5") || strings.Contains(es[0].HTML, "Post number 3") {
		t.Fatalf("second daily entry %+v", es[0])
	}
	// The first weekly entry starts from scratch (no earlier weekly run:
	// all but the backlog), and shows max_posts with a link to the rest.
	for n := 6; n <= 8; n++ {
		f.post(n, false)
	}
	wk := f.runAndWait(f.dig, herald.Weekly)
	es = list()
	if wk.Sent != 1 || len(es) != 3 || es[0].Frequency != herald.Weekly || es[0].Posts != 7 || !strings.Contains(es[0].Text, "4 more posts") {
		t.Fatalf("weekly entry %+v", es[0])
	}
	if w, _ := f.db.LatestArchive(f.ctx, herald.Weekly); w == nil || w.ID != wk.ID {
		t.Fatalf("latest weekly %+v", w)
	}
}

// Without an archive (archive.enabled = false), runs work as before.
func TestNoArchive(t *testing.T) {
	f := setup(t, nil)
	f.reader("a@example.org", herald.Daily)
	f.post(1, false)
	if r := f.runAndWait(f.dig, herald.Daily); r.Sent != 1 {
		t.Fatalf("run %+v", r)
	}
	f.dig.Wait()
	if es, _, _ := f.db.ListArchive(f.ctx, 10, 0); len(es) != 0 {
		t.Fatalf("archived without an archive: %d", len(es))
	}
}

// Turning the archive on later does not pour the whole history into the
// first entry: it starts after the previous run.
func TestArchiveTurnedOnLater(t *testing.T) {
	f := setup(t, nil)
	f.reader("a@example.org", herald.Weekly)
	f.post(1, false)
	f.post(2, false)
	first := f.runAndWait(f.dig, herald.Weekly)
	f.dig.Wait()
	f.post(3, false)
	d := f.served(func(o *digest.Options) { o.Archive = f.db })
	run := f.runAndWait(d, herald.Weekly)
	d.Wait()
	es, _, _ := f.db.ListArchive(f.ctx, 10, 0)
	if len(es) != 1 || es[0].ID != run.ID || es[0].After != first.Cutoff || es[0].Posts != 1 || es[0].Subject != "Post number 3" {
		t.Fatalf("entries %+v", es)
	}
}
