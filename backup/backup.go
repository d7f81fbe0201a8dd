// Package backup writes database snapshots to files: atomically (a file
// is whole or absent) and on a schedule, keeping the newest few. What a
// snapshot contains is the store's business; this package only knows
// files and time.
package backup

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/herald-dev/herald"
)

// WriteFile writes what write produces to a temporary file beside path,
// syncs it, runs check on it (if not nil), and only then renames it into
// place: path is either the old file or the whole new one, never half.
func WriteFile(path string, write func(io.Writer) (int64, error), check func(path string) error) (int64, error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return 0, fmt.Errorf("backup: %w", err)
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(tmp)
		}
	}()
	n, err := write(f)
	if err != nil {
		return n, err
	}
	if err := f.Sync(); err != nil {
		return n, fmt.Errorf("backup: %w", err)
	}
	if err := f.Close(); err != nil {
		return n, fmt.Errorf("backup: %w", err)
	}
	if check != nil {
		if err := check(tmp); err != nil {
			return n, err
		}
	}
	if err := os.Rename(tmp, path); err != nil {
		return n, fmt.Errorf("backup: %w", err)
	}
	ok = true
	SyncDir(dir)
	return n, nil
}

// SyncDir makes a rename in dir durable (best effort: not every system
// can sync a directory).
func SyncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
}

// Options configure a Scheduler.
type Options struct {
	// Dir holds the backups; it is created if missing.
	Dir string
	// Every is the time between backups (> 0).
	Every time.Duration
	// Keep is how many backups stay; older ones are deleted (>= 1).
	Keep int
	// Check verifies a written file before it takes its name (optional).
	Check  func(path string) error
	Logger *slog.Logger
	Now    func() time.Time
	// Done, if set, is called after every attempt (tests wait on it).
	Done func(path string, err error)
}

// Scheduler takes a backup every Options.Every into Options.Dir.
type Scheduler struct {
	src herald.Backupper
	opt Options
	log *slog.Logger
}

// New returns a scheduler of snapshots of src.
func New(src herald.Backupper, opt Options) (*Scheduler, error) {
	if opt.Every <= 0 || opt.Keep < 1 || opt.Dir == "" {
		return nil, fmt.Errorf("backup: want Dir, Every > 0 and Keep >= 1, got %q, %s, %d", opt.Dir, opt.Every, opt.Keep)
	}
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	return &Scheduler{src: src, opt: opt, log: opt.Logger}, nil
}

// File is one backup in the directory.
type File struct {
	Path  string
	Taken time.Time
}

const (
	prefix = "herald-"
	suffix = ".db"
	stamp  = "20060102T150405.000Z"
)

// Name is the file name of a backup taken at t: sortable, in UTC.
func Name(t time.Time) string { return prefix + t.UTC().Format(stamp) + suffix }

// List returns the backups in dir, oldest first. Other files are ignored
// (and never deleted).
func List(dir string) ([]File, error) {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	} else if err != nil {
		return nil, fmt.Errorf("backup: %w", err)
	}
	var fs []File
	for _, e := range ents {
		n := e.Name()
		if e.IsDir() || !strings.HasPrefix(n, prefix) || !strings.HasSuffix(n, suffix) {
			continue
		}
		t, err := time.Parse(stamp, strings.TrimSuffix(strings.TrimPrefix(n, prefix), suffix))
		if err != nil {
			continue
		}
		fs = append(fs, File{Path: filepath.Join(dir, n), Taken: t})
	}
	sort.Slice(fs, func(i, j int) bool { return fs[i].Taken.Before(fs[j].Taken) })
	return fs, nil
}

// NextDue is when the next backup is due: Every after the newest one, or
// now if there is none. It goes by the backups on disk, so a herald
// restarted every night still backs up once a day.
func NextDue(files []File, every time.Duration, now time.Time) time.Time {
	if len(files) == 0 {
		return now
	}
	next := files[len(files)-1].Taken.Add(every)
	if next.Before(now) {
		return now
	}
	return earlier(next, now.Add(every)) // a clock set back must not postpone backups
}

func earlier(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// Run takes backups until ctx is done.
func (s *Scheduler) Run(ctx context.Context) error {
	for {
		files, err := List(s.opt.Dir)
		if err != nil {
			s.log.Error("backup: cannot list backups", "dir", s.opt.Dir, "err", err)
		}
		now := s.opt.Now()
		wait := NextDue(files, s.opt.Every, now).Sub(now)
		if err != nil {
			wait = min(s.opt.Every, 10*time.Minute)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		path, err := s.Once(ctx)
		if err != nil && ctx.Err() == nil {
			s.log.Error("backup: scheduled backup failed", "dir", s.opt.Dir, "err", err)
		}
		if s.opt.Done != nil {
			s.opt.Done(path, err)
		}
		if err != nil && ctx.Err() == nil {
			// Retry sooner than a whole period, without hammering.
			t := time.NewTimer(min(s.opt.Every, 10*time.Minute))
			select {
			case <-ctx.Done():
				t.Stop()
				return ctx.Err()
			case <-t.C:
			}
		}
	}
}

// Once takes one backup now, then deletes the oldest beyond Keep.
func (s *Scheduler) Once(ctx context.Context) (string, error) {
	if err := os.MkdirAll(s.opt.Dir, 0o700); err != nil {
		return "", fmt.Errorf("backup: %w", err)
	}
	path := filepath.Join(s.opt.Dir, Name(s.opt.Now()))
	n, err := WriteFile(path, func(w io.Writer) (int64, error) { return s.src.Backup(ctx, w) }, s.opt.Check)
	if err != nil {
		return "", err
	}
	s.log.Info("backup: written", "path", path, "bytes", n)
	files, err := List(s.opt.Dir)
	if err != nil {
		return path, err
	}
	for len(files) > s.opt.Keep {
		if err := os.Remove(files[0].Path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return path, fmt.Errorf("backup: delete old backup: %w", err)
		}
		s.log.Info("backup: deleted old backup", "path", files[0].Path)
		files = files[1:]
	}
	return path, nil
}
