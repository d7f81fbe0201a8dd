package digest_test

import (
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/herald-dev/herald"
	"github.com/herald-dev/herald/digest"
	"github.com/herald-dev/herald/internal/testmail"
)

// photoPost is a post with a lead image and pictures in its content, as
// a photo blog's feed gives it (sanitised, as the feed package stores it).
func (f *fx) photoPost(n int) *herald.Post {
	f.t.Helper()
	p := &herald.Post{
		GUID: "photo-" + strconv.Itoa(n), URL: "https://blog.example.org/photo/" + strconv.Itoa(n), Title: "Photo post " + strconv.Itoa(n),
		Summary:     "<p>Short summary of the walk.</p>",
		Content:     `<p>The whole walk, every step of it.</p><figure><img src="https://cdn.example.org/wide.jpg" width="2048" height="1024" alt="Wide"/></figure><p>Then <img src="https://cdn.example.org/small.png" width="120" height="80" alt="Small"/> and <img src="https://cdn.example.org/unsized.jpg" alt="Unsized"/>.</p>`,
		Image:       &herald.Image{URL: "https://cdn.example.org/lead.jpg", Width: 1200, Height: 800, Alt: "The lead"},
		PublishedAt: time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC), Feed: "https://blog.example.org/feed/", FoundAt: time.Now(),
	}
	if _, err := f.db.UpsertPost(f.ctx, p); err != nil {
		f.t.Fatal(err)
	}
	return p
}

var imgTag = regexp.MustCompile(`<img[^>]*>`)

// imgWidths returns each picture's src and width attribute.
func imgWidths(t *testing.T, html string) map[string]int {
	t.Helper()
	out := map[string]int{}
	for _, tag := range imgTag.FindAllString(html, -1) {
		src := regexp.MustCompile(`src="([^"]*)"`).FindStringSubmatch(tag)
		w := regexp.MustCompile(`width="(\d+)"`).FindStringSubmatch(tag)
		if src == nil || w == nil {
			t.Errorf("picture without src or width: %s", tag)
			continue
		}
		out[src[1]], _ = strconv.Atoi(w[1])
		if !strings.Contains(tag, "max-width") {
			t.Errorf("picture without a CSS max-width: %s", tag)
		}
	}
	return out
}

// TestContentSummaryAndFull: "summary" carries the summary and the lead
// image sized for the column; "full" carries the whole post with every
// picture's width attribute within the 600px card (Outlook reads those),
// heights scaled; both carry mail.reply_to.
func TestContentSummaryAndFull(t *testing.T) {
	for _, mode := range []digest.Content{digest.ContentSummary, digest.ContentFull} {
		t.Run(string(mode), func(t *testing.T) {
			f := setup(t, func(o *digest.Options) { o.Content = mode; o.ReplyTo = "Ada <ada@blog.example.org>" })
			f.reader("photo@example.org", herald.Daily)
			f.photoPost(1)
			f.runAndWait(f.dig, herald.Daily)
			p := testmail.MustParse(t, f.smtp.WaitFor(t, 1, 10*time.Second)[0].Data)
			if got := p.Header.Get("Reply-To"); got != `"Ada" <ada@blog.example.org>` && got != "Ada <ada@blog.example.org>" {
				t.Errorf("Reply-To = %q", got)
			}
			widths := imgWidths(t, p.HTML)
			if mode == digest.ContentSummary {
				if !strings.Contains(p.HTML, "Short summary of the walk.") || strings.Contains(p.HTML, "every step of it") {
					t.Errorf("summary mode carries the wrong text")
				}
				if widths["https://cdn.example.org/lead.jpg"] != 544 || !strings.Contains(p.HTML, `height="363"`) || !strings.Contains(p.HTML, `alt="The lead"`) {
					t.Errorf("lead image not sized for the column: %v", widths)
				}
				if !strings.Contains(p.Text, "Short summary of the walk.") {
					t.Errorf("text part: %s", p.Text)
				}
				return
			}
			if !strings.Contains(p.HTML, "every step of it") || !strings.Contains(p.Text, "every step of it") {
				t.Errorf("full mode lacks the content")
			}
			want := map[string]int{"https://cdn.example.org/lead.jpg": 544, "https://cdn.example.org/wide.jpg": 544, "https://cdn.example.org/small.png": 120, "https://cdn.example.org/unsized.jpg": 544}
			for src, w := range want {
				if widths[src] != w {
					t.Errorf("%s width %d, want %d (all: %v)", src, widths[src], w, widths)
				}
			}
			if !strings.Contains(p.HTML, `height="272"`) {
				t.Errorf("the wide picture's height was not scaled")
			}
		})
	}
}

// TestReadersGetTheirLanguage: two readers of one run at one cursor, one
// German and one French, each get the digest in their language (subject,
// body, dates), and the two are rendered apart.
func TestReadersGetTheirLanguage(t *testing.T) {
	f := setup(t, nil)
	for _, r := range []struct{ email, lang string }{{"de@example.org", "de"}, {"fr@example.org", "fr"}, {"en@example.org", ""}} {
		if _, err := f.subs.Subscribe(f.ctx, herald.SubscribeRequest{Email: r.email, Frequency: "daily", Language: r.lang, Confirmed: true, Source: "import"}); err != nil {
			t.Fatal(err)
		}
	}
	f.post(1, false)
	f.post(2, false)
	f.runAndWait(f.dig, herald.Daily)
	got := byRecipient(f.smtp.WaitFor(t, 3, 10*time.Second))
	for email, want := range map[string][]string{
		"de@example.org": {"Test Blog: 2 neue Beiträge", "20. November 2026", "Abmelden", `lang="de"`},
		"fr@example.org": {"Test Blog : 2 nouveaux articles", "20 novembre 2026", "Se désabonner", `lang="fr"`},
		"en@example.org": {"Test Blog: 2 new posts", "20 November 2026", "Unsubscribe", `lang="en"`},
	} {
		p := testmail.MustParse(t, got[email][0].Data)
		if p.Subject != want[0] {
			t.Errorf("%s: subject %q, want %q", email, p.Subject, want[0])
		}
		for _, w := range want[1:] {
			if !strings.Contains(p.HTML, w) {
				t.Errorf("%s: HTML lacks %q", email, w)
			}
		}
		if !strings.Contains(p.Text, want[1]) {
			t.Errorf("%s: text lacks the date %q", email, want[1])
		}
	}
}
