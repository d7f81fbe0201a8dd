package digest

import (
	"slices"
	"sync"

	"github.com/herald-dev/herald"
)

// carried is what a run has carried so far (a dry run: would carry): the
// posts and the subject lines, for the run's page ("which posts went
// out, under which subject"). It is merged into the stored run with the
// recorder's writes, so a run resumed after a crash keeps what the first
// process sent.
type carried struct {
	mu       sync.Mutex
	posts    map[uint64]herald.RunPost
	subjects []string
	dirty    bool
}

// add notes posts that went (or would go) out under subject.
func (c *carried) add(posts []*herald.Post, subject string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.posts == nil {
		c.posts = map[uint64]herald.RunPost{}
	}
	for _, p := range posts {
		if _, ok := c.posts[p.ID]; !ok {
			c.posts[p.ID] = herald.RunPost{ID: p.ID, Title: p.Title, URL: p.URL}
			c.dirty = true
		}
	}
	if subject != "" && !slices.Contains(c.subjects, subject) && len(c.subjects) < herald.MaxRunSubjects {
		c.subjects = append(c.subjects, subject)
		c.dirty = true
	}
}

// take returns a copy of what changed since the last take (nil when
// nothing did): every post and subject, to merge into the stored run.
func (c *carried) take() (posts []herald.RunPost, subjects []string, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.dirty {
		return nil, nil, false
	}
	c.dirty = false
	for _, p := range c.posts {
		posts = append(posts, p)
	}
	return posts, slices.Clone(c.subjects), true
}

// mergeCarried adds posts and subjects to what r records: posts by id,
// oldest first, the newest MaxRunPosts kept; subjects in the order first
// seen, at most MaxRunSubjects.
func mergeCarried(r *herald.Run, posts []herald.RunPost, subjects []string) {
	for _, p := range posts {
		if !slices.ContainsFunc(r.Posts, func(q herald.RunPost) bool { return q.ID == p.ID }) {
			r.Posts = append(r.Posts, p)
		}
	}
	slices.SortFunc(r.Posts, func(a, b herald.RunPost) int {
		switch {
		case a.ID < b.ID:
			return -1
		case a.ID > b.ID:
			return 1
		}
		return 0
	})
	if len(r.Posts) > herald.MaxRunPosts {
		r.Posts = slices.Clone(r.Posts[len(r.Posts)-herald.MaxRunPosts:])
	}
	for _, s := range subjects {
		if len(r.Subjects) < herald.MaxRunSubjects && !slices.Contains(r.Subjects, s) {
			r.Subjects = append(r.Subjects, s)
		}
	}
}
