package main

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"time"
)

// The topics figure: a daily run to o.readers readers of a blog that
// offers ten topics, each reader choosing none to three of them (a
// quarter each), over ten new posts each of one topic (7 in 10), of two
// (2 in 10) or of none offered (1 in 10) — against the same run without
// topics, in the same invocation. It says how many distinct digests the
// mix makes (each rendered once) and what choosing costs a run.

var benchTopics = []string{"Prisons", "Courts", "Policing", "Elections", "Health", "Schools", "Housing", "Climate", "Transport", "Culture"}

// postsPerRun is a busy news blog's day.
const postsPerRun = 10

func (b *bench) topicsFigure() error {
	o := b.o
	plain, err := b.topicsRun("topics-none", nil)
	if err != nil {
		return err
	}
	mixed, err := b.topicsRun("topics", benchTopics)
	if err != nil {
		return err
	}
	ratio := mixed.rate / plain.rate
	b.add(row{
		figure: fmt.Sprintf("Digest throughput with topics, %s readers choosing 0-3 of 10, %d posts a run", count(o.readers), postsPerRun),
		herald: fmt.Sprintf("%.0f emails/s (%s CPU/email), %d distinct digests rendered", mixed.rate, perOp(mixed.cpu, mixed.n), mixed.sets),
		limit:  fmt.Sprintf("%.0f emails/s (%s CPU/email): the same run, no topics offered", plain.rate, perOp(plain.cpu, plain.n)),
		ratio:  fmt.Sprintf("%.2f", ratio),
		goal:   "≥ 0.90",
		met:    yes(ratio >= 0.90),
	})
	return nil
}

// topicsRun imports the readers of one side and times its run.
func (b *bench) topicsRun(name string, topics []string) (*runStats, error) {
	o := b.o
	in, err := newInstance(name, b.bin, b.dir, instanceConfig{SMTPPort: b.sink.port, Connections: o.connections, Topics: topics})
	if err != nil {
		return nil, err
	}
	if _, err := in.start(); err != nil {
		return nil, err
	}
	defer in.kill()
	rng := rand.New(rand.NewPCG(13, 13))
	var choice func(int) string
	if len(topics) > 0 {
		choice = func(int) string {
			var c []string
			for range rng.IntN(4) {
				c = append(c, topics[rng.IntN(len(topics))])
			}
			return strings.Join(c, ";")
		}
	}
	b.log.Info("topics: importing readers", "side", name, "n", o.readers)
	if _, err := in.importCSVTopics("t", o.readers, choice); err != nil {
		return nil, err
	}
	seq := int(time.Now().UnixNano() % 1e8)
	addPosts := func() error {
		for range postsPerRun {
			seq++
			cats := []string{"Uncategorized"}
			if len(topics) > 0 {
				switch k := rng.IntN(10); {
				case k < 7:
					cats = []string{topics[rng.IntN(len(topics))]}
				case k < 9:
					cats = []string{topics[rng.IntN(len(topics))], topics[rng.IntN(len(topics))]}
				}
			}
			if err := in.addPostIn(seq, cats...); err != nil {
				return err
			}
		}
		return nil
	}
	// Two runs; the better counts, as for P1.
	best, err := b.digestRunWith(in, o.readers, addPosts, len(topics) == 0)
	if err != nil {
		return nil, err
	}
	second, err := b.digestRunWith(in, o.readers, addPosts, len(topics) == 0)
	if err != nil {
		return nil, err
	}
	b.notes = append(b.notes, fmt.Sprintf("Topics (%s): runs at %.0f and %.0f emails/s, %d and %d distinct digests.", name, best.rate, second.rate, best.sets, second.sets))
	if second.rate > best.rate {
		best = second
	}
	return best, nil
}
