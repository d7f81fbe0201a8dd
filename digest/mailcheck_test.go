package digest_test

import (
	"os"
	"testing"
	"time"

	"github.com/herald-dev/herald"
	"github.com/herald-dev/herald/feed"
	"github.com/herald-dev/herald/internal/mailcheck"
)

// Bars of a default digest: mailpit's HTML check (caniemail's data), and
// SpamAssassin's score with its local rules. The README gives the figures
// beside other tools'.
const (
	minSupported   = 90.0
	maxUnsupported = 2.0
	maxSpamScore   = 0.5
)

// defaultDigest is the email a daily reader gets of a real WordPress
// feed's three posts (Yoast's lines and all), as herald sends it.
func defaultDigest(t *testing.T) []byte {
	t.Helper()
	f := setup(t, nil)
	f.reader("reader@example.net", herald.Daily)
	body, err := os.ReadFile("../feed/testdata/corpus/wordpress-yoast.rss")
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := feed.NewParser().Parse(body, "https://kte.example.com/feed/")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range parsed.Posts {
		p.Feed, p.FoundAt = "https://kte.example.com/feed/", time.Now()
		if _, err := f.db.UpsertPost(f.ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	f.runAndWait(f.dig, herald.Daily)
	return f.smtp.WaitFor(t, 1, 10*time.Second)[0].Data
}

// TestDigestHTMLCheck sends a default digest to mailpit and reads its
// HTML compatibility check: at least 90% supported, at most 2%
// unsupported across the clients caniemail knows.
func TestDigestHTMLCheck(t *testing.T) {
	raw := defaultDigest(t)
	mp := mailcheck.StartMailpit(t)
	c := mp.HTMLCheck(t, mp.Send(t, "digest@example.org", "reader@example.net", raw))
	t.Logf("mailpit html-check: %.2f%% supported, %.2f%% partial, %.2f%% unsupported (%d tests)",
		c.Total.Supported, c.Total.Partial, c.Total.Unsupported, c.Total.Tests)
	if c.Total.Supported < minSupported || c.Total.Unsupported > maxUnsupported {
		for _, w := range c.Warnings {
			t.Logf("  %s (%s): found %d, %.1f%% supported, %.1f%% unsupported", w.Title, w.Slug, w.Score.Found, w.Score.Supported, w.Score.Unsupported)
		}
		t.Errorf("html-check %.2f%% supported / %.2f%% unsupported; want ≥ %.0f%% / ≤ %.0f%%", c.Total.Supported, c.Total.Unsupported, minSupported, maxUnsupported)
	}
}

// TestDigestSpamScore: SpamAssassin (local rules, no network) scores a
// default digest at most 0.5.
func TestDigestSpamScore(t *testing.T) {
	score, report := mailcheck.SpamAssassin(t, defaultDigest(t))
	t.Logf("spamassassin score %.1f", score)
	if score > maxSpamScore {
		t.Errorf("spamassassin score %.1f > %.1f:\n%s", score, maxSpamScore, report)
	}
}
