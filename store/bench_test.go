package store

import (
	"context"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/herald-dev/herald"
	bolt "go.etcd.io/bbolt"
)

// openBench opens a database with the production batch settings.
func openBench(b *testing.B) *DB {
	b.Helper()
	db, err := Open(context.Background(), filepath.Join(b.TempDir(), "bench.db"), Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	return db
}

// BenchmarkMutateSubscriber is many visitors subscribing new addresses at
// once: each call creates a pending reader and queues its confirmation.
func BenchmarkMutateSubscriber(b *testing.B) {
	ctx := context.Background()
	db := openBench(b)
	raw := make([]byte, 4<<10) // a typical composed confirmation email
	var n atomic.Int64
	b.ReportAllocs()
	b.SetParallelism(16) // visitors wait on fsync, not on CPU
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			email := fmt.Sprintf("bench%d@example.org", n.Add(1))
			_, err := db.MutateSubscriber(ctx, email, func(cur *herald.Subscriber) (*herald.Subscriber, []*herald.OutboxMessage, error) {
				cur.Status, cur.Frequency, cur.Source = herald.StatusPending, herald.Daily, "form"
				return cur, []*herald.OutboxMessage{{Kind: herald.KindConfirm, To: cur.Email, Raw: raw}}, nil
			})
			if err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkRecordDeliveries is a digest run's workers recording one
// outcome each as their messages go out.
func BenchmarkRecordDeliveries(b *testing.B) {
	ctx := context.Background()
	db := openBench(b)
	const readers = 10000
	bulkInsert(b, db, readers, func(i int) *herald.Subscriber {
		return &herald.Subscriber{Email: fmt.Sprintf("r%d@example.org", i), Status: herald.StatusConfirmed, Frequency: herald.Daily}
	})
	// One run per pass over the readers, so each delivery is new work.
	rounds := b.N/readers + 1
	first := uint64(0)
	err := db.bolt.Update(func(tx *bolt.Tx) error {
		for range rounds {
			id, err := tx.Bucket(bucketRuns).NextSequence()
			if err != nil {
				return err
			}
			if first == 0 {
				first = id
			}
			if err := putRun(tx, &herald.Run{ID: id, Frequency: herald.Daily, State: herald.RunRunning}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	var n atomic.Int64
	b.ReportAllocs()
	b.SetParallelism(4) // a run's SMTP connections
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := uint64(n.Add(1) - 1)
			d := herald.Delivery{
				RunID:        first + i/readers,
				SubscriberID: i%readers + 1,
				Cursor:       i/readers + 1,
				Outcome:      "sent",
			}
			if err := db.RecordDeliveries(ctx, 3, d); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
