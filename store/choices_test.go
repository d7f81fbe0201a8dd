package store

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/herald-dev/herald"
)

// recountChoices counts topics and zones the slow way, as the kept counts
// should have them.
func recountChoices(t *testing.T, db *DB) (topics map[string]int, withTopics int, zones map[herald.Frequency]map[string]int) {
	t.Helper()
	topics, zones = map[string]int{}, map[herald.Frequency]map[string]int{}
	for _, f := range herald.Frequencies {
		zones[f] = map[string]int{}
	}
	subs, err := db.ScanSubscribers(context.Background(), 0, 10000)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range subs {
		if s.Status != herald.StatusConfirmed {
			continue
		}
		for _, tp := range s.Topics {
			topics[tp]++
		}
		if len(s.Topics) > 0 {
			withTopics++
		}
		if s.Timezone != "" {
			zones[s.Frequency][s.Timezone]++
		}
	}
	return topics, withTopics, zones
}

func checkChoiceCounts(t *testing.T, db *DB) {
	t.Helper()
	ctx := context.Background()
	wantTopics, wantWith, wantZones := recountChoices(t, db)
	topics, with, err := db.CountTopics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !maps.Equal(topics, wantTopics) || with != wantWith {
		t.Fatalf("CountTopics = %v, %d; a full scan says %v, %d", topics, with, wantTopics, wantWith)
	}
	for _, f := range herald.Frequencies {
		zones, err := db.CountZones(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		if !maps.Equal(zones, wantZones[f]) {
			t.Fatalf("CountZones(%s) = %v; a full scan says %v", f, zones, wantZones[f])
		}
	}
}

// The counts of topics and time zones follow every kind of change: new
// readers, confirmations, changed choices and frequencies, unsubscribes,
// erasures; only confirmed readers count.
func TestChoiceCountsFollowChanges(t *testing.T) {
	ctx := context.Background()
	db := openTest(t, "", nil)
	rng := rand.New(rand.NewPCG(13, 13))
	topics := []string{"Courts", "Prisons", "Policing"}
	zones := []string{"", "Europe/London", "Asia/Kolkata"}
	statuses := []herald.Status{herald.StatusPending, herald.StatusConfirmed, herald.StatusConfirmed, herald.StatusUnsubscribed}
	for step := range 400 {
		email := fmt.Sprintf("r%d@example.org", rng.IntN(40))
		if rng.IntN(10) == 0 {
			err := db.DeleteSubscriber(ctx, email)
			if err != nil && herald.ErrorCode(err) != herald.ENOTFOUND {
				t.Fatal(err)
			}
		} else {
			_, err := db.MutateSubscriber(ctx, email, func(cur *herald.Subscriber) (*herald.Subscriber, []*herald.OutboxMessage, error) {
				next := *cur
				next.Status = statuses[rng.IntN(len(statuses))]
				next.Frequency = herald.Frequencies[rng.IntN(len(herald.Frequencies))]
				next.Timezone = zones[rng.IntN(len(zones))]
				next.Topics = nil
				for _, tp := range topics {
					if rng.IntN(2) == 0 {
						next.Topics = append(next.Topics, tp)
					}
				}
				return &next, nil, nil
			})
			if err != nil {
				t.Fatal(err)
			}
		}
		if step%50 == 0 {
			checkChoiceCounts(t, db)
		}
	}
	checkChoiceCounts(t, db)
	checkCounts(t, db)
}

// A run's delivery records the reader's slot and the end of their pause
// when it reached them (sent or skipped), never when it failed.
func TestRecordDeliveriesSlotAndPause(t *testing.T) {
	ctx := context.Background()
	db := openTest(t, "", nil)
	slot := time.Date(2025, 3, 30, 7, 0, 0, 0, time.UTC)
	pausedAt := time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)
	var ids []uint64
	for i := range 3 {
		s, err := db.MutateSubscriber(ctx, fmt.Sprintf("p%d@example.org", i), func(cur *herald.Subscriber) (*herald.Subscriber, []*herald.OutboxMessage, error) {
			cur.Status, cur.Frequency, cur.PausedAt = herald.StatusConfirmed, herald.Daily, pausedAt
			return cur, nil, nil
		})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, s.ID)
	}
	run := &herald.Run{Frequency: herald.Daily, State: herald.RunRunning}
	if err := db.CreateRun(ctx, run); err != nil {
		t.Fatal(err)
	}
	err := db.RecordDeliveries(ctx, 3,
		herald.Delivery{RunID: run.ID, SubscriberID: ids[0], Cursor: 5, Outcome: herald.OutcomeSent, Slot: slot, EndPause: true},
		herald.Delivery{RunID: run.ID, SubscriberID: ids[1], Cursor: 5, Outcome: herald.OutcomeSkipped, Slot: slot, EndPause: true},
		herald.Delivery{RunID: run.ID, SubscriberID: ids[2], Outcome: herald.OutcomeFailed, Slot: slot, EndPause: true})
	if err != nil {
		t.Fatal(err)
	}
	for i, id := range ids {
		s, err := db.SubscriberByID(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		reached := i < 2
		if got := s.LastSlot.Equal(slot); got != reached {
			t.Errorf("reader %d: LastSlot %v (reached: %v)", i, s.LastSlot, reached)
		}
		if got := s.PausedAt.IsZero(); got != reached {
			t.Errorf("reader %d: PausedAt %v (reached: %v)", i, s.PausedAt, reached)
		}
	}
}

// TestMigrateSchema5And6 opens testdata/schema5.db and schema6.db, each
// written by herald before readers' choices (subscriber records of
// version 1, no topic or zone counts): every reader reads as before with
// no choices, the counts start empty, and a reader's first choices are
// counted.
func TestMigrateSchema5And6(t *testing.T) {
	for _, schema := range []int{5, 6} {
		t.Run(fmt.Sprint("schema", schema), func(t *testing.T) { migrateBeforeChoices(t, schema) })
	}
}

func migrateBeforeChoices(t *testing.T, schema int) {
	ctx := context.Background()
	src, err := os.ReadFile(fmt.Sprintf("testdata/schema%d.db", schema))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "herald.db")
	if err := os.WriteFile(path, src, 0o600); err != nil {
		t.Fatal(err)
	}
	if info, err := Verify(ctx, path); err != nil || info.Schema != schema {
		t.Fatalf("Verify before the migration = %+v, %v", info, err)
	}
	db := openTest(t, path, nil)
	for email, want := range map[string]struct {
		status herald.Status
		freq   herald.Frequency
		cursor uint64
	}{
		"ann@example.org": {herald.StatusConfirmed, herald.Daily, 2},
		"bob@example.org": {herald.StatusConfirmed, herald.Weekly, 3},
		"cy@example.org":  {herald.StatusConfirmed, herald.Daily, 1},
		"dee@example.org": {herald.StatusPending, herald.Daily, 0},
		"eve@example.org": {herald.StatusUnsubscribed, herald.Instant, 3},
	} {
		s, err := db.SubscriberByEmail(ctx, email)
		if err != nil || s.Status != want.status || s.Frequency != want.freq || s.Cursor != want.cursor || s.Name != "R "+email[:3] {
			t.Fatalf("%s = %+v, %v; want %+v", email, s, err, want)
		}
		if len(s.Topics) != 0 || s.Timezone != "" || s.PausedUntil != nil || !s.PausedAt.IsZero() || !s.LastSlot.IsZero() {
			t.Fatalf("%s has choices after the migration: %+v", email, s)
		}
	}
	if ps, _, err := db.ListPosts(ctx, 10, 0); err != nil || len(ps) != 3 || !slices.Equal(ps[0].Categories, []string{"Courts"}) {
		t.Fatalf("posts after the migration: %v %v", ps, err)
	}
	if n, err := db.CountRuns(ctx); err != nil || n != 1 {
		t.Fatalf("runs after the migration: %d %v", n, err)
	}
	topics, anyTopic, err := db.CountTopics(ctx)
	if err != nil || len(topics) != 0 || anyTopic != 0 {
		t.Fatalf("topic counts of an old database: %v %d %v", topics, anyTopic, err)
	}
	if zones, err := db.CountZones(ctx, herald.Daily); err != nil || len(zones) != 0 {
		t.Fatalf("zone counts of an old database: %v %v", zones, err)
	}
	// An old reader's first choices are saved in the new record and counted.
	if _, err := db.MutateSubscriber(ctx, "ann@example.org", func(cur *herald.Subscriber) (*herald.Subscriber, []*herald.OutboxMessage, error) {
		next := *cur
		next.Topics, next.Timezone = herald.TopicList{"Courts"}, "Asia/Kolkata"
		return &next, nil, nil
	}); err != nil {
		t.Fatal(err)
	}
	if topics, anyTopic, _ = db.CountTopics(ctx); topics["Courts"] != 1 || anyTopic != 1 {
		t.Fatalf("topic counts after a choice: %v %d", topics, anyTopic)
	}
	if zones, _ := db.CountZones(ctx, herald.Daily); !maps.Equal(zones, map[string]int{"Asia/Kolkata": 1}) {
		t.Fatalf("zone counts after a choice: %v", zones)
	}
	if s, _ := db.SubscriberByEmail(ctx, "ann@example.org"); s.Cursor != 2 || s.Timezone != "Asia/Kolkata" {
		t.Fatalf("ann after her choice: %+v", s)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if info, err := Verify(ctx, path); err != nil || info.Schema != SchemaVersion() {
		t.Fatalf("Verify after the migration = %+v, %v", info, err)
	}
}
