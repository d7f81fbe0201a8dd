package feed

import (
	"github.com/herald-dev/herald"

	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files of feed/testdata/corpus")

// goldenPost is what a corpus feed must yield for each post.
type goldenPost struct {
	GUID        string        `json:"guid"`
	URL         string        `json:"url"`
	Title       string        `json:"title"`
	Author      string        `json:"author"`
	Categories  []string      `json:"categories"`
	PublishedAt time.Time     `json:"published_at"`
	Summary     string        `json:"summary"`
	Content     string        `json:"content"`
	Image       *herald.Image `json:"image,omitempty"`
}

type golden struct {
	Posts   []goldenPost `json:"posts"`
	Skipped []string     `json:"skipped"`
	Hub     string       `json:"hub"`
	Self    string       `json:"self"`
}

// TestCorpus parses feeds shaped as WordPress (RSS with Yoast, Atom),
// Blogger, Ghost, Hugo, Jekyll, Substack, Medium, Tumblr, micro.blog
// (JSON Feed) and hand-rolled ones emit them, and checks every post each
// must yield against testdata/corpus/NAME.golden.json (go test -update
// rewrites them; read the diff before committing one).
func TestCorpus(t *testing.T) {
	files, err := filepath.Glob("testdata/corpus/*")
	if err != nil {
		t.Fatal(err)
	}
	p := NewParser()
	n := 0
	for _, file := range files {
		if strings.HasSuffix(file, ".golden.json") {
			continue
		}
		n++
		name := filepath.Base(file)
		t.Run(name, func(t *testing.T) {
			body, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			parsed, err := p.Parse(body, "https://feeds.example.net/"+name)
			if err != nil {
				t.Fatal(err)
			}
			got := golden{Skipped: parsed.Skipped, Hub: parsed.Hub, Self: parsed.Self}
			for _, post := range parsed.Posts {
				got.Posts = append(got.Posts, goldenPost{post.GUID, post.URL, post.Title, post.Author, post.Categories, post.PublishedAt, post.Summary, post.Content, post.Image})
			}
			var buf bytes.Buffer
			enc := json.NewEncoder(&buf)
			enc.SetEscapeHTML(false) // the goldens are read by people
			enc.SetIndent("", "  ")
			if err := enc.Encode(got); err != nil {
				t.Fatal(err)
			}
			gotJSON := buf.Bytes()
			path := strings.TrimSuffix(file, filepath.Ext(file)) + ".golden.json"
			if *update {
				if err := os.WriteFile(path, gotJSON, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test ./feed -run TestCorpus -update)", err)
			}
			if string(want) != string(gotJSON) {
				t.Errorf("%s yields other posts than %s:\n--- got\n%s", name, path, gotJSON)
			}
		})
	}
	if n < 10 {
		t.Fatalf("only %d corpus feeds", n)
	}
}
