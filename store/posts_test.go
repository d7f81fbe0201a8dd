package store

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/herald-dev/herald"
	bolt "go.etcd.io/bbolt"
)

func TestUpsertPost(t *testing.T) {
	ctx := context.Background()
	clock := newClock()
	db := openTest(t, "", clock)
	found := clock.Now()
	const feedA, feedB = "https://a.example/feed", "https://b.example/feed"

	p1 := &herald.Post{Feed: feedA, GUID: "g1", URL: "https://a.example/1", Title: "One", Silent: true, SilentReason: herald.SilentBacklog, Categories: []string{"go"}}
	created, err := db.UpsertPost(ctx, p1)
	if err != nil || !created || p1.ID != 1 || !p1.FoundAt.Equal(found) {
		t.Fatalf("first = %v, %v, %+v", created, err, p1)
	}
	p2 := &herald.Post{Feed: feedA, URL: "https://a.example/2", Title: "Two"} // no guid: the url is its identity
	if created, err := db.UpsertPost(ctx, p2); err != nil || !created || p2.ID != 2 {
		t.Fatalf("second = %v, %v, %+v", created, err, p2)
	}
	clock.Add(time.Hour)

	tests := []struct {
		name    string
		p       herald.Post
		created bool
		id      uint64
	}{
		// Same feed and guid, new url and title: an update that keeps ID, FoundAt, Silent.
		{"same guid", herald.Post{Feed: feedA, GUID: "g1", URL: "https://a.example/1-renamed", Title: "One (edited)"}, false, 1},
		// Another guid sharing post 1's link (linked-list and sponsor posts): a post of its own.
		{"shared link", herald.Post{Feed: feedA, GUID: "g9", URL: "https://a.example/1-renamed", Title: "Sponsor"}, true, 3},
		// The same guid in another feed: a post of its own.
		{"same guid, other feed", herald.Post{Feed: feedB, GUID: "g1", URL: "https://b.example/1", Title: "B one"}, true, 4},
		// No guid: matched by url within the feed.
		{"by url", herald.Post{Feed: feedA, URL: "https://a.example/2", Title: "Two (edited)"}, false, 2},
		{"by url, other feed", herald.Post{Feed: feedB, URL: "https://a.example/2", Title: "Two in B"}, true, 5},
		// A guid appearing for a post stored by its link is another identity.
		{"guid added", herald.Post{Feed: feedA, GUID: "g2", URL: "https://a.example/2", Title: "Two with guid"}, true, 6},
	}
	for _, tt := range tests {
		p := tt.p
		created, err := db.UpsertPost(ctx, &p)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if created != tt.created || p.ID != tt.id {
			t.Fatalf("%s: created %v id %d, want %v %d", tt.name, created, p.ID, tt.created, tt.id)
		}
		got, err := db.PostByID(ctx, p.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.GUID != p.GUID || got.URL != p.URL || got.Title != p.Title || got.Feed != p.Feed {
			t.Fatalf("%s: stored %+v", tt.name, got)
		}
	}

	got, _ := db.PostByID(ctx, 1)
	if !got.Silent || got.SilentReason != herald.SilentBacklog || !got.FoundAt.Equal(found) || got.Title != "One (edited)" || got.Categories != nil {
		t.Fatalf("post 1 = %+v", got)
	}
	if n, _ := db.CountPosts(ctx); n != 6 {
		t.Fatalf("CountPosts = %d", n)
	}
	if id, _ := db.LastPostID(ctx); id != 6 {
		t.Fatalf("LastPostID = %d", id)
	}

	if _, err := db.UpsertPost(ctx, &herald.Post{Title: "anonymous"}); herald.ErrorCode(err) != herald.EINVALID {
		t.Fatalf("no guid, no url: %v", err)
	}
	if _, err := db.PostByID(ctx, 99); herald.ErrorCode(err) != herald.ENOTFOUND {
		t.Fatalf("missing post: %v", err)
	}
}

func TestReleasePost(t *testing.T) {
	ctx := context.Background()
	db := openTest(t, "", nil)
	held := &herald.Post{Feed: "https://a/feed", GUID: "old", Title: "Old", Silent: true, SilentReason: herald.SilentMaxAge + ": old"}
	fresh := &herald.Post{Feed: "https://a/feed", GUID: "new", Title: "New"}
	if _, err := db.UpsertPosts(ctx, []*herald.Post{held, fresh}); err != nil {
		t.Fatal(err)
	}
	p, err := db.ReleasePost(ctx, held.ID)
	if err != nil {
		t.Fatal(err)
	}
	if p.ID != 3 || p.Silent || p.SilentReason != "" || p.Title != "Old" {
		t.Fatalf("released = %+v", p)
	}
	if _, err := db.PostByID(ctx, held.ID); herald.ErrorCode(err) != herald.ENOTFOUND {
		t.Fatalf("old id still there: %v", err)
	}
	// Seen again in its feed, it is the released post, not a new one.
	again := &herald.Post{Feed: "https://a/feed", GUID: "old", Title: "Old, edited"}
	if created, err := db.UpsertPost(ctx, again); err != nil || created || again.ID != 3 || again.Silent {
		t.Fatalf("seen again = %v, %v, %+v", created, err, again)
	}
	if _, err := db.ReleasePost(ctx, fresh.ID); herald.ErrorCode(err) != herald.ECONFLICT {
		t.Fatalf("release of a mailed post: %v", err)
	}
	if _, err := db.ReleasePost(ctx, 99); herald.ErrorCode(err) != herald.ENOTFOUND {
		t.Fatalf("release of a missing post: %v", err)
	}
}

// TestMigrateSchema3 opens testdata/schema3.db, written by herald before
// post identity became (feed, guid): every post, feed state and reader
// cursor survives, and the posts are matched by their new identity.
func TestMigrateSchema3(t *testing.T) {
	ctx := context.Background()
	src, err := os.ReadFile("testdata/schema3.db")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "herald.db")
	if err := os.WriteFile(path, src, 0o600); err != nil {
		t.Fatal(err)
	}
	// A backup from before the change is a good herald database.
	if info, err := Verify(ctx, path); err != nil || info.Schema != 3 {
		t.Fatalf("Verify before the migration = %+v, %v", info, err)
	}
	db := openTest(t, path, nil)
	err = db.bolt.View(func(tx *bolt.Tx) error {
		if v := btoi(tx.Bucket(bucketMeta).Get(keySchemaVersion)); v != uint64(SchemaVersion()) {
			t.Errorf("schema version = %d, want %d", v, SchemaVersion())
		}
		if tx.Bucket(bucketPostGUIDv3) != nil || tx.Bucket(bucketPostURLv3) != nil {
			t.Error("the old guid and url indexes are still there")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	ps, _, err := db.ListPosts(ctx, 100, 0)
	if err != nil {
		t.Fatal(err)
	}
	var titles []string
	for _, p := range ps {
		titles = append(titles, fmt.Sprintf("%d %s silent=%v", p.ID, p.Title, p.Silent))
	}
	want := []string{"6 From the CMS silent=false", "5 B two silent=false", "4 A three (no guid) silent=false",
		"3 B one silent=true", "2 A two silent=true", "1 A one silent=true"}
	if !slices.Equal(titles, want) {
		t.Fatalf("posts after migration:\n%s\nwant\n%s", strings.Join(titles, "\n"), strings.Join(want, "\n"))
	}
	if id, _ := db.LastPostID(ctx); id != 6 {
		t.Fatalf("LastPostID = %d, want 6", id)
	}
	for email, cursor := range map[string]uint64{"ann@example.org": 5, "bob@example.org": 3, "cy@example.org": 6} {
		sub, err := db.SubscriberByEmail(ctx, email)
		if err != nil || sub.Cursor != cursor || sub.Status != herald.StatusConfirmed {
			t.Fatalf("%s = %+v, %v; want cursor %d", email, sub, err, cursor)
		}
	}
	st, _ := db.FeedState(ctx, "https://b.example/atom.xml")
	if !st.Initialized || st.ETag != `"e1"` || st.TotalPosts != 3 {
		t.Fatalf("feed state = %+v", st)
	}

	// And so is the migrated one, copied out the way a backup is.
	var backup bytes.Buffer
	if _, err := db.Backup(ctx, &backup); err != nil {
		t.Fatal(err)
	}
	copyPath := filepath.Join(t.TempDir(), "backup.db")
	if err := os.WriteFile(copyPath, backup.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	if info, err := Verify(ctx, copyPath); err != nil || info.Schema != SchemaVersion() {
		t.Fatalf("Verify after the migration = %+v, %v", info, err)
	}

	// Seen again, each stored post is updated in place, by (feed, guid).
	again := []*herald.Post{
		{Feed: "https://a.example/feed/", GUID: "https://a.example/?p=2", URL: "https://a.example/two-moved/", Title: "A two, edited"},
		{Feed: "https://a.example/feed/", GUID: "https://a.example/three/", URL: "https://a.example/three/", Title: "A three"},
		{Feed: "https://b.example/atom.xml", GUID: "tag:b.example,2026:1", URL: "https://b.example/1", Title: "B one"},
		{Feed: "api", GUID: "cms-42", URL: "https://a.example/from-cms/", Title: "From the CMS"},
	}
	if n, err := db.UpsertPosts(ctx, again); err != nil || n != 0 {
		t.Fatalf("stored posts seen again: %d new, %v", n, err)
	}
	if p, _ := db.PostByID(ctx, 2); p.Title != "A two, edited" || !p.Silent {
		t.Fatalf("post 2 = %+v", p)
	}
	// The same guid in the other feed is a post of its own.
	other := &herald.Post{Feed: "https://b.example/atom.xml", GUID: "https://a.example/?p=2", Title: "B copy"}
	if created, err := db.UpsertPost(ctx, other); err != nil || !created || other.ID != 7 {
		t.Fatalf("same guid in another feed = %v, %v, %+v", created, err, other)
	}
}

func TestUpsertPosts(t *testing.T) {
	ctx := context.Background()
	db := openTest(t, "", nil)
	batch := func(guids ...string) []*herald.Post {
		var ps []*herald.Post
		for _, g := range guids {
			ps = append(ps, &herald.Post{Feed: "https://blog/feed", GUID: g, URL: "https://blog/" + g})
		}
		return ps
	}
	n, err := db.UpsertPosts(ctx, batch("a", "b", "c", "a")) // a repeated within the batch
	if err != nil || n != 3 {
		t.Fatalf("first batch: %d, %v", n, err)
	}
	n, err = db.UpsertPosts(ctx, batch("c", "d"))
	if err != nil || n != 1 {
		t.Fatalf("second batch: %d, %v", n, err)
	}
	// One bad post: the whole batch is refused.
	ps := append(batch("e"), &herald.Post{Title: "no key"})
	if _, err := db.UpsertPosts(ctx, ps); herald.ErrorCode(err) != herald.EINVALID {
		t.Fatalf("bad batch: %v", err)
	}
	if c, _ := db.CountPosts(ctx); c != 4 {
		t.Fatalf("CountPosts = %d, want 4", c)
	}
	if id, _ := db.LastPostID(ctx); id != 4 {
		t.Fatalf("LastPostID = %d, want 4", id)
	}
}

func TestPostsPaging(t *testing.T) {
	ctx := context.Background()
	db := openTest(t, "", nil)
	if id, _ := db.LastPostID(ctx); id != 0 {
		t.Fatalf("LastPostID on empty = %d", id)
	}
	if ps, next, err := db.ListPosts(ctx, 10, 0); len(ps) != 0 || next != 0 || err != nil {
		t.Fatalf("ListPosts on empty = %v, %d, %v", ps, next, err)
	}
	const n = 25
	for i := range n {
		if _, err := db.UpsertPost(ctx, &herald.Post{GUID: fmt.Sprint(i), Content: fmt.Sprintf("<p>%d</p>", i)}); err != nil {
			t.Fatal(err)
		}
	}
	ids := func(ps []*herald.Post) []uint64 {
		var out []uint64
		for _, p := range ps {
			out = append(out, p.ID)
		}
		return out
	}
	seq := func(from, to uint64) []uint64 { // inclusive, either direction
		var out []uint64
		for i := from; ; {
			out = append(out, i)
			if i == to {
				return out
			}
			if from < to {
				i++
			} else {
				i--
			}
		}
	}

	between := []struct {
		after, upto uint64
		want        []uint64
	}{
		{0, 3, seq(1, 3)},
		{3, 3, nil},
		{5, 3, nil},
		{20, 100, seq(21, 25)},
		{0, 25, seq(1, 25)},
	}
	for _, tt := range between {
		ps, err := db.PostsBetween(ctx, tt.after, tt.upto)
		if err != nil {
			t.Fatal(err)
		}
		if got := ids(ps); !slices.Equal(got, tt.want) {
			t.Errorf("PostsBetween(%d, %d) = %v, want %v", tt.after, tt.upto, got, tt.want)
		}
	}
	if ps, _ := db.PostsBetween(ctx, 0, 1); ps[0].Content != "<p>0</p>" {
		t.Errorf("content = %q", ps[0].Content)
	}

	var pages [][]uint64
	for before := uint64(0); ; {
		ps, next, err := db.ListPosts(ctx, 10, before)
		if err != nil {
			t.Fatal(err)
		}
		pages = append(pages, ids(ps))
		if next == 0 {
			break
		}
		before = next
	}
	want := [][]uint64{seq(25, 16), seq(15, 6), seq(5, 1)}
	if fmt.Sprint(pages) != fmt.Sprint(want) {
		t.Errorf("pages = %v, want %v", pages, want)
	}
	if ps, next, _ := db.ListPosts(ctx, 5, 1000); !slices.Equal(ids(ps), seq(25, 21)) || next != 21 {
		t.Errorf("before past the end = %v, %d", ids(ps), next)
	}
	if ps, next, _ := db.ListPosts(ctx, 5, 6); !slices.Equal(ids(ps), seq(5, 1)) || next != 0 {
		t.Errorf("exactly the rest = %v, next %d", ids(ps), next)
	}
	if ps, _, _ := db.ListPosts(ctx, 0, 0); len(ps) != 20 {
		t.Errorf("default limit gave %d", len(ps))
	}
}

func TestFeedStates(t *testing.T) {
	ctx := context.Background()
	db := openTest(t, "", nil)
	st, err := db.FeedState(ctx, "https://blog/feed")
	if err != nil || st.URL != "https://blog/feed" || st.Initialized || st.ETag != "" {
		t.Fatalf("unknown = %+v, %v", st, err)
	}
	when := time.Date(2025, 2, 3, 4, 5, 6, 0, time.UTC)
	for _, u := range []string{"https://b/feed", "https://a/feed"} {
		if err := db.PutFeedState(ctx, &herald.FeedState{URL: u, ETag: `"x"`, Initialized: true, LastPoll: when, TotalPosts: 3}); err != nil {
			t.Fatal(err)
		}
	}
	st, _ = db.FeedState(ctx, "https://a/feed")
	if st.ETag != `"x"` || !st.Initialized || !st.LastPoll.Equal(when) || st.TotalPosts != 3 {
		t.Fatalf("stored = %+v", st)
	}
	all, err := db.FeedStates(ctx)
	if err != nil || len(all) != 2 || all[0].URL != "https://a/feed" {
		t.Fatalf("FeedStates = %v, %v", all, err)
	}
	if err := db.PutFeedState(ctx, &herald.FeedState{}); herald.ErrorCode(err) != herald.EINVALID {
		t.Fatalf("no url: %v", err)
	}
}
