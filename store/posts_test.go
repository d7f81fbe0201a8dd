package store

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/herald-dev/herald"
)

func TestUpsertPost(t *testing.T) {
	ctx := context.Background()
	clock := newClock()
	db := openTest(t, "", clock)
	found := clock.Now()

	p1 := &herald.Post{GUID: "g1", URL: "https://blog/1", Title: "One", Silent: true, Categories: []string{"go"}}
	created, err := db.UpsertPost(ctx, p1)
	if err != nil || !created || p1.ID != 1 || !p1.FoundAt.Equal(found) {
		t.Fatalf("first = %v, %v, %+v", created, err, p1)
	}
	p2 := &herald.Post{URL: "https://blog/2", Title: "Two"} // no guid
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
		// Same guid, new url and title: an update that keeps ID, FoundAt, Silent.
		{"by guid", herald.Post{GUID: "g1", URL: "https://blog/1-renamed", Title: "One (edited)"}, false, 1},
		// The old url of post 1 is no longer indexed: with a fresh guid it is a new post.
		{"old url released", herald.Post{GUID: "g9", URL: "https://blog/1"}, true, 3},
		// Empty guid: matched by url.
		{"by url", herald.Post{URL: "https://blog/2", Title: "Two (edited)"}, false, 2},
		// A guid appears for a post stored without one: matched by url, guid indexed.
		{"guid added", herald.Post{GUID: "g2", URL: "https://blog/2", Title: "Two"}, false, 2},
		{"by new guid", herald.Post{GUID: "g2", URL: "https://blog/2-moved"}, false, 2},
		// The guid changes, the url stays: matched by url, guid re-indexed.
		{"guid changed", herald.Post{GUID: "g2b", URL: "https://blog/2-moved"}, false, 2},
		{"old guid released", herald.Post{GUID: "g2", URL: "https://blog/other"}, true, 4},
		{"new guid found", herald.Post{GUID: "g2b", URL: "https://elsewhere"}, false, 2},
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
		if got.GUID != p.GUID || got.URL != p.URL || got.Title != p.Title {
			t.Fatalf("%s: stored %+v", tt.name, got)
		}
	}

	got, _ := db.PostByID(ctx, 1)
	if !got.Silent || !got.FoundAt.Equal(found) || got.Title != "One (edited)" || got.Categories != nil {
		t.Fatalf("post 1 = %+v", got)
	}
	if n, _ := db.CountPosts(ctx); n != 4 {
		t.Fatalf("CountPosts = %d", n)
	}
	if id, _ := db.LastPostID(ctx); id != 4 {
		t.Fatalf("LastPostID = %d", id)
	}

	if _, err := db.UpsertPost(ctx, &herald.Post{Title: "anonymous"}); herald.ErrorCode(err) != herald.EINVALID {
		t.Fatalf("no guid, no url: %v", err)
	}
	if _, err := db.PostByID(ctx, 99); herald.ErrorCode(err) != herald.ENOTFOUND {
		t.Fatalf("missing post: %v", err)
	}
}

func TestUpsertPosts(t *testing.T) {
	ctx := context.Background()
	db := openTest(t, "", nil)
	batch := func(guids ...string) []*herald.Post {
		var ps []*herald.Post
		for _, g := range guids {
			ps = append(ps, &herald.Post{GUID: g, URL: "https://blog/" + g})
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
