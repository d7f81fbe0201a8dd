package feed

import (
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/herald-dev/herald"
	"github.com/herald-dev/herald/store"
)

// testStore is the real bbolt store, on a file in a temp dir, with
// failures on cue for the tests of how the poller takes a sick store.
type testStore struct {
	*store.DB
	mu                      sync.Mutex
	failUpserts, failStates error
}

var _ herald.PostStore = (*testStore)(nil)

func newTestStore(t testing.TB) *testStore {
	t.Helper()
	db, err := store.Open(context.Background(), filepath.Join(t.TempDir(), "herald.db"), store.Options{LockTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return &testStore{DB: db}
}

func (s *testStore) fault(which *error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return *which
}

func (s *testStore) setFaults(upserts, states error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failUpserts, s.failStates = upserts, states
}

func (s *testStore) UpsertPosts(ctx context.Context, ps []*herald.Post) (int, error) {
	if err := s.fault(&s.failUpserts); err != nil {
		return 0, err
	}
	return s.DB.UpsertPosts(ctx, ps)
}

func (s *testStore) FeedState(ctx context.Context, url string) (*herald.FeedState, error) {
	if err := s.fault(&s.failStates); err != nil {
		return nil, err
	}
	return s.DB.FeedState(ctx, url)
}

func (s *testStore) UpdateFeedState(ctx context.Context, url string, fn func(*herald.FeedState) error) (*herald.FeedState, error) {
	if err := s.fault(&s.failStates); err != nil {
		return nil, err
	}
	return s.DB.UpdateFeedState(ctx, url, fn)
}

// all returns every stored post, oldest first.
func (s *testStore) all() []*herald.Post {
	ps, err := s.DB.PostsBetween(context.Background(), 0, 1<<62)
	if err != nil {
		panic(err)
	}
	return ps
}

func (s *testStore) state(url string) herald.FeedState {
	st, err := s.DB.FeedState(context.Background(), url)
	if err != nil {
		panic(err)
	}
	return *st
}
