package digest

import (
	"strings"
	"testing"
	"time"

	"github.com/herald-dev/herald"
	"github.com/herald-dev/herald/templates"
)

// TestRenderTextIsText: a title is plain text. "<i>" in it is shown as
// "<i>" in the subject and in both parts, and a post without a link has
// no "read" link and no empty href.
func TestRenderTextIsText(t *testing.T) {
	tpl, err := templates.Load(templates.Options{Site: templates.Site{Name: "Blog"}})
	if err != nil {
		t.Fatal(err)
	}
	r := NewRenderer(tpl, "https://blog.example.org", 20, ContentSummary)
	when := time.Date(2026, 11, 20, 9, 0, 0, 0, time.UTC)
	one := &herald.Post{ID: 1, Title: "Using <i> and <b>", Summary: "<p>Tags &lt;b&gt; as text</p>", PublishedAt: when}
	out, err := r.Render([]*herald.Post{one}, herald.Instant, false, "en")
	if err != nil {
		t.Fatal(err)
	}
	if out.Subject != "Using <i> and <b>" {
		t.Errorf("subject = %q", out.Subject)
	}
	html, text := out.For("https://x/u", "https://x/p")
	if !strings.Contains(html, "Using &lt;i&gt; and &lt;b&gt;") || strings.Contains(html, "<i>") || strings.Contains(html, "Using <i>") || strings.Contains(html, "and <b>") {
		t.Errorf("HTML part does not show the title as text:\n%s", html)
	}
	if !strings.Contains(text, "Using <i> and <b>") {
		t.Errorf("text part lacks the title as written:\n%s", text)
	}
	if strings.Contains(html, `href=""`) || strings.Contains(html, "Read the post") || strings.Contains(text, "Read it:") {
		t.Errorf("a post without a link got a read link:\nHTML %s\ntext %s", html, text)
	}

	two := &herald.Post{ID: 2, Title: "Linked", URL: "https://blog.example.org/linked", PublishedAt: when}
	out, err = r.Render([]*herald.Post{one, two}, herald.Daily, false, "en")
	if err != nil {
		t.Fatal(err)
	}
	html, text = out.For("https://x/u", "https://x/p")
	if strings.Count(html, `href="https://blog.example.org/linked"`) != 2 || strings.Count(text, "Read it:") != 1 || strings.Contains(html, `href=""`) {
		t.Errorf("links in a digest of a linked and an unlinked post:\nHTML %s\ntext %s", html, text)
	}
}
