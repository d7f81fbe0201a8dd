package store

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/herald-dev/herald"
)

// The sent log maps Message-IDs to recipients, so a bounce that quotes
// only the Message-ID finds its reader. One nested bucket per UTC day
// ("2025-03-03"): a lookup reads the newest few, and dropping a day past
// the keep period is one DeleteBucket, not a scan.
var bucketSentLog = []byte("sent_log")

// SentLogKeep is how many days of sent messages are kept.
const SentLogKeep = 30

// RecordSent adds ms to the sent log and drops days older than
// SentLogKeep, in one transaction.
func (db *DB) RecordSent(ctx context.Context, ms []herald.SentMessage) error {
	if len(ms) == 0 {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	err := db.bolt.Update(func(tx *bolt.Tx) error {
		root, err := tx.CreateBucketIfNotExists(bucketSentLog)
		if err != nil {
			return err
		}
		newest := ""
		for _, m := range ms {
			day := []byte(m.At.UTC().Format(time.DateOnly))
			b, err := root.CreateBucketIfNotExists(day)
			if err != nil {
				return err
			}
			if err := b.Put([]byte(sentKey(m.MessageID)), []byte(m.To)); err != nil {
				return err
			}
			if string(day) > newest {
				newest = string(day)
			}
		}
		t, _ := time.Parse(time.DateOnly, newest)
		cutoff := []byte(t.AddDate(0, 0, -SentLogKeep).Format(time.DateOnly))
		var old [][]byte
		c := root.Cursor()
		for k, _ := c.First(); k != nil && bytes.Compare(k, cutoff) < 0; k, _ = c.Next() {
			old = append(old, bytes.Clone(k))
		}
		for _, k := range old {
			if err := root.DeleteBucket(k); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store: record sent messages: %w", err)
	}
	return nil
}

// SentTo returns the recipient of the message with id, "" if unknown.
func (db *DB) SentTo(ctx context.Context, id string) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	key := []byte(sentKey(id))
	var to string
	err := db.bolt.View(func(tx *bolt.Tx) error {
		root := tx.Bucket(bucketSentLog)
		if root == nil {
			return nil
		}
		c := root.Cursor()
		for k, v := c.Last(); k != nil; k, v = c.Prev() {
			if v != nil {
				continue // not a day bucket
			}
			if got := root.Bucket(k).Get(key); got != nil {
				to = string(got)
				return nil
			}
		}
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("store: sent log: %w", err)
	}
	return to, nil
}

// sentKey is a Message-ID as "<id>", lower-cased: bounces quote it in
// either case, with or without the brackets.
func sentKey(id string) string {
	id = strings.ToLower(strings.TrimSpace(id))
	return "<" + strings.Trim(id, "<>") + ">"
}
