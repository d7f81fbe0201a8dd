package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/herald-dev/herald/backup"
	"github.com/herald-dev/herald/internal/smtptest"
	"github.com/herald-dev/herald/store"
)

// oneDigestEach checks the promise of a run resumed from a backup: each of
// the readers got the digest, and none got two different ones (a resend
// carries the same Message-ID).
func oneDigestEach(t *testing.T, sm *smtptest.Server, readers int) {
	t.Helper()
	ids := digestsPerReader(sm)
	for to, s := range ids {
		if len(s) != 1 {
			t.Fatalf("%s got %d different digests for one run", to, len(s))
		}
	}
	if len(ids) != readers {
		t.Fatalf("%d readers got the digest, want %d", len(ids), readers)
	}
}

// digestsPerReader maps each recipient to the distinct Message-IDs they
// got: one per run is the promise.
func digestsPerReader(sm *smtptest.Server) map[string]map[string]bool {
	ids := map[string]map[string]bool{}
	for _, m := range sm.Messages() {
		h := string(m.Data)
		i := strings.Index(h, "Message-Id: ")
		if i < 0 {
			i = strings.Index(h, "Message-ID: ")
		}
		id := strings.SplitN(h[i+12:], "\r\n", 2)[0]
		if ids[m.To[0]] == nil {
			ids[m.To[0]] = map[string]bool{}
		}
		ids[m.To[0]][id] = true
	}
	return ids
}

// TestScheduledBackupAndRestore: herald takes backups on its own while a
// digest run is sending, keeps only backup_keep of them; `herald restore`
// refuses while herald runs, then puts a mid-run backup in place; the
// restored herald serves the backup's readers and finishes the run, with
// no reader getting two different digests.
func TestScheduledBackupAndRestore(t *testing.T) {
	const readers = 1000
	sm := smtptest.Start(t)
	cfg := strings.Replace(smtpConfig(sm.Port(), "[digest]\ndaily = \"\"\nweekly = \"\"\n"),
		`path = "{{DIR}}/herald.db"`,
		"path = \"{{DIR}}/herald.db\"\nbackup_dir = \"{{DIR}}/backups\"\nbackup_every = \"1s\"\nbackup_keep = 3", 1)
	in := newInstance(t, cfg)
	p := in.start()
	emails := in.importReaders(readers, "example.org", "daily")
	in.addPost("sched-1", "A post to send while backups are taken")
	sm.SetDelay(20 * time.Millisecond) // keep the run going until a backup catches it
	runID := in.startRun("daily")
	for sm.Count() < 50 {
		time.Sleep(5 * time.Millisecond)
	}
	midRun := time.Now()
	dir := filepath.Join(in.dir, "backups")
	var chosen string
	for deadline := time.Now().Add(30 * time.Second); chosen == ""; time.Sleep(20 * time.Millisecond) {
		files, err := backup.List(dir)
		if err != nil {
			t.Fatal(err)
		}
		if n := len(files); n > 0 && files[n-1].Taken.After(midRun) {
			// Copy it out before retention deletes it.
			b, err := os.ReadFile(files[n-1].Path)
			if err != nil {
				continue // deleted meanwhile: take the next
			}
			chosen = filepath.Join(t.TempDir(), "chosen.db")
			if err := os.WriteFile(chosen, b, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("no scheduled backup within 30s")
		}
	}
	sentAtBackup := sm.Count()
	info, err := store.Verify(context.Background(), chosen)
	if err != nil {
		t.Fatalf("the scheduled backup does not verify: %v", err)
	}
	if info.OpenRuns != 1 || info.Subscribers != readers {
		t.Fatalf("the backup taken mid-run holds %+v, want %d readers and the run in progress (%d of %d sent)", info, readers, sentAtBackup, readers)
	}

	restore := func() (string, int) {
		cmd := exec.Command(heraldBinary(t), "restore", "--config", in.config, chosen)
		out, err := cmd.CombinedOutput()
		if ee, ok := err.(*exec.ExitError); ok {
			return string(out), ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return string(out), 0
	}
	if out, code := restore(); code != 1 || !strings.Contains(out, "in use by a running herald") {
		t.Fatalf("restore while herald runs: exit %d\n%s", code, out)
	}

	sm.SetDelay(0)
	in.waitRun(runID, 60*time.Second)
	if r := in.api("POST", "/api/v1/subscribers", `{"email":"after-backup@example.org","confirmed":true}`); r.Status != 201 {
		t.Fatalf("add: %d", r.Status)
	}
	// Backups keep coming while herald runs; only the newest 3 stay.
	files, _ := backup.List(dir)
	if len(files) == 0 || len(files) > 3 {
		t.Fatalf("%d backups in %s, want 1 to 3", len(files), dir)
	}
	p.stop()

	out, code := restore()
	if code != 0 || !strings.Contains(out, "restored") || !strings.Contains(out, "1 unfinished") {
		t.Fatalf("restore: exit %d\n%s", code, out)
	}
	p = in.start()
	defer p.stop()
	if r := in.api("GET", "/api/v1/subscribers/after-backup@example.org", ""); r.Status != 404 {
		t.Fatalf("after restore, a reader added after the backup is still there: %d", r.Status)
	}
	if st := in.status(emails[readers-1]); st != "confirmed" {
		t.Fatalf("after restore: %s", st)
	}
	if final := in.waitRun(runID, 60*time.Second); final["state"] != "done" {
		t.Fatalf("restored run: %v", final)
	}
	oneDigestEach(t, sm, readers)
}
