package feed

import (
	"strings"
	"testing"

	"github.com/herald-dev/herald"
)

func parseOne(t *testing.T, body string) *herald.Post {
	t.Helper()
	parsed, err := NewParser().Parse([]byte(body), "https://blog.example.org/feed/")
	if err != nil {
		t.Fatal(err)
	}
	if len(parsed.Posts) != 1 {
		t.Fatalf("want 1 post, got %d (skipped %v)", len(parsed.Posts), parsed.Skipped)
	}
	return parsed.Posts[0]
}

func rssItem(extra string) string {
	return `<?xml version="1.0"?><rss version="2.0" xmlns:media="http://search.yahoo.com/mrss/" xmlns:content="http://purl.org/rss/1.0/modules/content/"><channel><title>B</title><link>https://blog.example.org/</link>
<item><title>Post</title><link>https://blog.example.org/p/1</link><guid>p1</guid>` + extra + `</item></channel></rss>`
}

// TestLeadImage: media:content (in a media:group too) with its size, an
// image enclosure, the first <img> of the content (relative, resolved),
// and a thumbnail only when nothing better is there and it is big enough.
// Tracking pixels are never the lead image.
func TestLeadImage(t *testing.T) {
	for _, c := range []struct {
		name, item string
		want       *herald.Image
	}{
		{"media:content", `<media:content url="https://cdn.example.org/a.jpg" medium="image" width="1200" height="800"><media:description>A boat</media:description></media:content><content:encoded><![CDATA[<p><img src="/b.jpg"></p>]]></content:encoded>`,
			&herald.Image{URL: "https://cdn.example.org/a.jpg", Width: 1200, Height: 800, Alt: "A boat"}},
		{"media:group", `<media:group><media:content url="https://cdn.example.org/v.mp4" type="video/mp4"/><media:content url="https://cdn.example.org/g.png" type="image/png"/></media:group>`,
			&herald.Image{URL: "https://cdn.example.org/g.png"}},
		{"enclosure", `<enclosure url="https://cdn.example.org/e.jpg" length="1234" type="image/jpeg"/><description>Hi</description>`,
			&herald.Image{URL: "https://cdn.example.org/e.jpg"}},
		{"audio enclosure is no image", `<enclosure url="https://cdn.example.org/e.mp3" length="1234" type="audio/mpeg"/><description>Hi</description>`, nil},
		{"first img", `<content:encoded><![CDATA[<p>Text <img src="https://feeds.feedburner.com/~r/x/~4/abc" width="1" height="1"> and <img src="/up/c.jpg" width="640" height="480" alt="Cat"></p>]]></content:encoded>`,
			&herald.Image{URL: "https://blog.example.org/up/c.jpg", Width: 640, Height: 480, Alt: "Cat"}},
		{"small thumbnail", `<media:thumbnail url="https://cdn.example.org/t.jpg" width="72" height="72"/><description>Hi</description>`, nil},
		{"big thumbnail", `<media:thumbnail url="https://cdn.example.org/t.jpg" width="640"/><description>Hi</description>`,
			&herald.Image{URL: "https://cdn.example.org/t.jpg", Width: 640}},
		{"thumbnail after img", `<media:thumbnail url="https://cdn.example.org/t.jpg" width="640"/><description><![CDATA[<img src="https://cdn.example.org/in.jpg">]]></description>`,
			&herald.Image{URL: "https://cdn.example.org/in.jpg"}},
		{"javascript url", `<media:content url="javascript:alert(1)" medium="image"/><description>Hi</description>`, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := parseOne(t, rssItem(c.item))
			if (p.Image == nil) != (c.want == nil) || p.Image != nil && *p.Image != *c.want {
				t.Errorf("image = %+v, want %+v", p.Image, c.want)
			}
		})
	}
	t.Run("json feed", func(t *testing.T) {
		p := parseOne(t, `{"version":"https://jsonfeed.org/version/1.1","items":[{"id":"1","url":"https://blog.example.org/1","content_text":"x","attachments":[{"url":"https://cdn.example.org/att.png","mime_type":"image/png"}]}]}`)
		if p.Image == nil || p.Image.URL != "https://cdn.example.org/att.png" {
			t.Errorf("image = %+v", p.Image)
		}
		p = parseOne(t, `{"version":"https://jsonfeed.org/version/1.1","items":[{"id":"1","content_text":"x","image":"https://cdn.example.org/i.png","attachments":"bad"}]}`)
		if p.Image == nil || p.Image.URL != "https://cdn.example.org/i.png" {
			t.Errorf("image = %+v", p.Image)
		}
	})
}

// TestBoilerplate: what WordPress plugins (in four languages), Medium and
// FeedBurner add goes, from descriptions and contents alike; a paragraph
// that only mentions such words stays.
func TestBoilerplate(t *testing.T) {
	for _, c := range []struct{ name, html, keep, gone string }{
		{"yoast en", `<p>Real text.</p><p>The post <a href="https://b/1">Title</a> appeared first on <a href="https://b">Blog</a>.</p>`, "Real text.", "appeared first"},
		{"yoast de", `<p>Echter Text.</p><p>Der Beitrag <a href="https://b/1">Titel</a> erschien zuerst auf <a href="https://b">Blog</a>.</p>`, "Echter Text.", "erschien zuerst"},
		{"yoast fr", `<p>Vrai texte.</p><p>L’article <a href="https://b/1">Titre</a> est apparu en premier sur <a href="https://b">Blog</a>.</p>`, "Vrai texte.", "apparu en premier"},
		{"yoast es", `<p>Texto real.</p><p>La entrada <a href="https://b/1">Título</a> se publicó primero en <a href="https://b">Blog</a>.</p>`, "Texto real.", "publicó primero"},
		{"medium", `<p>Body.</p><hr><p><a href="https://m/1">Title</a> was originally published in <a href="https://m">Pub</a> on Medium, where people are continuing the conversation by highlighting and responding to this story.</p>`, "Body.", "originally published"},
		{"continue reading", `<p>Start of it &#8230; <a href="https://b/1" class="more-link">Continue reading<span class="screen-reader-text"> "Title"</span></a></p>`, "Start of it …", "Continue reading"},
		{"excerpt end", `<p>It was late. [&hellip;]</p>`, "It was late.</p>", "["},
		{"excerpt end mid-sentence", `<p>It was late and [&#8230;]</p>`, "It was late and…", "["},
		{"feedflare", `<p>Text</p><div class="feedflare"><a href="http://feeds.feedburner.com/~ff/x?a=1"><img src="http://feeds.feedburner.com/~ff/x?d=2" border="0"></a></div>`, "Text", "feedburner"},
		{"mention stays", `<p>The post office appeared first on the map of 1850, and it stayed.</p>`, "post office appeared first on the map", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := parseOne(t, rssItem("<description><![CDATA["+c.html+"]]></description><content:encoded><![CDATA["+c.html+"]]></content:encoded>"))
			for _, f := range []string{p.Summary, p.Content} {
				if !strings.Contains(f, c.keep) {
					t.Errorf("%q lost %q", f, c.keep)
				}
				if c.gone != "" && strings.Contains(f, c.gone) {
					t.Errorf("%q kept %q", f, c.gone)
				}
			}
		})
	}
	// A feed that stripped the markup still loses the line.
	p := parseOne(t, rssItem(`<description>Plain words here. The post Title appeared first on Blog.</description>`))
	if p.Summary != "Plain words here." {
		t.Errorf("summary = %q", p.Summary)
	}
}

// TestSummaryFromContent: a post without a description gets the start
// of its content, cut at the end of a sentence when one ends late
// enough, else after a word with an ellipsis; never mid-word.
func TestSummaryFromContent(t *testing.T) {
	long := strings.Repeat("The quick brown fox jumps over the lazy dog. ", 20)
	p := parseOne(t, rssItem(`<content:encoded><![CDATA[<p>`+long+`</p>]]></content:encoded>`))
	if !strings.HasSuffix(p.Summary, "lazy dog.</p>") || wordCount(htmlText(p.Summary)) > summaryWords {
		t.Errorf("summary not cut at a sentence: %q", p.Summary)
	}
	run := strings.Repeat("word ", 100)
	p = parseOne(t, rssItem(`<content:encoded><![CDATA[<p>`+run+`</p>]]></content:encoded>`))
	if !strings.HasSuffix(p.Summary, "word…</p>") {
		t.Errorf("summary not cut at a word: %q", p.Summary)
	}
	for _, c := range []struct{ in, want string }{
		{"Short text.", "Short text."},
		{"One. " + strings.Repeat("a ", 70), "One. " + strings.TrimSpace(strings.Repeat("a ", 59)) + "…"},
		{"e.g. this " + strings.Repeat("x ", 30) + "Dr. Who came. " + strings.Repeat("y ", 40), "e.g. this " + strings.Repeat("x ", 30) + "Dr. Who came."},
	} {
		if got := cutText(c.in, summaryWords, 1200); got != c.want {
			t.Errorf("cutText(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}
