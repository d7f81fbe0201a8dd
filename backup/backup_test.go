package backup_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/herald-dev/herald"
	"github.com/herald-dev/herald/backup"
	"github.com/herald-dev/herald/store"
)

func openDB(t *testing.T, readers int) *store.DB {
	t.Helper()
	ctx := context.Background()
	db, err := store.Open(ctx, filepath.Join(t.TempDir(), "herald.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	for i := range readers {
		_, err := db.MutateSubscriber(ctx, fmt.Sprintf("r%d@example.org", i), func(cur *herald.Subscriber) (*herald.Subscriber, []*herald.OutboxMessage, error) {
			cur.Status, cur.Frequency = herald.StatusConfirmed, herald.Daily
			return cur, nil, nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return db
}

func verify(path string) error {
	_, err := store.Verify(context.Background(), path)
	return err
}

// Once writes a whole, checked snapshot and keeps only the newest Keep
// backups, never touching other files in the directory.
func TestOnceKeepsTheNewest(t *testing.T) {
	db := openDB(t, 30)
	dir := t.TempDir()
	for _, f := range []string{"notes.txt", "herald-not-a-date.db", "herald.db"} {
		os.WriteFile(filepath.Join(dir, f), []byte("mine"), 0o600)
	}
	now := time.Date(2026, 3, 1, 2, 0, 0, 0, time.UTC)
	s, err := backup.New(db, backup.Options{Dir: dir, Every: time.Hour, Keep: 2, Check: verify, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	for range 4 {
		p, err := s.Once(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
		now = now.Add(time.Hour)
	}
	files, err := backup.List(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 2 || files[0].Path != paths[2] || files[1].Path != paths[3] {
		t.Fatalf("kept %v, want the last two of %v", files, paths)
	}
	for _, f := range files {
		info, err := store.Verify(context.Background(), f.Path)
		if err != nil || info.Subscribers != 30 {
			t.Fatalf("%s: %+v %v", f.Path, info, err)
		}
	}
	for _, f := range []string{"notes.txt", "herald-not-a-date.db", "herald.db"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Fatalf("%s was deleted: %v", f, err)
		}
	}
	if want := "herald-20260301T050000.000Z.db"; filepath.Base(paths[3]) != want {
		t.Fatalf("name %s, want %s", filepath.Base(paths[3]), want)
	}
}

// Run takes backups on its own, one per period, until stopped.
func TestRunTakesBackups(t *testing.T) {
	db := openDB(t, 5)
	dir := filepath.Join(t.TempDir(), "backups") // created on demand
	done := make(chan error, 10)
	s, err := backup.New(db, backup.Options{Dir: dir, Every: 20 * time.Millisecond, Keep: 2, Check: verify,
		Done: func(_ string, err error) { done <- err }})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { _ = s.Run(ctx) })
	for range 3 {
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("no scheduled backup within 30s")
		}
	}
	cancel()
	wg.Wait()
	files, _ := backup.List(dir)
	if len(files) != 2 {
		t.Fatalf("%d backups kept, want 2", len(files))
	}
}

func TestNextDue(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	day := 24 * time.Hour
	at := func(d time.Duration) []backup.File { return []backup.File{{Taken: now.Add(d)}} }
	for _, tc := range []struct {
		name  string
		files []backup.File
		want  time.Time
	}{
		{"none yet", nil, now},
		{"recent", at(-time.Hour), now.Add(23 * time.Hour)},
		{"overdue", at(-30 * time.Hour), now},
		{"clock set back", at(5 * day), now.Add(day)},
	} {
		if got := backup.NextDue(tc.files, day, now); !got.Equal(tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}

// WriteFile leaves either the whole checked file or nothing.
func TestWriteFileAllOrNothing(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "out.db")
	os.WriteFile(path, []byte("old"), 0o600)
	cut := errors.New("cut off")
	for name, tc := range map[string]struct {
		write func(io.Writer) (int64, error)
		check func(string) error
	}{
		"write fails": {func(w io.Writer) (int64, error) { io.WriteString(w, "half"); return 4, cut }, nil},
		"check fails": {func(w io.Writer) (int64, error) { n, err := io.WriteString(w, "junk"); return int64(n), err }, verify},
	} {
		if _, err := backup.WriteFile(path, tc.write, tc.check); err == nil {
			t.Fatalf("%s: no error", name)
		}
		if b, _ := os.ReadFile(path); string(b) != "old" {
			t.Fatalf("%s: the file is now %q", name, b)
		}
	}
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if strings.Contains(e.Name(), ".tmp-") {
			t.Fatalf("temporary file left: %s", e.Name())
		}
	}
}
