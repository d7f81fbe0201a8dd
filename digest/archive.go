package digest

import (
	"context"
	"fmt"
	"time"

	"github.com/herald-dev/herald"
)

// Archive is where finished digests are kept as public web copies.
type Archive interface {
	PutArchive(ctx context.Context, e *herald.ArchiveEntry) error
	LatestArchive(ctx context.Context, freq herald.Frequency) (*herald.ArchiveEntry, error)
}

// maxArchiveTitles caps the titles an entry lists.
const maxArchiveTitles = 50

// archive records the web copy of a finished run: the posts since the
// previous entry of its frequency, rendered without any reader's links.
// Only real daily and weekly runs that mailed someone are archived.
// Failures are logged, never the run's: the mail has gone.
func (s *Service) archive(ctx context.Context, run *herald.Run) {
	if s.opt.Archive == nil || run == nil || run.State != herald.RunDone || run.DryRun ||
		run.Frequency == herald.Instant || run.Sent == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	e, err := s.archiveEntry(ctx, run)
	if err == nil && e != nil {
		err = s.opt.Archive.PutArchive(ctx, e)
	}
	if err != nil {
		s.log.Error("archive: cannot record the run", "run", run.ID, "err", err)
		return
	}
	if e != nil {
		s.log.Info("archive: run recorded", "run", run.ID, "posts", e.Posts)
	}
}

// archiveEntry builds the entry for run; nil when it holds no post.
func (s *Service) archiveEntry(ctx context.Context, run *herald.Run) (*herald.ArchiveEntry, error) {
	after, err := s.archiveStart(ctx, run)
	if err != nil {
		return nil, err
	}
	posts, err := s.newPosts(ctx, after, run.Cutoff)
	if err != nil || len(posts) == 0 {
		return nil, err
	}
	r, err := s.render.Render(posts, run.Frequency, true, "")
	if err != nil {
		return nil, fmt.Errorf("digest: archive: %w", err)
	}
	date := s.opt.Now().UTC()
	if run.FinishedAt != nil {
		date = *run.FinishedAt
	}
	e := &herald.ArchiveEntry{
		ID: run.ID, Frequency: run.Frequency, Date: date, After: after, Cutoff: run.Cutoff,
		Subject: r.Subject, Posts: len(posts), HTML: r.HTML, Text: r.Text,
	}
	for i := len(posts) - 1; i >= 0 && len(e.Titles) < maxArchiveTitles; i-- {
		e.Titles = append(e.Titles, posts[i].Title)
	}
	return e, nil
}

// archiveStart is the cutoff the entry starts after: the previous entry's
// of the same frequency, or, for the first one, the cutoff of the
// previous finished run of that frequency (so turning the archive on
// later does not pour the whole history into one entry).
func (s *Service) archiveStart(ctx context.Context, run *herald.Run) (uint64, error) {
	prev, err := s.opt.Archive.LatestArchive(ctx, run.Frequency)
	if err != nil {
		return 0, fmt.Errorf("digest: archive: %w", err)
	}
	if prev != nil && prev.ID < run.ID {
		return min(prev.Cutoff, run.Cutoff), nil
	}
	if prev != nil && prev.ID == run.ID {
		return prev.After, nil // archived before: the same entry again
	}
	before := run.ID
	for range 10 { // a bounded look back, past the instant runs
		runs, err := s.store.ListRuns(ctx, 200, before)
		if err != nil {
			return 0, fmt.Errorf("digest: archive: %w", err)
		}
		for _, r := range runs {
			if r.Frequency == run.Frequency && r.State == herald.RunDone && !r.DryRun {
				return min(r.Cutoff, run.Cutoff), nil
			}
		}
		if len(runs) < 200 {
			break
		}
		before = runs[len(runs)-1].ID
	}
	return 0, nil
}
