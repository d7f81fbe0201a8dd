package main

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"time"

	"github.com/mmcdole/gofeed"
)

// blog serves a generated WordPress-shaped RSS feed of n items. Until it
// is armed it answers 503, so herald's poll at start records a failure
// and the timed POST /api/v1/feeds/poll is the feed's first good fetch.
type blog struct {
	srv   *httptest.Server
	body  []byte
	armed atomic.Bool
}

func newBlog(n int) *blog {
	b := &blog{body: rss(n)}
	b.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !b.armed.Load() {
			http.Error(w, "not yet", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/rss+xml; charset=UTF-8")
		_, _ = w.Write(b.body)
	}))
	return b
}

func (b *blog) url() string { return b.srv.URL + "/feed/" }

func rss(n int) []byte {
	var sb bytes.Buffer
	sb.WriteString(`<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0" xmlns:content="http://purl.org/rss/1.0/modules/content/" xmlns:dc="http://purl.org/dc/elements/1.1/">
<channel><title>Bench Blog</title><link>https://blog.example.org</link><description>a big feed</description>
`)
	base := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := n; i >= 1; i-- {
		fmt.Fprintf(&sb, `<item><title>Post number %d</title><link>https://blog.example.org/%d/post-%d/</link>
<dc:creator><![CDATA[Writer %d]]></dc:creator><category><![CDATA[news]]></category><category><![CDATA[bench]]></category>
<guid isPermaLink="false">https://blog.example.org/?p=%d</guid>
<pubDate>%s</pubDate>
<description><![CDATA[<p>Summary of post %d: a paragraph or two that says what it is about, <a href="/x/%d">with a link</a>.</p>]]></description>
<content:encoded><![CDATA[<p>Body of post %d.</p><p>More of it, <em>with markup</em>.</p>]]></content:encoded></item>
`, i, i, i, i%10, i, base.Add(time.Duration(i)*time.Hour).Format(time.RFC1123Z), i, i, i)
	}
	sb.WriteString("</channel></rss>\n")
	return sb.Bytes()
}

// parseOnly is the feed figure's limit: gofeed parsing the same bytes in
// this process, with nothing stored.
func parseOnly(body []byte) (time.Duration, int, error) {
	t0 := time.Now()
	f, err := gofeed.NewParser().Parse(bytes.NewReader(body))
	if err != nil {
		return 0, 0, fmt.Errorf("bench: parse feed: %w", err)
	}
	return time.Since(t0), len(f.Items), nil
}
