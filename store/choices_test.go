package store

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
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
