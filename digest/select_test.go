package digest_test

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/herald-dev/herald"
	"github.com/herald-dev/herald/digest"
)

func offered(t testing.TB, names ...string) *herald.OfferedTopics {
	t.Helper()
	o, err := herald.NewOfferedTopics(names)
	if err != nil {
		t.Fatal(err)
	}
	return o
}

// ids lists the posts' ids.
func ids(ps []*herald.Post) []uint64 {
	out := []uint64{}
	for _, p := range ps {
		out = append(out, p.ID)
	}
	return out
}

func TestSelect(t *testing.T) {
	topics := offered(t, "Prisons", "Courts", "Policing")
	t0 := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	post := func(id uint64, found time.Time, cats ...string) *herald.Post {
		return &herald.Post{ID: id, FoundAt: found, Categories: cats}
	}
	posts := []*herald.Post{
		post(11, t0, "courts"),                 // offered, any case
		post(12, t0.Add(1*time.Hour), "Sport"), // none offered: for everyone
		post(13, t0.Add(2*time.Hour), "PRISONS ", "Courts"),
		post(14, t0.Add(3*time.Hour), "Policing"),
		post(15, t0.Add(4*time.Hour)), // no category at all
	}
	reader := func(mod func(s *herald.Subscriber)) *herald.Subscriber {
		s := &herald.Subscriber{ID: 1, Status: herald.StatusConfirmed, Frequency: herald.Daily, Cursor: 10, LastRunID: 3}
		if mod != nil {
			mod(s)
		}
		return s
	}
	at := func(d time.Duration) *time.Time { u := t0.Add(d); return &u }
	morning := time.Date(2025, 3, 2, 7, 0, 0, 0, time.UTC)
	plan := func(mod func(p *digest.Plan)) *digest.Plan {
		p := &digest.Plan{Frequency: herald.Daily, RunID: 5, Created: t0.Add(10 * time.Hour), Now: t0.Add(10 * time.Hour), Topics: topics}
		if mod != nil {
			mod(p)
		}
		return p
	}
	slotPlan := func(p *digest.Plan) {
		p.SiteZone = "UTC"
		p.Slots = map[string]time.Time{"Europe/London": morning, "UTC": morning}
	}
	for _, c := range []struct {
		name       string
		plan       *digest.Plan
		sub        *herald.Subscriber
		posts      []*herald.Post
		owed       bool
		want       []uint64
		cursor     uint64
		slot       time.Time
		endPause   bool
		moves      bool
		paused     bool
		wantDetail string
	}{
		{name: "every post", plan: plan(nil), sub: reader(nil), posts: posts, owed: true, want: []uint64{11, 12, 13, 14, 15}, cursor: 15, moves: true},
		{name: "pending", plan: plan(nil), sub: reader(func(s *herald.Subscriber) { s.Status = herald.StatusPending }), posts: posts},
		{name: "unsubscribed", plan: plan(nil), sub: reader(func(s *herald.Subscriber) { s.Status = herald.StatusUnsubscribed }), posts: posts},
		{name: "another frequency", plan: plan(nil), sub: reader(func(s *herald.Subscriber) { s.Frequency = herald.Weekly }), posts: posts},
		{name: "done with this run", plan: plan(nil), sub: reader(func(s *herald.Subscriber) { s.LastRunID = 5 }), posts: posts},
		{name: "nothing new", plan: plan(nil), sub: reader(nil), posts: nil, owed: true, cursor: 10},
		{name: "one topic, case-insensitive; posts of no offered topic go to everyone", plan: plan(nil),
			sub: reader(func(s *herald.Subscriber) { s.Topics = herald.TopicList{"Courts"} }), posts: posts,
			owed: true, want: []uint64{11, 12, 13, 15}, cursor: 15, moves: true},
		{name: "two topics", plan: plan(nil), sub: reader(func(s *herald.Subscriber) { s.Topics = herald.TopicList{"Prisons", "Policing"} }), posts: posts,
			owed: true, want: []uint64{12, 13, 14, 15}, cursor: 15, moves: true},
		{name: "no matching post: no email, the cursor moves past them", plan: plan(nil),
			sub: reader(func(s *herald.Subscriber) { s.Topics = herald.TopicList{"Policing"} }), posts: posts[:1],
			owed: true, want: []uint64{}, cursor: 11, moves: true},
		{name: "topics no longer offered count for nothing: every post", plan: plan(nil),
			sub: reader(func(s *herald.Subscriber) { s.Topics = herald.TopicList{"Elections"} }), posts: posts,
			owed: true, want: []uint64{11, 12, 13, 14, 15}, cursor: 15, moves: true},
		{name: "a site with no topics sends every post", plan: plan(func(p *digest.Plan) { p.Topics = nil }),
			sub: reader(func(s *herald.Subscriber) { s.Topics = herald.TopicList{"Courts"} }), posts: posts,
			owed: true, want: []uint64{11, 12, 13, 14, 15}, cursor: 15, moves: true},
		{name: "paused", plan: plan(nil), sub: reader(func(s *herald.Subscriber) { s.Pause(t0, t0.Add(30*time.Hour)) }), posts: posts, paused: true},
		{name: "after a pause: what arrived during it is left out, the cursor moves past it", plan: plan(nil),
			sub: reader(func(s *herald.Subscriber) { s.PausedAt, s.PausedUntil = t0.Add(time.Hour), at(3*time.Hour) }), posts: posts,
			owed: true, want: []uint64{11, 14, 15}, cursor: 15, moves: true, endPause: true},
		{name: "a run created before the pause ended does not end it", plan: plan(func(p *digest.Plan) { p.Created = t0.Add(2 * time.Hour) }),
			sub: reader(func(s *herald.Subscriber) { s.PausedAt, s.PausedUntil = t0.Add(time.Hour), at(3*time.Hour) }), posts: posts[:2],
			owed: true, want: []uint64{11}, cursor: 12, moves: true},
		{name: "after a pause, with topics", plan: plan(nil),
			sub: reader(func(s *herald.Subscriber) {
				s.PausedAt, s.PausedUntil, s.Topics = t0.Add(time.Hour), at(3*time.Hour), herald.TopicList{"Courts"}
			}), posts: posts, owed: true, want: []uint64{11, 15}, cursor: 15, moves: true, endPause: true},
		{name: "local time: the reader's zone's slot", plan: plan(slotPlan),
			sub: reader(func(s *herald.Subscriber) { s.Timezone = "Europe/London" }), posts: posts,
			owed: true, want: []uint64{11, 12, 13, 14, 15}, cursor: 15, slot: morning, moves: true},
		{name: "local time: no zone is the site's", plan: plan(slotPlan), sub: reader(nil), posts: posts,
			owed: true, want: []uint64{11, 12, 13, 14, 15}, cursor: 15, slot: morning, moves: true},
		{name: "local time: another zone's slot", plan: plan(slotPlan), sub: reader(func(s *herald.Subscriber) { s.Timezone = "Asia/Kolkata" }), posts: posts},
		{name: "local time: this local time was served already (a change of zone)", plan: plan(slotPlan),
			sub: reader(func(s *herald.Subscriber) { s.Timezone, s.LastSlot = "Europe/London", morning }), posts: posts},
		{name: "local time: served yesterday", plan: plan(slotPlan),
			sub: reader(func(s *herald.Subscriber) { s.Timezone, s.LastSlot = "Europe/London", morning.AddDate(0, 0, -1) }), posts: posts,
			owed: true, want: []uint64{11, 12, 13, 14, 15}, cursor: 15, slot: morning, moves: true},
		{name: "local time: nothing new still records nothing", plan: plan(slotPlan), sub: reader(nil), owed: true, cursor: 10, slot: morning},
	} {
		t.Run(c.name, func(t *testing.T) {
			if c.paused != c.sub.Paused(c.plan.Now) {
				t.Fatalf("Paused = %v", !c.paused)
			}
			sel := digest.Select(c.plan, c.sub, digest.NewCandidates(c.posts, c.plan.Topics))
			if sel.Owed != c.owed {
				t.Fatalf("Owed = %v, want %v", sel.Owed, c.owed)
			}
			if !c.owed {
				return
			}
			if c.want == nil {
				c.want = []uint64{}
			}
			if got := ids(sel.Posts); !slices.Equal(got, c.want) {
				t.Errorf("posts %v, want %v", got, c.want)
			}
			if sel.Cursor != c.cursor || !sel.Slot.Equal(c.slot) || sel.EndPause != c.endPause || sel.Moves(c.sub) != c.moves {
				t.Errorf("cursor %d slot %v end pause %v moves %v; want %d %v %v %v", sel.Cursor, sel.Slot, sel.EndPause, sel.Moves(c.sub), c.cursor, c.slot, c.endPause, c.moves)
			}
		})
	}
}

// A property of Select over many runs: on random posts and categories,
// and readers with random topics (0 to 3 of 10), pauses and resumes, a
// reader never gets a post they did not choose, never gets a post twice,
// never gets one that arrived while they were paused, and gets every
// other one they chose; each run moves every reader's cursor past all it
// looked at, and a run with nothing they chose sends them nothing.
func TestSelectProperty(t *testing.T) {
	names := []string{"Prisons", "Courts", "Policing", "Elections", "Health", "Schools", "Housing", "Climate", "Transport", "Culture"}
	topics := offered(t, names...)
	for seed := range uint64(40) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) { selectProperty(t, topics, names, seed) })
	}
}

func selectProperty(t *testing.T, topics *herald.OfferedTopics, names []string, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 13))
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	var posts []*herald.Post
	type reader struct {
		sub      *herald.Subscriber
		mask     uint64
		got      map[uint64]int
		windows  [][2]time.Time // pauses: posts found in them are not theirs
		paused   bool
		pauseEnd time.Time
	}
	var readers []*reader
	for i := range 30 {
		r := &reader{sub: &herald.Subscriber{ID: uint64(i + 1), Status: herald.StatusConfirmed, Frequency: herald.Daily}, got: map[uint64]int{}}
		for range rng.IntN(4) {
			r.sub.Topics = append(r.sub.Topics, names[rng.IntN(len(names))])
		}
		var err error
		if r.sub.Topics, err = topics.Parse(r.sub.Topics); err != nil {
			t.Fatal(err)
		}
		r.mask = topics.Mask(r.sub.Topics)
		readers = append(readers, r)
	}
	category := func() string {
		switch rng.IntN(4) {
		case 0:
			return "Not offered " + fmt.Sprint(rng.IntN(3))
		case 1:
			return strings.ToUpper(names[rng.IntN(len(names))])
		default:
			return names[rng.IntN(len(names))]
		}
	}
	var runID uint64
	for round := range 26 {
		// Posts arrive over some hours; readers pause and resume. The last
		// round waits for every pause to end, so that every reader's
		// cursor reaches the last post.
		if round == 25 {
			now = now.Add(60 * 24 * time.Hour)
		}
		for range rng.IntN(6) * min(1, 25-round) {
			now = now.Add(time.Duration(1+rng.IntN(120)) * time.Minute)
			p := &herald.Post{ID: uint64(len(posts) + 1), FoundAt: now}
			for range rng.IntN(3) {
				p.Categories = append(p.Categories, category())
			}
			posts = append(posts, p)
			for _, r := range readers {
				switch {
				case !r.paused && rng.IntN(40) == 0:
					r.paused, r.pauseEnd = true, now.Add(time.Duration(1+rng.IntN(3))*7*24*time.Hour/50)
					r.sub.Pause(now, r.pauseEnd)
					r.windows = append(r.windows, [2]time.Time{r.sub.PausedAt, r.pauseEnd})
				case r.paused && rng.IntN(10) == 0: // resume now
					r.sub.Resume(now)
					r.windows[len(r.windows)-1][1] = now
					r.paused = false
				case r.paused && !now.Before(r.pauseEnd):
					r.paused = false
				}
			}
		}
		now = now.Add(time.Minute)
		runID++
		plan := &digest.Plan{Frequency: herald.Daily, RunID: runID, Created: now, Now: now, Topics: topics}
		cutoff := uint64(len(posts))
		for _, r := range readers {
			var after []*herald.Post
			for _, p := range posts {
				if p.ID > r.sub.Cursor && p.ID <= cutoff {
					after = append(after, p)
				}
			}
			sel := digest.Select(plan, r.sub, digest.NewCandidates(after, topics))
			if r.sub.Paused(now) {
				if sel.Owed {
					t.Fatalf("run %d: reader %d is paused until %v, and is owed mail", runID, r.sub.ID, r.sub.PausedUntil)
				}
				continue
			}
			if !sel.Owed {
				t.Fatalf("run %d: reader %d is not owed", runID, r.sub.ID)
			}
			for _, p := range sel.Posts {
				if !herald.Wants(r.mask, topics.Mask(p.Categories)) {
					t.Fatalf("reader %d (topics %v) got post %d (categories %q)", r.sub.ID, r.sub.Topics, p.ID, p.Categories)
				}
				r.got[p.ID]++
			}
			// Recorded as the store records it.
			if sel.Moves(r.sub) {
				if len(after) > 0 && sel.Cursor != after[len(after)-1].ID {
					t.Fatalf("run %d: reader %d's cursor goes to %d, not past the last post it looked at (%d)", runID, r.sub.ID, sel.Cursor, after[len(after)-1].ID)
				}
				r.sub.Cursor, r.sub.LastRunID = sel.Cursor, runID
				if sel.EndPause {
					r.sub.PausedAt = time.Time{}
				}
			}
		}
	}
	// Every reader: each post they chose, arrived outside their pauses
	// and within the last run's reach, exactly once; nothing else.
	for _, r := range readers {
		for _, p := range posts {
			inPause := false
			for _, w := range r.windows {
				if !p.FoundAt.Before(w[0]) && p.FoundAt.Before(w[1]) {
					inPause = true
				}
			}
			want := 0
			if herald.Wants(r.mask, topics.Mask(p.Categories)) && !inPause && p.ID <= r.sub.Cursor {
				want = 1
			}
			if r.got[p.ID] != want {
				t.Errorf("reader %d (topics %v, pauses %v) got post %d (categories %q, found %v) %d times, want %d",
					r.sub.ID, r.sub.Topics, r.windows, p.ID, p.Categories, p.FoundAt, r.got[p.ID], want)
			}
		}
		if r.sub.Cursor != uint64(len(posts)) || !r.sub.PausedAt.IsZero() {
			t.Errorf("reader %d ends at cursor %d of %d posts, pause from %v", r.sub.ID, r.sub.Cursor, len(posts), r.sub.PausedAt)
		}
	}
}
