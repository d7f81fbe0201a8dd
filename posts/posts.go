// Package posts is the admin's view of the posts and the feeds
// (herald.PostService): posts listed with the runs that carried them,
// posts sent to the API (a CMS webhook, an admin) cleaned as feed posts
// are, the feeds' states, and a poll of every feed now.
package posts

import (
	"context"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/herald-dev/herald"
)

// Store is what the service reads and writes.
type Store interface {
	herald.PostStore
	RunStore
}

// RunStore lists runs (for the runs that carried a post).
type RunStore interface {
	ListRuns(ctx context.Context, limit int, before uint64) ([]*herald.Run, error)
}

// Cleaner sanitises a post as feed posts are (feed.Parser): HTML through
// the same policy, the title as plain text.
type Cleaner interface {
	Clean(p *herald.Post) error
}

// Poller polls every feed now (feed.Poller).
type Poller interface {
	PollAll(ctx context.Context) []*herald.PollResult
}

// Options are the service's parts besides the store.
type Options struct {
	Cleaner Cleaner
	Poller  Poller
	// NewPosts is told that posts arrived (the digest's instant runs).
	NewPosts func()
	Logger   *slog.Logger
	Now      func() time.Time
}

// Service implements herald.PostService.
type Service struct {
	store Store
	opt   Options
	log   *slog.Logger
}

var _ herald.PostService = (*Service)(nil)

// New returns a Service.
func New(store Store, opt Options) *Service {
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.NewPosts == nil {
		opt.NewPosts = func() {}
	}
	return &Service{store: store, opt: opt, log: opt.Logger}
}

// ListPosts returns a page of posts, newest first, each with the runs
// that carried it.
func (s *Service) ListPosts(ctx context.Context, limit int, before uint64) ([]*herald.PostRuns, uint64, error) {
	posts, next, err := s.store.ListPosts(ctx, limit, before)
	if err != nil {
		return nil, 0, err
	}
	carried := s.carriers(ctx, posts)
	out := make([]*herald.PostRuns, len(posts))
	for i, p := range posts {
		out[i] = &herald.PostRuns{Post: p, Runs: carried[p.ID]}
		if out[i].Runs == nil {
			out[i].Runs = []uint64{}
		}
	}
	return out, next, nil
}

// carriers finds, for each post, the first real run of each frequency
// whose cut-off took it in: the run that mailed it to the readers who
// were up to date. Readers further behind got it in that frequency's
// next digest for them; this is the run an admin asks about. It reads the
// last 1000 runs.
func (s *Service) carriers(ctx context.Context, posts []*herald.Post) map[uint64][]uint64 {
	out := map[uint64][]uint64{}
	if len(posts) == 0 {
		return out
	}
	runs, err := s.store.ListRuns(ctx, 1000, 0)
	if err != nil {
		s.log.Warn("posts: runs for posts", "err", err)
		return out
	}
	// Oldest first, per frequency, only runs that sent something.
	byFreq := map[herald.Frequency][]*herald.Run{}
	for i := len(runs) - 1; i >= 0; i-- {
		run := runs[i]
		if run.DryRun || run.Sent == 0 {
			continue
		}
		byFreq[run.Frequency] = append(byFreq[run.Frequency], run)
	}
	for _, p := range posts {
		if p.Silent {
			continue
		}
		for _, f := range herald.Frequencies {
			for _, run := range byFreq[f] {
				if run.Cutoff >= p.ID {
					out[p.ID] = append(out[p.ID], run.ID)
					break
				}
			}
		}
	}
	return out
}

// AddPost checks, cleans and stores a post sent to the API; a new one
// wakes the instant runs.
func (s *Service) AddPost(ctx context.Context, in herald.PostInput) (*herald.Post, bool, error) {
	p, err := postFromInput(in)
	if err != nil {
		return nil, false, err
	}
	if err := s.opt.Cleaner.Clean(p); err != nil {
		return nil, false, err
	}
	p.Feed = "api"
	p.FoundAt = s.opt.Now().UTC()
	created, err := s.store.UpsertPost(ctx, p)
	if err != nil {
		return nil, false, err
	}
	if created {
		s.opt.NewPosts()
	}
	return p, created, nil
}

// postFromInput checks a post sent to the API. Errors are EINVALID with
// the field named.
func postFromInput(in herald.PostInput) (*herald.Post, error) {
	in.URL = strings.TrimSpace(in.URL)
	in.GUID = strings.TrimSpace(in.GUID)
	if in.URL == "" {
		return nil, herald.Errorf(herald.EINVALID, "url is required").WithField("url")
	}
	u, err := url.Parse(in.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || strings.ContainsAny(in.URL, " \r\n") {
		return nil, herald.Errorf(herald.EINVALID, "url must be an absolute http(s) URL").WithField("url")
	}
	if len(in.GUID) > 1000 {
		return nil, herald.Errorf(herald.EINVALID, "guid is longer than 1000 characters").WithField("guid")
	}
	if strings.TrimSpace(in.Title) == "" {
		return nil, herald.Errorf(herald.EINVALID, "title is required").WithField("title")
	}
	if len(in.Categories) > 50 {
		return nil, herald.Errorf(herald.EINVALID, "at most 50 categories").WithField("categories")
	}
	p := &herald.Post{GUID: in.GUID, URL: in.URL, Title: in.Title, Summary: in.Summary, Content: in.Content, Author: in.Author, Categories: in.Categories}
	if p.GUID == "" {
		p.GUID = p.URL
	}
	if in.PublishedAt != "" {
		t, err := time.Parse(time.RFC3339, in.PublishedAt)
		if err != nil {
			return nil, herald.Errorf(herald.EINVALID, "published_at must be an RFC 3339 time like 2026-11-25T07:00:00Z").WithField("published_at")
		}
		p.PublishedAt = t.UTC()
	}
	return p, nil
}

// Feeds returns what is known of every feed.
func (s *Service) Feeds(ctx context.Context) ([]*herald.FeedState, error) {
	return s.store.FeedStates(ctx)
}

// PollFeeds polls every feed now.
func (s *Service) PollFeeds(ctx context.Context) ([]*herald.PollResult, error) {
	return s.opt.Poller.PollAll(ctx), nil
}

// SendPost makes a silent post (a feed's backlog, older than max_age) go
// out: it becomes the newest post, for every reader's next email, and
// wakes the instant runs.
func (s *Service) SendPost(ctx context.Context, id uint64) (*herald.Post, error) {
	p, err := s.store.ReleasePost(ctx, id)
	if err != nil {
		return nil, err
	}
	s.opt.NewPosts()
	return p, nil
}
