package digest

import (
	"sync"
	"time"

	"github.com/herald-dev/herald"
)

// Reader selection: what one run owes one reader. Select is the whole
// rule, a pure function of the run's plan, the reader's record and the
// posts after the reader's cursor, so that it can be tested on its own
// (select_test.go); the run calls it for every reader it scans.

// Plan is what a run decides once for all its readers.
type Plan struct {
	Frequency herald.Frequency
	RunID     uint64
	// Created is when the run was created; its cut-off was taken then.
	Created time.Time
	// Now is the time of the selection: a reader paused at Now is not owed.
	Now time.Time
	// Topics are the offered topics (digest.topics); nil offers none.
	Topics *herald.OfferedTopics
	// Slots, for a local-time run, maps each time zone the run serves to
	// the local time of its slot there, written as if in UTC (see
	// wallClock); readers who chose no zone are in SiteZone. Nil for
	// every other run, which owes mail to every reader of its frequency.
	Slots    map[string]time.Time
	SiteZone string
}

// Selection is what a run owes one reader.
type Selection struct {
	// Owed is false when the run does not concern the reader: another
	// frequency, a zone whose slot this is not, a local time they were
	// served already, paused, or done with this run.
	Owed bool
	// Posts go in the reader's email, oldest first; none (with Owed):
	// no email, but the cursor still moves past the posts they did not want.
	Posts []*herald.Post
	// Cursor is the reader's cursor after this run: past every post the
	// run looked at for them, wanted or not.
	Cursor uint64
	// Slot is the reader's LastSlot after a local-time run (zero for others).
	Slot time.Time
	// EndPause: the run takes the reader past every post that arrived
	// during their pause.
	EndPause bool
}

// Moves reports whether the run has anything to record for the reader:
// an email, or a cursor to move past posts they did not want.
func (sel Selection) Moves(sub *herald.Subscriber) bool {
	return sel.Owed && (len(sel.Posts) > 0 || sel.Cursor > sub.Cursor)
}

// Candidates are the posts after one cursor up to a run's cut-off that
// are not silent, oldest first, each with the offered topics among its
// categories. Readers at the same cursor share them; the lists filtered
// for a choice of topics are kept, so readers with the same choice share
// one list too (and one rendered email, see execution.bodyFor).
type Candidates struct {
	Posts []*herald.Post
	Masks []uint64 // Masks[i]: the offered topics among Posts[i]'s categories

	mu     sync.Mutex
	byMask map[uint64][]*herald.Post
}

// NewCandidates computes the topic masks of posts.
func NewCandidates(posts []*herald.Post, topics *herald.OfferedTopics) *Candidates {
	c := &Candidates{Posts: posts, Masks: make([]uint64, len(posts))}
	for i, p := range posts {
		c.Masks[i] = topics.Mask(p.Categories)
	}
	return c
}

// forMask is the posts a reader who chose mask wants, without a pause.
func (c *Candidates) forMask(mask uint64) []*herald.Post {
	if mask == 0 {
		return c.Posts
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if ps, ok := c.byMask[mask]; ok {
		return ps
	}
	ps := c.filter(mask, time.Time{}, time.Time{})
	if c.byMask == nil {
		c.byMask = map[uint64][]*herald.Post{}
	}
	c.byMask[mask] = ps
	return ps
}

// filter keeps the posts a reader with mask wants that did not arrive in
// [from, until) (a zero from: no pause).
func (c *Candidates) filter(mask uint64, from, until time.Time) []*herald.Post {
	var out []*herald.Post
	for i, p := range c.Posts {
		if !from.IsZero() && !p.FoundAt.Before(from) && p.FoundAt.Before(until) {
			continue // arrived while the reader was paused
		}
		if herald.Wants(mask, c.Masks[i]) {
			out = append(out, p)
		}
	}
	return out
}

// Select is the rule: what the run of plan p owes reader sub, whose
// candidate posts (after sub.Cursor) are c.
//
//   - Only confirmed readers of the run's frequency it is not done with.
//   - A local-time run only readers whose zone's slot it is, and only if
//     they were not served that local time already (after a change of
//     zone, or a clock going back): one digest per local time.
//   - Nothing for a paused reader; after the pause, the posts that
//     arrived during it are left out.
//   - With topics, the posts that carry one of them, or none of the
//     offered topics (those go to everyone); the cursor moves past the
//     others all the same.
func Select(p *Plan, sub *herald.Subscriber, c *Candidates) Selection {
	if !p.concerns(sub) {
		return Selection{}
	}
	var slot time.Time
	if p.Slots != nil {
		zone := sub.Timezone
		if zone == "" {
			zone = p.SiteZone
		}
		label, ok := p.Slots[zone]
		if !ok || !sub.LastSlot.Before(label) {
			return Selection{}
		}
		slot = label
	}
	if sub.Paused(p.Now) {
		return Selection{}
	}
	sel := Selection{Owed: true, Cursor: sub.Cursor, Slot: slot}
	if len(c.Posts) == 0 {
		return sel
	}
	sel.Cursor = max(sub.Cursor, c.Posts[len(c.Posts)-1].ID)
	mask := p.Topics.Mask(sub.Topics)
	if sub.PausedAt.IsZero() || sub.PausedUntil == nil {
		sel.Posts = c.forMask(mask)
		return sel
	}
	sel.Posts = c.filter(mask, sub.PausedAt, *sub.PausedUntil)
	// Posts that arrived before the pause ended are all at or below the
	// cut-off of a run created after it.
	sel.EndPause = !p.Created.Before(*sub.PausedUntil)
	return sel
}

// concerns is the first, cheap part of Select (a run's scan asks it of
// every reader): a confirmed reader of the plan's frequency the run is not
// done with.
func (p *Plan) concerns(sub *herald.Subscriber) bool {
	return sub.Status == herald.StatusConfirmed && sub.Frequency == p.Frequency && sub.LastRunID < p.RunID
}

// wallClock is t's local date and time in loc, written as if in UTC: the
// same local time in two zones is the same value.
func wallClock(t time.Time, loc *time.Location) time.Time {
	l := t.In(loc)
	return time.Date(l.Year(), l.Month(), l.Day(), l.Hour(), l.Minute(), l.Second(), 0, time.UTC)
}
