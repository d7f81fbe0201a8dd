package feed

import (
	"golang.org/x/net/html"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"
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
