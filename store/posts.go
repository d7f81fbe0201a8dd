package store

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/herald-dev/herald"
	bolt "go.etcd.io/bbolt"
)

// postRecord is how a post is stored: herald.Post hides Content and
// FoundAt from its JSON. Same fields in the same order as herald.Post, so
// they convert directly.
type postRecord struct {
	ID           uint64        `json:"id"`
	GUID         string        `json:"guid,omitempty"`
	URL          string        `json:"url,omitempty"`
	Title        string        `json:"title"`
	Author       string        `json:"author,omitempty"`
	Categories   []string      `json:"categories,omitempty"`
	PublishedAt  time.Time     `json:"published_at"`
	Summary      string        `json:"summary,omitempty"`
	Content      string        `json:"content,omitempty"`
	Image        *herald.Image `json:"image,omitempty"`
	Feed         string        `json:"feed,omitempty"`
	FoundAt      time.Time     `json:"found_at"`
	Silent       bool          `json:"silent,omitempty"`
	SilentReason string        `json:"silent_reason,omitempty"`
}

func loadPost(tx *bolt.Tx, id uint64) (*herald.Post, error) {
	var rec postRecord
	ok, err := getJSON(tx.Bucket(bucketPosts), itob(id), &rec)
	if err != nil || !ok {
		return nil, err
	}
	p := herald.Post(rec)
	return &p, nil
}

func decodePost(v []byte) (*herald.Post, error) {
	var rec postRecord
	if err := json.Unmarshal(v, &rec); err != nil {
		return nil, err
	}
	p := herald.Post(rec)
	return &p, nil
}

// postKey is a post's identity as an index key: feed, NUL, guid (the URL
// when there is no guid). Feed URLs hold no NUL, so keys cannot collide.
func postKey(feed, guid, url string) []byte {
	if guid == "" {
		guid = url
	}
	if guid == "" {
		return nil
	}
	k := make([]byte, 0, len(feed)+1+len(guid))
	k = append(k, feed...)
	k = append(k, 0)
	return append(k, guid...)
}

// upsertPostTx saves p, matching a stored post by its identity.
func upsertPostTx(tx *bolt.Tx, p *herald.Post, now time.Time) (bool, error) {
	if p == nil {
		return false, nil
	}
	key := postKey(p.Feed, p.GUID, p.URL)
	if key == nil {
		return false, herald.Errorf(herald.EINVALID, "post %q has neither a guid nor a url", p.Title)
	}
	posts, byKey := tx.Bucket(bucketPosts), tx.Bucket(bucketPostKey)
	id := btoi(byKey.Get(key))
	if id == 0 {
		var err error
		if id, err = posts.NextSequence(); err != nil {
			return false, err
		}
		p.ID = id
		if p.FoundAt.IsZero() {
			p.FoundAt = now
		}
		if !p.Silent {
			p.SilentReason = ""
		}
		rec := postRecord(*p)
		if err := putJSON(posts, itob(id), &rec); err != nil {
			return false, err
		}
		return true, byKey.Put(key, itob(id))
	}

	old, err := loadPost(tx, id)
	if err != nil {
		return false, err
	}
	if old == nil {
		return false, fmt.Errorf("post index points at missing post %d", id)
	}
	p.ID, p.FoundAt, p.Silent, p.SilentReason = id, old.FoundAt, old.Silent, old.SilentReason
	rec := postRecord(*p)
	return false, putJSON(posts, itob(id), &rec)
}

// UpsertPost saves p; see herald.PostStore. A post needs a GUID or a URL
// (EINVALID otherwise), or it could never be recognised again.
func (db *DB) UpsertPost(ctx context.Context, p *herald.Post) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	var created bool
	err := db.bolt.Update(func(tx *bolt.Tx) error {
		var err error
		created, err = upsertPostTx(tx, p, db.now())
		return err
	})
	if herald.ErrorCode(err) == herald.EINVALID {
		return false, err
	} else if err != nil {
		return false, fmt.Errorf("store: upsert post %q: %w", p.URL, err)
	}
	return created, nil
}

// UpsertPosts saves ps in one transaction and reports how many were new.
// When one fails, none is saved.
func (db *DB) UpsertPosts(ctx context.Context, ps []*herald.Post) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	var created int
	err := db.bolt.Update(func(tx *bolt.Tx) error {
		created = 0
		now := db.now()
		for _, p := range ps {
			c, err := upsertPostTx(tx, p, now)
			if err != nil {
				return err
			}
			if c {
				created++
			}
		}
		return nil
	})
	if herald.ErrorCode(err) == herald.EINVALID {
		return 0, err
	} else if err != nil {
		return 0, fmt.Errorf("store: upsert posts: %w", err)
	}
	return created, nil
}

// ReleasePost gives a silent post the next sequence number and makes it
// mailable; see herald.PostStore.
func (db *DB) ReleasePost(ctx context.Context, id uint64) (*herald.Post, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var out *herald.Post
	err := db.bolt.Update(func(tx *bolt.Tx) error {
		p, err := loadPost(tx, id)
		if err != nil {
			return err
		}
		if p == nil {
			return herald.Errorf(herald.ENOTFOUND, "post %d not found", id)
		}
		if !p.Silent {
			return herald.Errorf(herald.ECONFLICT, "post %d is mailed already; only a silent post can be sent by hand", id)
		}
		posts := tx.Bucket(bucketPosts)
		newID, err := posts.NextSequence()
		if err != nil {
			return err
		}
		if err := posts.Delete(itob(id)); err != nil {
			return err
		}
		p.ID, p.Silent, p.SilentReason = newID, false, ""
		rec := postRecord(*p)
		if err := putJSON(posts, itob(newID), &rec); err != nil {
			return err
		}
		out = p
		return tx.Bucket(bucketPostKey).Put(postKey(p.Feed, p.GUID, p.URL), itob(newID))
	})
	if code := herald.ErrorCode(err); code == herald.ENOTFOUND || code == herald.ECONFLICT {
		return nil, err
	} else if err != nil {
		return nil, fmt.Errorf("store: release post %d: %w", id, err)
	}
	return out, nil
}

// migratePostKeys (schema 3 → 4) indexes every stored post by its
// identity (feed, guid) and drops the old guid and url indexes, which
// folded posts of different feeds, or sharing a link, into one. Stored
// posts keep their ids, so readers' cursors keep their meaning.
func migratePostKeys(tx *bolt.Tx) error {
	byKey, err := tx.CreateBucketIfNotExists(bucketPostKey)
	if err != nil {
		return fmt.Errorf("create bucket %s: %w", bucketPostKey, err)
	}
	err = tx.Bucket(bucketPosts).ForEach(func(k, v []byte) error {
		p, err := decodePost(v)
		if err != nil {
			return fmt.Errorf("decode post %d: %w", btoi(k), err)
		}
		key := postKey(p.Feed, p.GUID, p.URL)
		if key == nil {
			return nil // cannot be matched again; it stays as it is
		}
		return byKey.Put(key, bytes.Clone(k))
	})
	if err != nil {
		return err
	}
	for _, name := range [][]byte{bucketPostGUIDv3, bucketPostURLv3} {
		if tx.Bucket(name) == nil {
			continue
		}
		if err := tx.DeleteBucket(name); err != nil {
			return fmt.Errorf("drop bucket %s: %w", name, err)
		}
	}
	return nil
}

// PostByID returns the post with id; ENOTFOUND if none.
func (db *DB) PostByID(ctx context.Context, id uint64) (*herald.Post, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var p *herald.Post
	err := db.bolt.View(func(tx *bolt.Tx) error {
		var err error
		p, err = loadPost(tx, id)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("store: post %d: %w", id, err)
	}
	if p == nil {
		return nil, herald.Errorf(herald.ENOTFOUND, "post %d not found", id)
	}
	return p, nil
}

// PostsBetween returns the posts with after < ID <= upto, oldest first.
func (db *DB) PostsBetween(ctx context.Context, after, upto uint64) ([]*herald.Post, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var out []*herald.Post
	if upto <= after {
		return out, nil
	}
	err := db.bolt.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketPosts).Cursor()
		for k, v := seekAfter(c, after); k != nil && btoi(k) <= upto; k, v = c.Next() {
			p, err := decodePost(v)
			if err != nil {
				return fmt.Errorf("decode post %d: %w", btoi(k), err)
			}
			out = append(out, p)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: posts between %d and %d: %w", after, upto, err)
	}
	return out, nil
}

// ListPosts returns up to limit posts (default 20, at most 1000) with
// ID < before (0: from the newest), newest first, and the before value
// for the next page (0: no more).
func (db *DB) ListPosts(ctx context.Context, limit int, before uint64) ([]*herald.Post, uint64, error) {
	if err := ctx.Err(); err != nil {
		return nil, 0, err
	}
	limit = clampLimit(limit, 20, 1000)
	var out []*herald.Post
	var more bool
	err := db.bolt.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketPosts).Cursor()
		for k, v := seekBefore(c, before); k != nil; k, v = c.Prev() {
			if len(out) == limit {
				more = true
				break
			}
			p, err := decodePost(v)
			if err != nil {
				return fmt.Errorf("decode post %d: %w", btoi(k), err)
			}
			out = append(out, p)
		}
		return nil
	})
	if err != nil {
		return nil, 0, fmt.Errorf("store: list posts: %w", err)
	}
	var next uint64
	if more {
		next = out[len(out)-1].ID
	}
	return out, next, nil
}

// seekAfter places c on the first key > after.
func seekAfter(c *bolt.Cursor, after uint64) ([]byte, []byte) {
	if after == math.MaxUint64 { // after+1 would wrap to the first key
		return nil, nil
	}
	return c.Seek(itob(after + 1))
}

// seekBefore places c on the last key < before (the last key when before
// is 0), for iterating newest first.
func seekBefore(c *bolt.Cursor, before uint64) ([]byte, []byte) {
	if before == 0 {
		return c.Last()
	}
	k, _ := c.Seek(itob(before))
	if k == nil {
		return c.Last()
	}
	return c.Prev()
}

// LastPostID returns the newest post's sequence number, 0 if none.
func (db *DB) LastPostID(ctx context.Context) (uint64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	var id uint64
	err := db.bolt.View(func(tx *bolt.Tx) error {
		id = tx.Bucket(bucketPosts).Sequence()
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("store: last post id: %w", err)
	}
	return id, nil
}

// CountPosts returns how many posts are stored.
func (db *DB) CountPosts(ctx context.Context) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	var n int
	err := db.bolt.View(func(tx *bolt.Tx) error {
		n = tx.Bucket(bucketPosts).Stats().KeyN
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("store: count posts: %w", err)
	}
	return n, nil
}

// FeedState returns what is known of the feed at url: a zero state with
// URL set when nothing is.
func (db *DB) FeedState(ctx context.Context, url string) (*herald.FeedState, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	st := &herald.FeedState{}
	err := db.bolt.View(func(tx *bolt.Tx) error {
		_, err := getJSON(tx.Bucket(bucketFeeds), []byte(url), st)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("store: feed state %s: %w", url, err)
	}
	st.URL = url
	return st, nil
}

// PutFeedState saves st under st.URL.
func (db *DB) PutFeedState(ctx context.Context, st *herald.FeedState) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if st.URL == "" {
		return herald.Errorf(herald.EINVALID, "feed state has no url")
	}
	err := db.bolt.Update(func(tx *bolt.Tx) error {
		return putJSON(tx.Bucket(bucketFeeds), []byte(st.URL), st)
	})
	if err != nil {
		return fmt.Errorf("store: put feed state %s: %w", st.URL, err)
	}
	return nil
}

// UpdateFeedState changes the state of the feed at url in one
// transaction; see herald.PostStore.
func (db *DB) UpdateFeedState(ctx context.Context, url string, fn func(st *herald.FeedState) error) (*herald.FeedState, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if url == "" {
		return nil, herald.Errorf(herald.EINVALID, "feed state has no url")
	}
	var out *herald.FeedState
	err := db.bolt.Update(func(tx *bolt.Tx) error {
		st := &herald.FeedState{}
		b := tx.Bucket(bucketFeeds)
		if _, err := getJSON(b, []byte(url), st); err != nil {
			return err
		}
		st.URL = url
		if err := fn(st); err != nil {
			return err
		}
		st.URL = url
		out = st
		return putJSON(b, []byte(url), st)
	})
	if err != nil {
		if _, ok := errors.AsType[*herald.Error](err); ok {
			return nil, err
		}
		return nil, fmt.Errorf("store: update feed state %s: %w", url, err)
	}
	return out, nil
}

// FeedStates returns every stored feed state, by URL.
func (db *DB) FeedStates(ctx context.Context) ([]*herald.FeedState, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var out []*herald.FeedState
	err := db.bolt.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketFeeds).ForEach(func(k, v []byte) error {
			st := &herald.FeedState{}
			if err := json.Unmarshal(v, st); err != nil {
				return fmt.Errorf("decode feed state %s: %w", k, err)
			}
			out = append(out, st)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("store: feed states: %w", err)
	}
	return out, nil
}
