package feed

import (
	"context"
	"errors"
	"slices"
	"sync"

	"github.com/herald-dev/herald"
)

// memStore is an in-memory herald.PostStore with the semantics documented
// in services.go: a post with a known GUID, or failing that a known URL,
// updates the stored one and keeps its ID, FoundAt and Silent. The real
// store is bbolt; this stands in for it in the poller's unit tests only.
type memStore struct {
	mu     sync.Mutex
	posts  []*herald.Post // index = ID-1
	states map[string]*herald.FeedState
	// failUpserts and failStates make the store break on cue.
	failUpserts, failStates error
}

var _ herald.PostStore = (*memStore)(nil)

func newMemStore() *memStore { return &memStore{states: map[string]*herald.FeedState{}} }

func clonePost(p *herald.Post) *herald.Post {
	c := *p
	c.Categories = slices.Clone(p.Categories)
	return &c
}

func (s *memStore) find(p *herald.Post) *herald.Post {
	for _, q := range s.posts {
		if q.GUID == p.GUID {
			return q
		}
	}
	if p.URL != "" {
		for _, q := range s.posts {
			if q.URL == p.URL {
				return q
			}
		}
	}
	return nil
}

func (s *memStore) upsert(p *herald.Post) bool {
	if old := s.find(p); old != nil {
		p.ID, p.FoundAt, p.Silent = old.ID, old.FoundAt, old.Silent
		s.posts[old.ID-1] = clonePost(p)
		return false
	}
	p.ID = uint64(len(s.posts) + 1)
	s.posts = append(s.posts, clonePost(p))
	return true
}

func (s *memStore) UpsertPost(ctx context.Context, p *herald.Post) (bool, error) {
	n, err := s.UpsertPosts(ctx, []*herald.Post{p})
	return n == 1, err
}

func (s *memStore) UpsertPosts(_ context.Context, ps []*herald.Post) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failUpserts != nil {
		return 0, s.failUpserts
	}
	n := 0
	for _, p := range ps {
		if s.upsert(p) {
			n++
		}
	}
	return n, nil
}

func (s *memStore) PostByID(_ context.Context, id uint64) (*herald.Post, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if id == 0 || id > uint64(len(s.posts)) {
		return nil, herald.Errorf(herald.ENOTFOUND, "no post %d", id)
	}
	return clonePost(s.posts[id-1]), nil
}

func (s *memStore) PostsBetween(_ context.Context, after, upto uint64) ([]*herald.Post, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*herald.Post
	for _, p := range s.posts {
		if p.ID > after && p.ID <= upto {
			out = append(out, clonePost(p))
		}
	}
	return out, nil
}

func (s *memStore) ListPosts(context.Context, int, uint64) ([]*herald.Post, uint64, error) {
	return nil, 0, errors.New("not used")
}

func (s *memStore) LastPostID(context.Context) (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return uint64(len(s.posts)), nil
}

func (s *memStore) CountPosts(context.Context) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.posts), nil
}

func (s *memStore) all() []*herald.Post {
	ps, _ := s.PostsBetween(context.Background(), 0, 1<<62)
	return ps
}

func (s *memStore) FeedState(_ context.Context, url string) (*herald.FeedState, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failStates != nil {
		return nil, s.failStates
	}
	if st, ok := s.states[url]; ok {
		c := *st
		return &c, nil
	}
	return &herald.FeedState{URL: url}, nil
}

func (s *memStore) PutFeedState(_ context.Context, st *herald.FeedState) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failStates != nil {
		return s.failStates
	}
	c := *st
	s.states[st.URL] = &c
	return nil
}

func (s *memStore) FeedStates(context.Context) ([]*herald.FeedState, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*herald.FeedState
	for _, st := range s.states {
		c := *st
		out = append(out, &c)
	}
	return out, nil
}

func (s *memStore) state(url string) herald.FeedState {
	st, _ := s.FeedState(context.Background(), url)
	return *st
}
