package store

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/herald-dev/herald"
	bolt "go.etcd.io/bbolt"
)

// recount counts subscribers the slow way, for checking the kept counts.
func recount(t testing.TB, db *DB) map[herald.Status]map[herald.Frequency]int {
	t.Helper()
	m := map[herald.Status]map[herald.Frequency]int{}
	for _, st := range herald.Statuses {
		m[st] = map[herald.Frequency]int{}
		for _, f := range herald.Frequencies {
			m[st][f] = 0
		}
	}
	var after uint64
	for {
		page, err := db.ScanSubscribers(context.Background(), after, 500)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			return m
		}
		for _, s := range page {
			if m[s.Status] == nil {
				m[s.Status] = map[herald.Frequency]int{}
			}
			m[s.Status][s.Frequency]++
			after = s.ID
		}
	}
}

// checkCounts fails t when the kept counts differ from a full scan.
func checkCounts(t testing.TB, db *DB) {
	t.Helper()
	got, err := db.CountSubscribers(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if want := recount(t, db); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("CountSubscribers = %v\nfull scan         = %v", got, want)
	}
}

func setStatus(st herald.Status) herald.MutateFunc {
	return func(cur *herald.Subscriber) (*herald.Subscriber, []*herald.OutboxMessage, error) {
		cur.Status = st
		return cur, nil, nil
	}
}

func TestMutateSubscriberPaths(t *testing.T) {
	ctx := context.Background()
	clock := newClock()
	db := openTest(t, "", clock)

	// Unknown address, nil save: nothing is created, no id used up.
	var seen *herald.Subscriber
	s, err := db.MutateSubscriber(ctx, "ann@example.org", func(cur *herald.Subscriber) (*herald.Subscriber, []*herald.OutboxMessage, error) {
		seen = cur
		return nil, nil, nil
	})
	if s != nil || herald.ErrorCode(err) != herald.ENOTFOUND {
		t.Fatalf("nil save on new address = %v, %v; want nil, ENOTFOUND", s, err)
	}
	if seen.ID != 1 || seen.Email != "ann@example.org" || seen.Status != "" {
		t.Fatalf("fresh cur = %+v", seen)
	}
	if _, err := db.SubscriberByEmail(ctx, "ann@example.org"); herald.ErrorCode(err) != herald.ENOTFOUND {
		t.Fatalf("after nil save: %v", err)
	}

	// Create.
	s, err = db.MutateSubscriber(ctx, "ann@example.org", func(cur *herald.Subscriber) (*herald.Subscriber, []*herald.OutboxMessage, error) {
		cur.Status, cur.Frequency, cur.Name, cur.Nonce = herald.StatusPending, herald.Daily, "Ann", 9
		return cur, nil, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if s.ID != 1 || !s.CreatedAt.Equal(clock.Now()) || !s.UpdatedAt.Equal(clock.Now()) {
		t.Fatalf("created = %+v", s)
	}
	created := s.CreatedAt

	// Update: fn sees the stored record; CreatedAt stays, UpdatedAt moves.
	clock.Add(time.Hour)
	s, err = db.MutateSubscriber(ctx, "ann@example.org", func(cur *herald.Subscriber) (*herald.Subscriber, []*herald.OutboxMessage, error) {
		if cur.ID != 1 || cur.Name != "Ann" || cur.Nonce != 9 || cur.Status != herald.StatusPending {
			t.Errorf("update cur = %+v", cur)
		}
		cur.Frequency = herald.Weekly
		return cur, nil, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if s.Frequency != herald.Weekly || !s.CreatedAt.Equal(created) || !s.UpdatedAt.Equal(clock.Now()) {
		t.Fatalf("updated = %+v", s)
	}

	// No-op: fn scribbles on cur but returns nil; the stored record wins.
	s, err = db.MutateSubscriber(ctx, "ann@example.org", func(cur *herald.Subscriber) (*herald.Subscriber, []*herald.OutboxMessage, error) {
		cur.Name = "scribbled"
		return nil, nil, nil
	})
	if err != nil || s.Name != "Ann" || s.Frequency != herald.Weekly {
		t.Fatalf("no-op = %+v, %v", s, err)
	}

	// Error from fn: returned as it is, nothing saved.
	boom := herald.Errorf(herald.ERATELIMIT, "slow down")
	s, err = db.MutateSubscriber(ctx, "ann@example.org", func(cur *herald.Subscriber) (*herald.Subscriber, []*herald.OutboxMessage, error) {
		cur.Name = "changed"
		return cur, []*herald.OutboxMessage{{To: cur.Email}}, boom
	})
	if s != nil || !errors.Is(err, boom) {
		t.Fatalf("fn error = %v, %v", s, err)
	}
	if got, _ := db.SubscriberByID(ctx, 1); got.Name != "Ann" {
		t.Fatalf("fn error saved name %q", got.Name)
	}
	if n, _ := db.OutboxDepth(ctx); n != 0 {
		t.Fatalf("fn error queued %d messages", n)
	}

	// ID and address are the store's: fn cannot move a record.
	s, err = db.MutateSubscriber(ctx, "ann@example.org", func(cur *herald.Subscriber) (*herald.Subscriber, []*herald.OutboxMessage, error) {
		return &herald.Subscriber{ID: 99, Status: herald.StatusPending, Frequency: herald.Daily}, nil, nil
	})
	if err != nil || s.ID != 1 || s.Email != "ann@example.org" {
		t.Fatalf("replacement record = %+v, %v", s, err)
	}

	// An invalid status is refused.
	if _, err := db.MutateSubscriber(ctx, "bob@example.org", setStatus("")); err == nil {
		t.Fatal("saving an empty status succeeded")
	}
	if _, err := db.MutateSubscriber(ctx, "", setStatus(herald.StatusPending)); herald.ErrorCode(err) != herald.EINVALID {
		t.Fatalf("empty email: %v", err)
	}

	// Ids are dense: the refused and no-op calls used none up.
	if s := create(t, db, "bob@example.org", herald.StatusPending, herald.Daily); s.ID != 2 {
		t.Fatalf("second subscriber id = %d, want 2", s.ID)
	}
	checkCounts(t, db)
}

func TestMutateSubscriberByID(t *testing.T) {
	ctx := context.Background()
	db := openTest(t, "", nil)
	called := false
	_, err := db.MutateSubscriberByID(ctx, 5, func(cur *herald.Subscriber) (*herald.Subscriber, []*herald.OutboxMessage, error) {
		called = true
		return cur, nil, nil
	})
	if herald.ErrorCode(err) != herald.ENOTFOUND || called {
		t.Fatalf("unknown id: %v, fn called %v", err, called)
	}
	a := create(t, db, "a@example.org", herald.StatusPending, herald.Daily)
	s, err := db.MutateSubscriberByID(ctx, a.ID, func(cur *herald.Subscriber) (*herald.Subscriber, []*herald.OutboxMessage, error) {
		cur.Name = "A"
		return cur, nil, nil
	})
	if err != nil || s.Name != "A" {
		t.Fatalf("by id = %+v, %v", s, err)
	}
	if got, _ := db.SubscriberByEmail(ctx, "a@example.org"); got.Name != "A" {
		t.Fatalf("not saved: %+v", got)
	}
}

func TestMutateSubscriberChangesAddress(t *testing.T) {
	ctx := context.Background()
	db := openTest(t, "", nil)
	a := create(t, db, "a@example.org", herald.StatusPending, herald.Daily)
	create(t, db, "b@example.org", herald.StatusPending, herald.Daily)
	rename := func(to string) herald.MutateFunc {
		return func(cur *herald.Subscriber) (*herald.Subscriber, []*herald.OutboxMessage, error) {
			cur.Email = to
			return cur, nil, nil
		}
	}
	if _, err := db.MutateSubscriberByID(ctx, a.ID, rename("b@example.org")); herald.ErrorCode(err) != herald.ECONFLICT {
		t.Fatalf("rename onto a taken address: %v", err)
	}
	if _, err := db.MutateSubscriberByID(ctx, a.ID, rename("c@example.org")); err != nil {
		t.Fatal(err)
	}
	if _, err := db.SubscriberByEmail(ctx, "a@example.org"); herald.ErrorCode(err) != herald.ENOTFOUND {
		t.Fatalf("old address still found: %v", err)
	}
	if s, err := db.SubscriberByEmail(ctx, "c@example.org"); err != nil || s.ID != a.ID {
		t.Fatalf("new address: %+v, %v", s, err)
	}
}

func TestSubscriberGettersNotFound(t *testing.T) {
	ctx := context.Background()
	db := openTest(t, "", nil)
	if _, err := db.SubscriberByID(ctx, 1); herald.ErrorCode(err) != herald.ENOTFOUND {
		t.Errorf("by id: %v", err)
	}
	if _, err := db.SubscriberByEmail(ctx, "x@example.org"); herald.ErrorCode(err) != herald.ENOTFOUND {
		t.Errorf("by email: %v", err)
	}
	if err := db.DeleteSubscriber(ctx, "x@example.org"); herald.ErrorCode(err) != herald.ENOTFOUND {
		t.Errorf("delete: %v", err)
	}
}

// Many subscribes to one address at once make one record, and every
// mutation sees the one before it (none is lost).
func TestMutateSubscriberConcurrentSameEmail(t *testing.T) {
	ctx := context.Background()
	db := openTest(t, "", nil)
	const n = 50
	var wg sync.WaitGroup
	ids := make([]uint64, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := db.MutateSubscriber(ctx, "same@example.org", func(cur *herald.Subscriber) (*herald.Subscriber, []*herald.OutboxMessage, error) {
				if cur.Status == "" {
					cur.Status, cur.Frequency = herald.StatusPending, herald.Daily
				}
				cur.ConfirmsSent = append(cur.ConfirmsSent, time.Unix(int64(i), 0))
				return cur, []*herald.OutboxMessage{{Kind: herald.KindConfirm, To: cur.Email}}, nil
			})
			if err != nil {
				t.Error(err)
				return
			}
			ids[i] = s.ID
		}()
	}
	wg.Wait()
	page, err := db.ScanSubscribers(ctx, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	if len(page) != 1 {
		t.Fatalf("%d records for one address", len(page))
	}
	if got := len(page[0].ConfirmsSent); got != n {
		t.Errorf("ConfirmsSent has %d entries, want %d (lost updates)", got, n)
	}
	for i, id := range ids {
		if id != page[0].ID {
			t.Errorf("caller %d got id %d, want %d", i, id, page[0].ID)
		}
	}
	msgs, _ := db.DueMessages(ctx, time.Now().Add(time.Hour), 1000)
	if len(msgs) != n {
		t.Errorf("%d messages queued, want %d", len(msgs), n)
	}
	for _, m := range msgs {
		if m.SubscriberID != page[0].ID {
			t.Errorf("message %d for subscriber %d", m.ID, m.SubscriberID)
		}
	}
	checkCounts(t, db)
}

func TestMutateSubscriberConcurrentDistinctEmails(t *testing.T) {
	ctx := context.Background()
	db := openTest(t, "", nil)
	const n = 100
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := db.MutateSubscriber(ctx, fmt.Sprintf("r%d@example.org", i), func(cur *herald.Subscriber) (*herald.Subscriber, []*herald.OutboxMessage, error) {
				if i%10 == 0 {
					return nil, nil, herald.Errorf(herald.ERATELIMIT, "no") // errors mixed into batches
				}
				cur.Status, cur.Frequency = herald.StatusPending, herald.Instant
				return cur, nil, nil
			})
			if (i%10 == 0) != (herald.ErrorCode(err) == herald.ERATELIMIT) {
				t.Errorf("r%d: %v", i, err)
			}
		}()
	}
	wg.Wait()
	page, _ := db.ScanSubscribers(ctx, 0, 1000)
	if len(page) != n-n/10 {
		t.Fatalf("%d records, want %d", len(page), n-n/10)
	}
	for i, s := range page {
		if s.ID != uint64(i+1) {
			t.Fatalf("ids not dense: record %d has id %d", i, s.ID)
		}
		if got, err := db.SubscriberByEmail(ctx, s.Email); err != nil || got.ID != s.ID {
			t.Fatalf("index for %s: %v, %v", s.Email, got, err)
		}
	}
	checkCounts(t, db)
}

func TestConfirmSetsCursor(t *testing.T) {
	ctx := context.Background()
	db := openTest(t, "", nil)
	for i := range 3 {
		if _, err := db.UpsertPost(ctx, &herald.Post{GUID: fmt.Sprint(i)}); err != nil {
			t.Fatal(err)
		}
	}
	s := create(t, db, "a@example.org", herald.StatusPending, herald.Daily)
	if s.Cursor != 0 {
		t.Fatalf("pending cursor = %d", s.Cursor)
	}
	s, _ = db.MutateSubscriber(ctx, "a@example.org", setStatus(herald.StatusConfirmed))
	if s.Cursor != 3 {
		t.Fatalf("confirmed cursor = %d, want 3", s.Cursor)
	}
	if got, _ := db.SubscriberByID(ctx, s.ID); got.Cursor != 3 {
		t.Fatalf("stored cursor = %d, want 3", got.Cursor)
	}

	// Later saves of a confirmed reader leave the cursor where it is.
	db.UpsertPost(ctx, &herald.Post{GUID: "new"})
	s, _ = db.MutateSubscriber(ctx, "a@example.org", func(cur *herald.Subscriber) (*herald.Subscriber, []*herald.OutboxMessage, error) {
		cur.Frequency = herald.Weekly
		return cur, nil, nil
	})
	if s.Cursor != 3 {
		t.Fatalf("cursor moved on a plain update: %d", s.Cursor)
	}

	// Confirmed straight away (API, import): cursor at the newest post.
	b := create(t, db, "b@example.org", herald.StatusConfirmed, herald.Daily)
	if b.Cursor != 4 {
		t.Fatalf("created confirmed: cursor = %d, want 4", b.Cursor)
	}

	// Re-confirming after an unsubscribe starts from now again, and fn
	// cannot carry an old cursor across.
	db.MutateSubscriber(ctx, "a@example.org", setStatus(herald.StatusUnsubscribed))
	db.UpsertPost(ctx, &herald.Post{GUID: "newer"})
	s, _ = db.MutateSubscriber(ctx, "a@example.org", func(cur *herald.Subscriber) (*herald.Subscriber, []*herald.OutboxMessage, error) {
		cur.Status, cur.Cursor = herald.StatusConfirmed, 1
		return cur, nil, nil
	})
	if s.Cursor != 5 {
		t.Fatalf("re-confirmed cursor = %d, want 5", s.Cursor)
	}
}

func TestMutateSubscriberEnqueuesAtomically(t *testing.T) {
	ctx := context.Background()
	clock := newClock()
	db := openTest(t, "", clock)
	confirm := func(fail error) herald.MutateFunc {
		return func(cur *herald.Subscriber) (*herald.Subscriber, []*herald.OutboxMessage, error) {
			cur.Status, cur.Frequency = herald.StatusPending, herald.Daily
			return cur, []*herald.OutboxMessage{
				{Kind: herald.KindConfirm, To: cur.Email, MessageID: "<c@x>", Raw: []byte("Subject: hi\r\n\r\nbody")},
			}, fail
		}
	}
	if _, err := db.MutateSubscriber(ctx, "a@example.org", confirm(errors.New("refused"))); err == nil || err.Error() != "refused" {
		t.Fatalf("err = %v", err)
	}
	if n, _ := db.OutboxDepth(ctx); n != 0 {
		t.Fatalf("failed mutation queued %d messages", n)
	}
	if _, err := db.SubscriberByEmail(ctx, "a@example.org"); herald.ErrorCode(err) != herald.ENOTFOUND {
		t.Fatalf("failed mutation saved the reader: %v", err)
	}

	s, err := db.MutateSubscriber(ctx, "a@example.org", confirm(nil))
	if err != nil {
		t.Fatal(err)
	}
	msgs, _ := db.DueMessages(ctx, clock.Now(), 10)
	if len(msgs) != 1 {
		t.Fatalf("%d messages", len(msgs))
	}
	m := msgs[0]
	if m.ID == 0 || m.SubscriberID != s.ID || m.Kind != herald.KindConfirm || string(m.Raw) != "Subject: hi\r\n\r\nbody" ||
		!m.CreatedAt.Equal(clock.Now()) || !m.NextAttempt.Equal(clock.Now()) {
		t.Fatalf("message = %+v", m)
	}

	// A nil save may still queue mail for a known reader.
	_, err = db.MutateSubscriber(ctx, "a@example.org", func(cur *herald.Subscriber) (*herald.Subscriber, []*herald.OutboxMessage, error) {
		return nil, []*herald.OutboxMessage{{Kind: herald.KindWelcome, To: cur.Email}}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := db.OutboxDepth(ctx); n != 2 {
		t.Fatalf("depth = %d, want 2", n)
	}
}

func TestListSubscribers(t *testing.T) {
	ctx := context.Background()
	db := openTest(t, "", nil)
	const n = 250
	bulkInsert(t, db, n, func(i int) *herald.Subscriber {
		return &herald.Subscriber{
			Email:     fmt.Sprintf("user%03d@Example.org", i),
			Name:      []string{"Ann Smith", "Bob Jones", "Émile Zola"}[i%3],
			Status:    herald.Statuses[i%4],
			Frequency: herald.Frequencies[i%3],
		}
	})
	all := func(f herald.SubscriberFilter) []*herald.Subscriber {
		t.Helper()
		var out []*herald.Subscriber
		for pages := 0; ; pages++ {
			page, next, err := db.ListSubscribers(ctx, f)
			if err != nil {
				t.Fatal(err)
			}
			if f.Limit > 0 && len(page) > f.Limit {
				t.Fatalf("page of %d > limit %d", len(page), f.Limit)
			}
			out = append(out, page...)
			if next == 0 {
				return out
			}
			if next != page[len(page)-1].ID {
				t.Fatalf("next = %d, last on page = %d", next, page[len(page)-1].ID)
			}
			f.After = next
			if pages > n {
				t.Fatal("pagination does not end")
			}
		}
	}
	want := func(keep func(i int) bool) []string {
		var out []string
		for i := range n {
			if keep(i) {
				out = append(out, fmt.Sprintf("user%03d@Example.org", i))
			}
		}
		return out
	}
	emails := func(ss []*herald.Subscriber) []string {
		var out []string
		for _, s := range ss {
			out = append(out, s.Email)
		}
		return out
	}

	tests := []struct {
		name string
		f    herald.SubscriberFilter
		keep func(i int) bool
	}{
		{"all default limit", herald.SubscriberFilter{}, func(int) bool { return true }},
		{"all by 7", herald.SubscriberFilter{Limit: 7}, func(int) bool { return true }},
		{"status", herald.SubscriberFilter{Status: herald.StatusConfirmed, Limit: 10}, func(i int) bool { return i%4 == 1 }},
		{"email substring any case", herald.SubscriberFilter{Query: "USER1", Limit: 9}, func(i int) bool { return i >= 100 && i < 200 }},
		{"domain any case", herald.SubscriberFilter{Query: "example.ORG", Limit: 1000}, func(int) bool { return true }},
		{"name", herald.SubscriberFilter{Query: "smith", Limit: 13}, func(i int) bool { return i%3 == 0 }},
		{"name non-ascii", herald.SubscriberFilter{Query: "émile"}, func(i int) bool { return i%3 == 2 }},
		{"status and name", herald.SubscriberFilter{Status: herald.StatusPending, Query: "jones", Limit: 5}, func(i int) bool { return i%4 == 0 && i%3 == 1 }},
		{"no match", herald.SubscriberFilter{Query: "nobody"}, func(int) bool { return false }},
		{"after", herald.SubscriberFilter{After: 240, Limit: 3}, func(i int) bool { return i >= 240 }},
		{"newest first", herald.SubscriberFilter{Newest: true, Limit: 7}, func(int) bool { return true }},
		{"newest first, status and name", herald.SubscriberFilter{Newest: true, Status: herald.StatusPending, Query: "jones", Limit: 5}, func(i int) bool { return i%4 == 0 && i%3 == 1 }},
		{"newest first after", herald.SubscriberFilter{Newest: true, After: 11, Limit: 3}, func(i int) bool { return i < 10 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := want(tt.keep)
			if tt.f.Newest {
				slices.Reverse(want)
			}
			if got := emails(all(tt.f)); !slices.Equal(got, want) {
				t.Errorf("got %d: %v\nwant %d: %v", len(got), got, len(want), want)
			}
		})
	}

	page, next, _ := db.ListSubscribers(ctx, herald.SubscriberFilter{})
	if len(page) != 100 || next != 100 {
		t.Errorf("default page: %d records, next %d", len(page), next)
	}
	page, _, _ = db.ListSubscribers(ctx, herald.SubscriberFilter{Limit: 5000})
	if len(page) != n {
		t.Errorf("limit 5000 gave %d", len(page))
	}
	// Exactly a page full: no next.
	page, next, _ = db.ListSubscribers(ctx, herald.SubscriberFilter{After: 240, Limit: 10})
	if len(page) != 10 || next != 0 {
		t.Errorf("last full page: %d records, next %d", len(page), next)
	}
}

// Sparse matches across more records than one read transaction takes.
func TestListSubscribersAcrossChunks(t *testing.T) {
	ctx := context.Background()
	db := openTest(t, "", nil)
	const n = 3*listChunk + 17
	match := map[int]bool{0: true, listChunk - 1: true, listChunk: true, 2*listChunk + 5: true, n - 1: true}
	bulkInsert(t, db, n, func(i int) *herald.Subscriber {
		st := herald.StatusPending
		if match[i] {
			st = herald.StatusBounced
		}
		return &herald.Subscriber{Email: fmt.Sprintf("u%d@example.org", i), Status: st, Frequency: herald.Daily}
	})
	pages := func(f herald.SubscriberFilter) []uint64 {
		var got []uint64
		for {
			page, next, err := db.ListSubscribers(ctx, f)
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range page {
				got = append(got, s.ID-1)
			}
			if next == 0 {
				return got
			}
			f.After = next
		}
	}
	want := []uint64{0, listChunk - 1, listChunk, 2*listChunk + 5, n - 1}
	if got := pages(herald.SubscriberFilter{Status: herald.StatusBounced, Limit: 2}); !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	// Newest first, the same across the chunks.
	slices.Reverse(want)
	if got := pages(herald.SubscriberFilter{Status: herald.StatusBounced, Limit: 2, Newest: true}); !slices.Equal(got, want) {
		t.Fatalf("newest first: got %v, want %v", got, want)
	}
}

func TestScanSubscribers(t *testing.T) {
	ctx := context.Background()
	db := openTest(t, "", nil)
	bulkInsert(t, db, 25, func(i int) *herald.Subscriber {
		return &herald.Subscriber{Email: fmt.Sprintf("u%d@example.org", i), Status: herald.StatusConfirmed, Frequency: herald.Daily}
	})
	var ids []uint64
	for after := uint64(0); ; {
		page, err := db.ScanSubscribers(ctx, after, 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		if len(page) > 10 {
			t.Fatalf("page of %d", len(page))
		}
		for _, s := range page {
			ids = append(ids, s.ID)
		}
		after = page[len(page)-1].ID
	}
	if len(ids) != 25 || !slices.IsSorted(ids) || ids[0] != 1 {
		t.Fatalf("ids = %v", ids)
	}
	// The largest id a client can send must not wrap around to the start.
	if page, err := db.ScanSubscribers(ctx, math.MaxUint64, 10); len(page) != 0 || err != nil {
		t.Fatalf("after MaxUint64: %d, %v", len(page), err)
	}
	if page, next, err := db.ListSubscribers(ctx, herald.SubscriberFilter{After: math.MaxUint64}); len(page) != 0 || next != 0 || err != nil {
		t.Fatalf("list after MaxUint64: %d, %d, %v", len(page), next, err)
	}
	if ps, err := db.PostsBetween(ctx, math.MaxUint64-1, math.MaxUint64); len(ps) != 0 || err != nil {
		t.Fatalf("posts after MaxUint64-1: %d, %v", len(ps), err)
	}
}

func TestDeleteSubscriber(t *testing.T) {
	ctx := context.Background()
	db := openTest(t, "", nil)
	withMail := func(cur *herald.Subscriber) (*herald.Subscriber, []*herald.OutboxMessage, error) {
		cur.Status, cur.Frequency = herald.StatusPending, herald.Daily
		return cur, []*herald.OutboxMessage{{To: cur.Email}, {To: cur.Email}}, nil
	}
	a, _ := db.MutateSubscriber(ctx, "a@example.org", withMail)
	b, _ := db.MutateSubscriber(ctx, "b@example.org", withMail)
	// A message not tied to any reader survives.
	db.Enqueue(ctx, &herald.OutboxMessage{Kind: herald.KindTest, To: "admin@example.org"})

	if err := db.DeleteSubscriber(ctx, "a@example.org"); err != nil {
		t.Fatal(err)
	}
	if _, err := db.SubscriberByID(ctx, a.ID); herald.ErrorCode(err) != herald.ENOTFOUND {
		t.Errorf("record survives: %v", err)
	}
	if _, err := db.SubscriberByEmail(ctx, "a@example.org"); herald.ErrorCode(err) != herald.ENOTFOUND {
		t.Errorf("index survives: %v", err)
	}
	msgs, _ := db.DueMessages(ctx, time.Now().Add(time.Hour), 100)
	if len(msgs) != 3 {
		t.Fatalf("%d messages left, want 3", len(msgs))
	}
	for _, m := range msgs {
		if m.SubscriberID == a.ID {
			t.Errorf("message %d of the erased reader survives", m.ID)
		}
	}
	if _, err := db.SubscriberByID(ctx, b.ID); err != nil {
		t.Errorf("other reader: %v", err)
	}
	db.bolt.View(func(tx *bolt.Tx) error {
		if n := tx.Bucket(bucketOutboxDue).Stats().KeyN; n != 3 {
			t.Errorf("due index has %d entries, want 3", n)
		}
		if n := tx.Bucket(bucketOutboxSub).Stats().KeyN; n != 2 {
			t.Errorf("subscriber index has %d entries, want 2", n)
		}
		return nil
	})
	if err := db.DeleteSubscriber(ctx, "a@example.org"); herald.ErrorCode(err) != herald.ENOTFOUND {
		t.Errorf("second delete: %v", err)
	}
	// Coming back makes a new record.
	c := create(t, db, "a@example.org", herald.StatusPending, herald.Daily)
	if c.ID == a.ID {
		t.Errorf("re-subscribe reused id %d", c.ID)
	}
	checkCounts(t, db)
}

// The counts kept with every write agree with a full scan through
// creates, status and frequency changes, bounces, renames and deletes.
func TestCountSubscribersMaintained(t *testing.T) {
	ctx := context.Background()
	db := openTest(t, "", nil)
	rnd := rand.New(rand.NewPCG(1, 2))
	emails := make([]string, 30)
	for i := range emails {
		emails[i] = fmt.Sprintf("c%d@example.org", i)
	}
	runID := uint64(0)
	for step := range 300 {
		email := emails[rnd.IntN(len(emails))]
		switch op := rnd.IntN(10); {
		case op < 5:
			st := herald.Statuses[rnd.IntN(len(herald.Statuses))]
			f := herald.Frequencies[rnd.IntN(len(herald.Frequencies))]
			create(t, db, email, st, f)
		case op < 7:
			err := db.DeleteSubscriber(ctx, email)
			if err != nil && herald.ErrorCode(err) != herald.ENOTFOUND {
				t.Fatal(err)
			}
		case op < 8:
			_, err := db.MutateSubscriber(ctx, email, func(cur *herald.Subscriber) (*herald.Subscriber, []*herald.OutboxMessage, error) {
				if cur.Status == "" {
					return nil, nil, nil
				}
				cur.Email = fmt.Sprintf("renamed%d@example.org", step)
				return cur, nil, nil
			})
			if err != nil && herald.ErrorCode(err) != herald.ENOTFOUND {
				t.Fatal(err)
			}
		default:
			s, err := db.SubscriberByEmail(ctx, email)
			if err != nil {
				continue
			}
			r := &herald.Run{Frequency: herald.Daily}
			db.CreateRun(ctx, r)
			runID = r.ID
			if err := db.RecordDeliveries(ctx, 1, herald.Delivery{RunID: runID, SubscriberID: s.ID, Outcome: "failed", Permanent: true}); err != nil {
				t.Fatal(err)
			}
		}
		checkCounts(t, db)
	}
	// And after a reopen.
	path := db.Path()
	db.Close()
	checkCounts(t, openTest(t, path, nil))
}
