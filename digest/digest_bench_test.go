package digest_test

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/herald-dev/herald"
	"github.com/herald-dev/herald/digest"
	"github.com/herald-dev/herald/store"
	"github.com/herald-dev/herald/subscription"
	"github.com/herald-dev/herald/templates"
)

// discardTransport takes every message at once: what is left of a run's
// cost is herald's own.
type discardTransport struct{ n atomic.Int64 }

func (d *discardTransport) Send(context.Context, *herald.Message) error { d.n.Add(1); return nil }
func (d *discardTransport) Close() error                                { return nil }

func benchPosts(n int) []*herald.Post {
	ps := make([]*herald.Post, n)
	for i := range ps {
		ps[i] = &herald.Post{
			ID: uint64(i + 1), GUID: fmt.Sprintf("guid-%d", i), URL: fmt.Sprintf("https://blog.example.org/p/%d", i),
			Title: fmt.Sprintf("A post worth reading, number %d", i), Author: "Ann Author", Categories: []string{"go", "news"},
			Summary:     "<p>" + fmt.Sprintf("Summary of post %d, a paragraph or two of it. ", i) + "With <a href=\"https://example.org/\">a link</a> &amp; more.</p>",
			PublishedAt: time.Date(2026, 11, 20, 9, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Hour),
		}
	}
	return ps
}

// BenchmarkRender is the once-per-post-set work of a run: the templates
// and premailer's CSS inlining.
func BenchmarkRender(b *testing.B) {
	tpl, err := templates.Load(templates.Options{Site: templates.Site{Name: "Blog"}})
	if err != nil {
		b.Fatal(err)
	}
	r := digest.NewRenderer(tpl, "https://blog.example.org", 20, digest.ContentSummary)
	for _, n := range []int{1, 5, 25} {
		posts := benchPosts(n)
		b.Run(fmt.Sprintf("posts=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := r.Render(posts, herald.Daily, false, "en"); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkRun is a whole daily run to readers confirmed readers through
// a transport that takes every message at once: the scan, the re-read
// before composing, composing from the shared template, the signed links,
// and recording the deliveries. It reports the cost per reader.
func BenchmarkRun(b *testing.B) { benchRun(b, 3, nil) }

// benchTopics are ten topics, as a news blog might offer.
var benchTopics = []string{"Prisons", "Courts", "Policing", "Elections", "Health", "Schools", "Housing", "Climate", "Transport", "Culture"}

// BenchmarkRunTopics is BenchmarkRun with a day of 10 posts, each of one
// topic (7 in 10), two (2 in 10) or none offered (1 in 10), without and
// with readers choosing topics: each reader 0 to 3 of the 10 (a quarter
// each). It reports how many distinct digests the mix makes (post_sets),
// each rendered once, and the cost per reader beside the run without
// topics.
func BenchmarkRunTopics(b *testing.B) {
	b.Run("no-topics", func(b *testing.B) { benchRun(b, 10, nil) })
	b.Run("topics=10,choose=0-3", func(b *testing.B) { benchRun(b, 10, benchTopics) })
}

func benchRun(b *testing.B, postsPerRun int, topics []string) {
	const readers = 20000
	ctx := context.Background()
	db, err := store.Open(ctx, filepath.Join(b.TempDir(), "herald.db"), store.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	tpl, err := templates.Load(templates.Options{Site: templates.Site{Name: "Blog"}})
	if err != nil {
		b.Fatal(err)
	}
	offered, err := herald.NewOfferedTopics(topics)
	if err != nil {
		b.Fatal(err)
	}
	tokens, _ := subscription.NewTokens([]byte("0123456789abcdef0123456789abcdef"), nil)
	subs, err := subscription.New(db, tokens, tpl, subscription.Options{
		SiteName: "Bench Blog", SiteURL: "https://blog.example.org", BaseURL: "https://news.example.org",
		From: "Bench Blog <digest@example.org>", Topics: offered,
	})
	if err != nil {
		b.Fatal(err)
	}
	var wg sync.WaitGroup
	for w := range 64 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 13))
			for i := w; i < readers; i += 64 {
				var chosen []string
				if len(topics) > 0 {
					for range rng.IntN(4) {
						chosen = append(chosen, topics[rng.IntN(len(topics))])
					}
				}
				_, err := subs.Subscribe(ctx, herald.SubscribeRequest{Email: fmt.Sprintf("reader%d@example.org", i), Name: "A Reader",
					Frequency: "daily", Confirmed: true, Source: "import", Topics: chosen})
				if err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	tr := &discardTransport{}
	d, err := digest.New(db, tr, subs, tpl, digest.Options{
		SiteName: "Bench Blog", SiteURL: "https://blog.example.org", BaseURL: "https://news.example.org",
		From: "Bench Blog <digest@example.org>", MaxPosts: 20, Workers: 4, Logger: slog.New(slog.DiscardHandler), Topics: offered,
	})
	if err != nil {
		b.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	served := make(chan struct{})
	go func() { defer close(served); _ = d.Run(runCtx) }()
	defer func() { stop(); <-served }()
	rng := rand.New(rand.NewPCG(7, 7))
	b.ReportAllocs()
	n, sets, sent := 0, 0, 0
	var elapsed time.Duration
	for b.Loop() {
		b.StopTimer()
		n++
		for _, p := range benchPosts(postsPerRun) {
			p.ID, p.GUID, p.URL = 0, fmt.Sprintf("run-%d-%s", n, p.GUID), fmt.Sprintf("%s?run=%d", p.URL, n)
			if len(topics) > 0 {
				switch k := rng.IntN(10); {
				case k < 7:
					p.Categories = []string{topics[rng.IntN(len(topics))]}
				case k < 9:
					p.Categories = []string{topics[rng.IntN(len(topics))], topics[rng.IntN(len(topics))]}
				default:
					p.Categories = []string{"Uncategorized"}
				}
			}
			if _, err := db.UpsertPost(ctx, p); err != nil {
				b.Fatal(err)
			}
		}
		b.StartTimer()
		start := time.Now()
		run, err := d.StartRun(ctx, herald.Daily, herald.TriggerAPI, false)
		if err != nil {
			b.Fatal(err)
		}
		d.Wait()
		elapsed += time.Since(start)
		r, err := db.Run(ctx, run.ID)
		if err != nil || r.Sent+r.Skipped != readers || (len(topics) == 0 && r.Sent != readers) {
			b.Fatalf("run %d: %+v %v", run.ID, r, err)
		}
		sets += r.PostSets
		sent += r.Sent
	}
	b.ReportMetric(float64(elapsed.Nanoseconds())/float64(n*readers), "ns/reader")
	b.ReportMetric(float64(n*readers)/elapsed.Seconds(), "readers/s")
	b.ReportMetric(float64(sets)/float64(n), "post_sets")
	b.ReportMetric(float64(sent)/float64(n*readers), "mailed/reader")
}
