package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/herald-dev/herald"
	"github.com/herald-dev/herald/internal/smtptest"
	"github.com/herald-dev/herald/internal/testenv"
	"github.com/herald-dev/herald/store"
)

// TestBackupDuringRunAndRestore takes `herald backup` while a digest run is
// sending, checks the copy opens with every subscriber, then restores it
// the documented way (stop, replace the file, start).
func TestBackupDuringRunAndRestore(t *testing.T) {
	const readers = 1500
	sm := smtptest.Start(t)
	in := newInstance(t, smtpConfig(sm.Port(), "[digest]\ndaily = \"\"\nweekly = \"\"\n"))
	p := in.start()
	emails := in.importReaders(readers, "example.org", "daily")
	in.addPost("backup-1", "A post to send while the backup runs")
	sm.SetDelay(3 * time.Millisecond)
	runID := in.startRun("daily")
	testenv.Eventually(t, time.Minute, "the run to be under way", func() bool { return sm.Count() >= 100 })
	backup := filepath.Join(t.TempDir(), "herald-backup.db")
	cmd := exec.Command(heraldBinary(t), "backup", backup, "--server", in.base)
	cmd.Env = append(os.Environ(), "HERALD_ADMIN_TOKEN="+adminToken)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("herald backup: %v\n%s", err, out)
	}
	sentAtBackup := sm.Count()
	if sentAtBackup >= readers {
		t.Fatalf("the run ended before the backup (%d sent): slow the SMTP server down", sentAtBackup)
	}

	// The copy is a whole database: every subscriber, the run in progress.
	ctx := context.Background()
	db, err := store.Open(ctx, backup, store.Options{LockTimeout: time.Second})
	if err != nil {
		t.Fatalf("the backup does not open: %v", err)
	}
	counts, _ := db.CountSubscribers(ctx)
	run, err := db.Run(ctx, runID)
	db.Close()
	if n := counts[herald.StatusConfirmed][herald.Daily]; n != readers {
		t.Fatalf("backup holds %d confirmed readers, want %d", n, readers)
	}
	if err != nil || (run.State != herald.RunRunning && run.State != herald.RunDone) {
		t.Fatalf("backup's run: %+v %v", run, err)
	}
	t.Logf("backup taken with %d of %d emails sent; the copy's run shows %d sent", sentAtBackup, readers, run.Sent)

	// Let the run finish, add one more reader, then restore the backup.
	sm.SetDelay(0)
	in.waitRun(runID, 60*time.Second)
	if r := in.api("POST", "/api/v1/subscribers", `{"email":"after-backup@example.org","confirmed":true}`); r.Status != 201 {
		t.Fatalf("add: %d", r.Status)
	}
	p.stop()
	dbPath := filepath.Join(in.dir, "herald.db")
	b, err := os.ReadFile(backup)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dbPath, b, 0o600); err != nil {
		t.Fatal(err)
	}
	p = in.start()
	defer p.stop()
	if r := in.api("GET", "/api/v1/subscribers/after-backup@example.org", ""); r.Status != 404 {
		t.Fatalf("after restore, a reader added after the backup is still there: %d", r.Status)
	}
	if st := in.status(emails[readers-1]); st != "confirmed" {
		t.Fatalf("after restore: %s", st)
	}
	// The restored run was unfinished in the copy: it resumes, and nobody
	// gets a second, different digest for it.
	final := in.waitRun(runID, 60*time.Second)
	if final["state"] != "done" {
		t.Fatalf("restored run: %v", final)
	}
	oneDigestEach(t, sm, readers)
}
