package store

import (
	"bytes"
	"context"
	"fmt"
	"slices"

	"github.com/herald-dev/herald"
	bolt "go.etcd.io/bbolt"
)

// Counts of readers' choices (schema 7), kept in the transaction of every
// subscriber write, as the counts by status and frequency are: the
// dashboard shows readers per topic, and the local-time schedules ask
// which time zones have readers, without walking a million records.
// Only confirmed readers count.
var (
	// topic → readers who chose it; anyTopicKey → readers who chose any.
	bucketSubTopics = []byte("subscriber_topics")
	// frequency \x00 time zone → readers of that frequency in that zone
	// (readers in the site's zone, Timezone "", are not counted).
	bucketSubZones = []byte("subscriber_zones")
)

// anyTopicKey counts the readers with topics; no topic is empty.
var anyTopicKey = []byte{0}

func zoneKey(f herald.Frequency, zone string) []byte {
	return []byte(string(f) + "\x00" + zone)
}

// choicesDiffer reports whether a change from prev to s moves the counts.
func choicesDiffer(prev, s *herald.Subscriber) bool {
	return prev.Status != s.Status || prev.Frequency != s.Frequency || prev.Timezone != s.Timezone || !slices.Equal(prev.Topics, s.Topics)
}

// addChoices adds delta for each choice of s to the counts.
func addChoices(tx *bolt.Tx, s *herald.Subscriber, delta int64) error {
	if s.Status != herald.StatusConfirmed {
		return nil
	}
	b := tx.Bucket(bucketSubTopics)
	for _, t := range s.Topics {
		if err := addTo(b, []byte(t), delta); err != nil {
			return err
		}
	}
	if len(s.Topics) > 0 {
		if err := addTo(b, anyTopicKey, delta); err != nil {
			return err
		}
	}
	if s.Timezone != "" {
		return addTo(tx.Bucket(bucketSubZones), zoneKey(s.Frequency, s.Timezone), delta)
	}
	return nil
}

// addTo adds delta to the count at k, deleting it at zero.
func addTo(b *bolt.Bucket, k []byte, delta int64) error {
	n := int64(btoi(b.Get(k))) + delta
	if n <= 0 {
		return b.Delete(k)
	}
	return b.Put(k, itob(uint64(n)))
}

// CountTopics returns how many confirmed readers chose each topic (by the
// spelling they chose it in), and how many chose any; the others get
// every post.
func (db *DB) CountTopics(ctx context.Context) (map[string]int, int, error) {
	if err := ctx.Err(); err != nil {
		return nil, 0, err
	}
	m := map[string]int{}
	var anyTopic int
	err := db.bolt.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketSubTopics).ForEach(func(k, v []byte) error {
			if string(k) == string(anyTopicKey) {
				anyTopic = int(btoi(v))
			} else {
				m[string(k)] = int(btoi(v))
			}
			return nil
		})
	})
	if err != nil {
		return nil, 0, fmt.Errorf("store: count topics: %w", err)
	}
	return m, anyTopic, nil
}

// CountZones returns how many confirmed readers of freq are in each time
// zone they chose; readers in the site's zone are not in it.
func (db *DB) CountZones(ctx context.Context, freq herald.Frequency) (map[string]int, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m := map[string]int{}
	prefix := zoneKey(freq, "")
	err := db.bolt.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketSubZones).Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			m[string(k[len(prefix):])] = int(btoi(v))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: count zones: %w", err)
	}
	return m, nil
}
