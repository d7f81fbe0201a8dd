package feed

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/text/encoding/unicode"
)

const goodItems = `<item><title>Good one</title><link>https://h.example.org/1</link><guid>g1</guid></item>` +
	`<item><title>Good two</title><link>https://h.example.org/2</link><guid>g2</guid></item>`

func rssDoc(inner string) []byte {
	return []byte(`<?xml version="1.0" encoding="UTF-8"?><rss version="2.0"><channel><title>H</title><link>https://h.example.org/</link>` + inner + `</channel></rss>`)
}

// nested is n open tags of name, closed again when closed is true.
func nested(name string, n int, closed bool) string {
	var b strings.Builder
	b.Grow(n * (2*len(name) + 5))
	for range n {
		b.WriteString("<" + name + ">")
	}
	if closed {
		for range n {
			b.WriteString("</" + name + ">")
		}
	}
	return b.String()
}

func utf16(t *testing.T, s string, order unicode.Endianness, bom unicode.BOMPolicy) []byte {
	t.Helper()
	b, err := unicode.UTF16(order, bom).NewEncoder().Bytes([]byte(s))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestHostileBodies: no body can crash the parser or cost the good items
// of a feed more than it must. Each case says what must come out: the
// good items (and which lines name what was left out), or an error that
// says why the whole body was refused.
func TestHostileBodies(t *testing.T) {
	lol := `<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">` +
		`<!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;"><!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>`
	xxe := `<!DOCTYPE r [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>`
	bigText := strings.Repeat("word ", 1_800_000) // 9 MB
	var cats strings.Builder
	for i := range 300_000 {
		fmt.Fprintf(&cats, "<category>c%d</category>", i)
	}
	plainRSS := `<?xml version="1.0"?><rss version="2.0"><channel><title>U</title><link>https://h.example.org/</link>` + goodItems + `</channel></rss>`

	cases := []struct {
		name string
		body []byte
		// want: the guids that must come out, in order; nil with wantErr.
		want    []string
		skipped string // a line of Skipped must hold this
		wantErr string // the error must hold this
	}{
		{"deep nesting, closed, in an item", rssDoc(goodItems + `<item><title>deep</title><guid>d</guid>` + nested("div", 200, true) + `</item>`),
			[]string{"g1", "g2"}, `item 3 ("deep"): nested deeper than 64`, ""},
		{"deep nesting, closed, namespaced", rssDoc(goodItems + `<item xmlns:x="urn:x"><guid>d</guid>` + nested("x:a", 200, true) + `</item>`),
			[]string{"g1", "g2"}, "item 3", ""},
		{"deep nesting, unclosed, 10 MB", rssDoc(goodItems + `<item><guid>d</guid>` + nested("a", 3_000_000, false)),
			nil, "", "XML nested deeper than 256"},
		{"deep nesting, unclosed, namespaced", rssDoc(goodItems + `<item xmlns:x="urn:x"><guid>d</guid>` + nested("x:a", 1_000_000, false)),
			nil, "", "XML nested deeper than 256"},
		{"deep nesting outside items", rssDoc(nested("a", 300, true) + goodItems),
			nil, "", "XML nested deeper than 256"},
		{"billion laughs", []byte(`<?xml version="1.0"?>` + lol + `<rss version="2.0"><channel><link>https://h.example.org/</link><item><title>&lol3;</title><guid>g1</guid></item></channel></rss>`),
			[]string{"g1"}, "", ""},
		{"XXE", []byte(`<?xml version="1.0"?>` + xxe + `<rss version="2.0"><channel><link>https://h.example.org/</link><item><title>&xxe;</title><guid>g1</guid></item></channel></rss>`),
			[]string{"g1"}, "", ""},
		{"a 9 MB title", rssDoc(`<item><title>` + bigText + `</title><guid>g1</guid></item>`), []string{"g1"}, "", ""},
		{"300,000 categories", rssDoc(goodItems + `<item><title>tags</title><guid>t</guid>` + cats.String() + `</item>`),
			[]string{"g1", "g2"}, `item 3 ("tags"): 300002 elements, more than the 10000`, ""},
		{"control characters", rssDoc(`<item><title>Bell` + "\x07\x00" + `ring</title><guid>g1</guid></item>` + goodItems[len(`<item><title>Good one</title><link>https://h.example.org/1</link><guid>g1</guid></item>`):]),
			[]string{"g1", "g2"}, "", ""},
		{"undeclared HTML entities", rssDoc(`<item><title>Caf&eacute;&nbsp;&hellip;</title><guid>g1</guid><description>&copy; &mdash;</description></item>`),
			[]string{"g1"}, "", ""},
		{"wrong charset declared", append([]byte(`<?xml version="1.0" encoding="ISO-8859-1"?>`), rssDoc(`<item><title>Café</title><guid>g1</guid></item>`)[38:]...),
			[]string{"g1"}, "", ""},
		{"UTF-16 with BOM", utf16(t, plainRSS, unicode.LittleEndian, unicode.UseBOM), []string{"g1", "g2"}, "", ""},
		{"UTF-16 big-endian with BOM", utf16(t, plainRSS, unicode.BigEndian, unicode.UseBOM), []string{"g1", "g2"}, "", ""},
		{"UTF-16 without BOM", utf16(t, plainRSS, unicode.LittleEndian, unicode.IgnoreBOM), []string{"g1", "g2"}, "", ""},
		{"UTF-16 big-endian without BOM", utf16(t, plainRSS, unicode.BigEndian, unicode.IgnoreBOM), []string{"g1", "g2"}, "", ""},
		{"an HTML page", []byte(`<!DOCTYPE html><html><head><title>Blog</title></head><body><p>Hello</p></body></html>`), nil, "", "no <rss>"},
		{"cut off after two items", rssDoc(goodItems)[:len(rssDoc(goodItems))-len("</channel></rss>")] /* unclosed */, []string{"g1", "g2"}, "", ""},
		{"cut off mid-item", append(rssDoc(goodItems)[:len(rssDoc(goodItems))-len("</channel></rss>")], `<item><title>hal`...),
			[]string{"g1", "g2"}, "the document breaks off", ""},
		{"items past the limit", rssDoc(strings.Repeat(`<item><title>x</title></item>`, maxItems+5)), nil, "more than 10000 items", ""},
		{"JSON nested deep", []byte(`{"version":"https://jsonfeed.org/version/1.1","items":[` + strings.Repeat("[", 100_000) + `]}`), nil, "", "JSON nested deeper than 256"},
		{"JSON item of the wrong shape", []byte(`{"version":"https://jsonfeed.org/version/1.1","items":[{"id":"g1","title":"ok"},7,{"id":"g2","tags":"a,b","title":"x"}]}`),
			[]string{"g1", "g2"}, "item 3 (\"x\"): tags is not a list of strings", ""},
	}
	p := NewParser()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			parsed, err := p.Parse(tc.body, "https://h.example.org/feed")
			if tc.wantErr != "" {
				if err == nil || !errors.Is(err, ErrNotFeed) || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one holding %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("err = %v", err)
			}
			var got []string
			for _, post := range parsed.Posts {
				got = append(got, post.GUID)
				if strings.Contains(post.Title, "root:") || strings.Contains(post.Title, "lollollol") || len(post.Title) > 4*maxTitleRunes {
					t.Errorf("title %.80q", post.Title)
				}
				if bad := unsafeHTML(post.Summary + post.Content); bad != "" {
					t.Errorf("unsafe HTML: %s", bad)
				}
			}
			if tc.want != nil && strings.Join(got, ",") != strings.Join(tc.want, ",") {
				t.Errorf("posts %v, want %v (skipped %q)", got, tc.want, parsed.Skipped)
			}
			if tc.skipped != "" && !strings.Contains(strings.Join(parsed.Skipped, "\n"), tc.skipped) {
				t.Errorf("skipped %q lacks %q", parsed.Skipped, tc.skipped)
			}
		})
	}
}

// TestHostileTextFields: text stays text through the hostile cases too.
func TestHostileTextFields(t *testing.T) {
	parsed, err := NewParser().Parse(rssDoc(`<item><title>Bell`+"\x07"+`ring &lt;b&gt;</title><guid>g1</guid><description>&lt;b&gt;open bold</description></item>`), "")
	if err != nil || len(parsed.Posts) != 1 {
		t.Fatalf("%v %v", parsed, err)
	}
	if p := parsed.Posts[0]; p.Title != "Bellring <b>" || p.Summary != "<b>open bold</b>" {
		t.Errorf("title %q summary %q", p.Title, p.Summary)
	}
}

// TestHostileFeedOverHTTP: served gzipped (a bomb), as text/html, or too
// big, a hostile feed gives a poll error that says why and leaves the
// stored posts as they were; a real feed served as text/html is read.
func TestHostileFeedOverHTTP(t *testing.T) {
	bomb := gzipBytes(t, rssDoc(goodItems+`<item><guid>d</guid>`+nested("a", 3_000_000, false)))
	tooBig := gzipBytes(t, bytes.Repeat([]byte("<a>"), 4_000_000))
	var body []byte
	var ctype, encoding string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", ctype)
		if encoding != "" {
			w.Header().Set("Content-Encoding", encoding)
		}
		w.Write(body)
	}))
	defer srv.Close()
	f := newPollFixture(t, time.Minute, FetcherOptions{}, srv.URL)

	body, ctype, encoding = rssDoc(goodItems), "text/html; charset=utf-8", ""
	if res := f.poll(t, srv.URL); res.Status != StatusOK || res.New != 2 {
		t.Fatalf("feed served as text/html: %+v", res)
	}
	if len(bomb) > 64<<10 {
		t.Fatalf("the bomb is %d bytes compressed", len(bomb))
	}
	for _, tc := range []struct {
		name, want string
		body       []byte
	}{
		{"gzip bomb of nested tags", "XML nested deeper than 256", bomb},
		{"gzip bomb over the cap", "response body too large", tooBig},
	} {
		body, ctype, encoding = tc.body, "application/rss+xml", "gzip"
		res, err := f.poller.PollOne(context.Background(), srv.URL)
		if err == nil || res.Status != StatusError || !strings.Contains(res.Error, tc.want) {
			t.Errorf("%s: %+v, %v", tc.name, res, err)
		}
	}
	if n := len(f.store.all()); n != 2 {
		t.Errorf("%d posts after the hostile polls, want the 2 good ones", n)
	}
}

// TestParseMemoryBound: no body, whatever its size and shape, makes a
// parse hold more than a few times the 10 MiB cap. The peak is sampled
// while the parse runs (a sample can only miss a peak, never invent one),
// with the collector set to run at 10% heap growth, so that what is
// sampled is close to what the parse holds live.
func TestParseMemoryBound(t *testing.T) {
	if testing.Short() {
		t.Skip("allocates a few hundred MB")
	}
	if raceEnabled {
		t.Skip("measured without the race detector: .ci/run runs it so")
	}
	for _, size := range []int{1 << 20, DefaultMaxBytes - 1024} {
		for _, tc := range memoryBodies(size) {
			t.Run(fmt.Sprintf("%s/%dKiB", tc.name, len(tc.body)>>10), func(t *testing.T) {
				p := NewParser()
				peak := peakHeap(func() { _, _ = p.Parse(tc.body, "https://h.example.org/feed") })
				t.Logf("%d bytes, peak heap %.1f MB, %.1f× the body", len(tc.body), float64(peak)/1e6, float64(peak)/float64(len(tc.body)))
				if limit := uint64(maxPeakRatio * DefaultMaxBytes); peak > limit {
					t.Errorf("peak heap %.1f MB, more than %d× the %d MiB cap", float64(peak)/1e6, maxPeakRatio, DefaultMaxBytes>>20)
				}
			})
		}
	}
}

// maxPeakRatio bounds the heap a parse holds at its peak against the
// body cap.
const maxPeakRatio = 6

// peakHeap runs fn and returns the most heap it was seen to hold above
// what was live before it.
func peakHeap(fn func()) uint64 {
	defer debug.SetGCPercent(debug.SetGCPercent(10))
	runtime.GC()
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(sample)
	base := sample[0].Value.Uint64()
	var peak atomic.Uint64
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
		for {
			metrics.Read(s)
			if v := s[0].Value.Uint64(); v > base && v-base > peak.Load() {
				peak.Store(v - base)
			}
			select {
			case <-done:
				return
			case <-time.After(200 * time.Microsecond):
			}
		}
	}()
	fn()
	close(done)
	<-stopped
	return peak.Load()
}

type memoryBody struct {
	name string
	body []byte
}

// memoryBodies are bodies of about size bytes, of the shapes that cost
// gofeed most.
func memoryBodies(size int) []memoryBody {
	pad := func(prefix, unit, suffix string) []byte {
		n := (size - len(prefix) - len(suffix)) / len(unit)
		return []byte(prefix + strings.Repeat(unit, n) + suffix)
	}
	return []memoryBody{
		{"nested, unclosed", pad(`<rss version="2.0"><channel><item><guid>x</guid>`, "<a>", "")},
		{"nested, namespaced, closed per item", pad(`<rss version="2.0" xmlns:x="urn:x"><channel>`, `<item><guid>x</guid>`+nested("x:a", 60, true)+`</item>`, `</channel></rss>`)},
		{"flat extension elements", pad(`<rss version="2.0" xmlns:x="urn:x"><channel>`, `<item><guid>x</guid><x:a>1</x:a><x:b>2</x:b><x:c>3</x:c></item>`, `</channel></rss>`)},
		{"categories", pad(`<rss version="2.0"><channel><item><guid>x</guid>`, `<category>c</category>`, `</item></channel></rss>`)},
		{"WordPress-like items", bigFeedOfSize(size)},
		{"one huge description", pad(`<rss version="2.0"><channel><item><guid>x</guid><description>`, "word &lt;b&gt; ", `</description></item></channel></rss>`)},
		{"JSON Feed items", pad(`{"version":"https://jsonfeed.org/version/1.1","items":[`, `{"id":"x","title":"t","content_html":"<p>p</p>"},`, `{"id":"y"}]}`)},
	}
}

// bigFeedOfSize is bigFeed grown to about size bytes.
func bigFeedOfSize(size int) []byte {
	one := len(bigFeed(1))
	two := len(bigFeed(2))
	return bigFeed((size - one) / (two - one))
}

// BenchmarkParseMemory reports, per body shape and size (1 MiB and the
// 10 MiB cap), the peak heap of a parse per byte of body (peak/body,
// sampled with the collector at GOGC=10, so close to the live peak) and
// all it allocates (alloc/body, garbage included):
//
//	go test ./feed -run '^$' -bench ParseMemory -benchtime 3x
func BenchmarkParseMemory(b *testing.B) {
	for _, size := range []int{1 << 20, DefaultMaxBytes - 1024} {
		for _, tc := range memoryBodies(size) {
			b.Run(fmt.Sprintf("%s/%dKiB", strings.ReplaceAll(tc.name, " ", "_"), len(tc.body)>>10), func(b *testing.B) {
				p := NewParser()
				b.SetBytes(int64(len(tc.body)))
				var peak uint64
				var ms runtime.MemStats
				runtime.ReadMemStats(&ms)
				start := ms.TotalAlloc
				for b.Loop() {
					peak = max(peak, peakHeap(func() { _, _ = p.Parse(tc.body, "https://h.example.org/feed") }))
				}
				runtime.ReadMemStats(&ms)
				b.ReportMetric(float64(peak)/float64(len(tc.body)), "peak/body")
				b.ReportMetric(float64(ms.TotalAlloc-start)/float64(b.N)/float64(len(tc.body)), "alloc/body")
			})
		}
	}
}
