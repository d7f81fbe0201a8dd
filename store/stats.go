package store

import (
	"context"
	"fmt"

	"github.com/herald-dev/herald"
	bolt "go.etcd.io/bbolt"
)

var (
	_ herald.StatsService   = (*DB)(nil)
	_ herald.ArchiveService = (*DB)(nil)
)

// Stats counts subscribers, posts, runs, emails and the outbox: kept
// counters all (the posts aside), read without walking a bucket.
func (db *DB) Stats(ctx context.Context) (*herald.Stats, error) {
	subs, err := db.CountSubscribers(ctx)
	if err != nil {
		return nil, err
	}
	posts, err := db.CountPosts(ctx)
	if err != nil {
		return nil, err
	}
	st := &herald.Stats{Subscribers: herald.NewSubscriberStats(subs), Posts: posts}
	if st.Subscribers.ByTopic, st.Subscribers.WithTopics, err = db.CountTopics(ctx); err != nil {
		return nil, err
	}
	err = db.bolt.View(func(tx *bolt.Tx) error {
		st.Runs = int(counter(tx, herald.CounterRuns))
		st.Outbox = int(counter(tx, herald.CounterOutbox))
		st.Emails = herald.EmailStats{Sent: counter(tx, herald.CounterEmailsSent), Failed: counter(tx, herald.CounterEmailsFailed)}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: stats: %w", err)
	}
	return st, nil
}
