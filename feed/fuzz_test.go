package feed

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"golang.org/x/net/html"
	"golang.org/x/net/html/atom"
)

// FuzzParse feeds arbitrary documents to the parser: it must not panic,
// and whatever it returns must be keyed, titled and free of scripts.
func FuzzParse(f *testing.F) {
	files, err := filepath.Glob("testdata/*.*")
	if err != nil {
		f.Fatal(err)
	}
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(""))
	f.Add([]byte("{}"))
	f.Add([]byte(`{"version":"https://jsonfeed.org/version/1","items":[{"id":"1","content_html":"<script>x</script>"}]}`))
	f.Add([]byte(`<feed xmlns="http://www.w3.org/2005/Atom"><entry><id>1</id><content type="xhtml"><div xmlns="http://www.w3.org/1999/xhtml"><script>x</script></div></content></entry></feed>`))
	f.Add([]byte(`<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" xmlns="http://purl.org/rss/1.0/"><item><link>http://a/</link></item></rdf:RDF>`))

	p := NewParser()
	f.Fuzz(func(t *testing.T, body []byte) {
		parsed, err := p.Parse(body, "https://fuzz.example.org/feed/")
		if err != nil {
			if parsed != nil {
				t.Fatalf("posts and an error: %v", err)
			}
			if !strings.HasPrefix(err.Error(), "feed: ") {
				t.Fatalf("error without the package prefix: %v", err)
			}
			return
		}
		guids := map[string]bool{}
		for _, post := range parsed.Posts {
			if post.GUID == "" || post.Title == "" {
				t.Fatalf("post without guid or title: %+v", post)
			}
			if guids[post.GUID] {
				t.Fatalf("guid %q twice", post.GUID)
			}
			guids[post.GUID] = true
			for _, h := range []string{post.Summary, post.Content} {
				if bad := unsafeHTML(h); bad != "" {
					t.Fatalf("unsafe HTML survived (%s): %q", bad, h)
				}
			}
			if post.URL != "" && !strings.HasPrefix(post.URL, "http://") && !strings.HasPrefix(post.URL, "https://") {
				t.Fatalf("non-http url %q", post.URL)
			}
			if im := post.Image; im != nil && (!strings.HasPrefix(im.URL, "http://") && !strings.HasPrefix(im.URL, "https://") || im.Width < 0 || im.Height < 0) {
				t.Fatalf("bad lead image %+v", im)
			}
			if !utf8.ValidString(post.Title) || utf8.RuneCountInString(post.Title) > maxTitleRunes {
				t.Fatalf("bad title %q", post.Title)
			}
		}
	})
}

// unsafeHTML names the first thing in h a mail client could run or load
// to the reader's harm, or returns "".
func unsafeHTML(h string) string {
	if strings.Contains(strings.ToLower(h), "<script") {
		return "<script"
	}
	z := html.NewTokenizer(strings.NewReader(h))
	for {
		switch z.Next() {
		case html.ErrorToken:
			return ""
		case html.StartTagToken, html.SelfClosingTagToken:
			tok := z.Token()
			switch tok.Data {
			case "script", "style", "iframe", "object", "embed", "form", "svg", "math", "link", "meta", "base":
				return "<" + tok.Data + ">"
			}
			for _, a := range tok.Attr {
				v := strings.ToLower(strings.TrimSpace(a.Val))
				switch {
				case strings.HasPrefix(a.Key, "on"):
					return a.Key + "="
				case a.Key == "style":
					return "style="
				case strings.HasPrefix(v, "javascript:"), strings.HasPrefix(v, "vbscript:"), strings.HasPrefix(v, "data:"):
					return a.Key + "=" + v
				}
			}
		}
	}
}

// FuzzIngest runs arbitrary bytes through the whole ingest path, as a
// poll or a push does: parse, identity, silent rules, the bbolt store.
// Whatever the bytes, nothing panics; a refused body stores nothing; an
// accepted one stores exactly its posts, each with an identity, under its
// feed, with balanced, script-free HTML, and a second ingest of the same
// bytes creates nothing new.
func FuzzIngest(f *testing.F) {
	for _, dir := range []string{"testdata/*.*", "testdata/corpus/*"} {
		files, err := filepath.Glob(dir)
		if err != nil {
			f.Fatal(err)
		}
		for _, name := range files {
			if strings.HasSuffix(name, ".golden.json") {
				continue
			}
			b, err := os.ReadFile(name)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(b)
		}
	}
	f.Add([]byte(`<rss><channel><item><title>a</title><description>&lt;table&gt;&lt;tr&gt;&lt;td&gt;x</description></item><item><title>a</title></item></channel></rss>`))
	f.Add([]byte(`{"version":"https://jsonfeed.org/version/1","items":[{"id":1,"tags":"a"},{"title":"<i>"}]}`))

	st := newTestStore(f)
	p := NewPoller(st, NewFetcher(FetcherOptions{}), NewParser(), PollerOptions{})
	n := 0
	f.Fuzz(func(t *testing.T, body []byte) {
		n++
		url := fmt.Sprintf("https://fuzz.example.org/%d/feed", n)
		cfg := p.config(url)
		ctx := context.Background()
		for round := range 2 {
			state := st.state(url)
			res := &PollResult{Feed: url}
			parsed, err := p.parser.Parse(body, url)
			if err != nil {
				if n := countFeedPosts(t, st, url); n != 0 {
					t.Fatalf("a refused body left %d posts", n)
				}
				return
			}
			if err := p.ingest(ctx, res, &state, cfg, parsed, time.Now()); err != nil {
				t.Fatalf("ingest: %v", err)
			}
			if err := st.PutFeedState(ctx, &state); err != nil {
				t.Fatal(err)
			}
			if round == 1 && res.New != 0 {
				t.Fatalf("the same bytes again created %d posts", res.New)
			}
			if got := countFeedPosts(t, st, url); got != len(parsed.Posts) {
				t.Fatalf("stored %d posts for %d parsed", got, len(parsed.Posts))
			}
		}
	})
}

// countFeedPosts checks every stored post of feed and counts them.
func countFeedPosts(t *testing.T, st *testStore, feed string) int {
	t.Helper()
	seen := map[string]bool{}
	for _, post := range st.all() {
		if post.Feed != feed {
			continue
		}
		if post.GUID == "" || seen[post.GUID] {
			t.Fatalf("post without identity or twice: %+v", post)
		}
		seen[post.GUID] = true
		for _, h := range []string{post.Summary, post.Content} {
			if bad := unsafeHTML(h); bad != "" {
				t.Fatalf("unsafe HTML survived (%s): %q", bad, h)
			}
			if !balancedHTML(h) {
				t.Fatalf("unbalanced HTML stored: %q", h)
			}
		}
		if !post.Silent { // the first ingest of a feed is its backlog
			t.Fatalf("a backlog post is not silent: %+v", post)
		}
	}
	return len(seen)
}

// balancedHTML reports whether every element opened in h is closed in
// order (void elements aside).
func balancedHTML(h string) bool {
	z := html.NewTokenizer(strings.NewReader(h))
	var stack []string
	for {
		switch z.Next() {
		case html.ErrorToken:
			return len(stack) == 0
		case html.StartTagToken:
			name, _ := z.TagName()
			if !voidTags[atom.Lookup(name)] {
				stack = append(stack, string(name))
			}
		case html.EndTagToken:
			name, _ := z.TagName()
			if len(stack) == 0 || stack[len(stack)-1] != string(name) {
				return false
			}
			stack = stack[:len(stack)-1]
		}
	}
}
