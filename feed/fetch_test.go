package feed

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestFetch(t *testing.T) {
	body := readFixture(t, "wordpress.xml")
	var got http.Header
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/old" {
			http.Redirect(w, r, "/feed/", http.StatusMovedPermanently)
			return
		}
		got = r.Header.Clone()
		w.Header().Set("Content-Type", "application/rss+xml; charset=UTF-8")
		w.Header().Set("ETag", `"v1"`)
		w.Header().Set("Last-Modified", "Tue, 14 May 2024 08:12:33 GMT")
		w.Write(body)
	}))
	defer srv.Close()

	f := NewFetcher(FetcherOptions{UserAgent: "herald/test (+http://localhost)"})
	res, err := f.Fetch(context.Background(), srv.URL+"/old", "", "")
	if err != nil {
		t.Fatal(err)
	}
	if res.NotModified || !bytes.Equal(res.Body, body) || res.ETag != `"v1"` ||
		res.LastModified != "Tue, 14 May 2024 08:12:33 GMT" || res.FinalURL != srv.URL+"/feed/" ||
		res.ContentType != "application/rss+xml; charset=UTF-8" {
		t.Errorf("result = %+v", res)
	}
	if got.Get("User-Agent") != "herald/test (+http://localhost)" || !strings.Contains(got.Get("Accept"), "application/rss+xml") {
		t.Errorf("request headers = %v", got)
	}
	if got.Get("If-None-Match") != "" || got.Get("If-Modified-Since") != "" {
		t.Errorf("unconditional fetch sent validators: %v", got)
	}
}

func TestFetchNotModified(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("If-None-Match") == `"v1"` && r.Header.Get("If-Modified-Since") == "Tue, 14 May 2024 08:12:33 GMT" {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		t.Errorf("validators missing: %v", r.Header)
		w.Write([]byte("<rss/>"))
	}))
	defer srv.Close()

	res, err := NewFetcher(FetcherOptions{}).Fetch(context.Background(), srv.URL, `"v1"`, "Tue, 14 May 2024 08:12:33 GMT")
	if err != nil {
		t.Fatal(err)
	}
	if !res.NotModified || len(res.Body) != 0 || res.ETag != `"v1"` || res.LastModified != "Tue, 14 May 2024 08:12:33 GMT" {
		t.Errorf("result = %+v", res)
	}
}

func TestFetchHTTPErrors(t *testing.T) {
	date := time.Now().Add(90 * time.Second).UTC().Format(http.TimeFormat)
	for _, tc := range []struct {
		name       string
		status     int
		retryAfter string
		wantAfter  time.Duration
	}{
		{"500", 500, "", 0},
		{"503 with date", 503, date, 90 * time.Second},
		{"429 with seconds", 429, "120", 120 * time.Second},
		{"404", 404, "", 0},
		{"410", 410, "", 0},
		{"401", 401, "", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if tc.retryAfter != "" {
					w.Header().Set("Retry-After", tc.retryAfter)
				}
				http.Error(w, "no", tc.status)
			}))
			defer srv.Close()
			_, err := NewFetcher(FetcherOptions{}).Fetch(context.Background(), srv.URL, "", "")
			var herr *HTTPError
			if !errors.As(err, &herr) {
				t.Fatalf("err = %v, want *HTTPError", err)
			}
			if herr.Status != tc.status {
				t.Errorf("status = %d", herr.Status)
			}
			// An HTTP date has a one-second resolution.
			if d := herr.RetryAfter - tc.wantAfter; d < -2*time.Second || d > 2*time.Second {
				t.Errorf("retry after = %s, want %s", herr.RetryAfter, tc.wantAfter)
			}
			if !strings.HasPrefix(err.Error(), "feed: GET "+srv.URL+": server answered ") {
				t.Errorf("message = %q", err)
			}
		})
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2024, 5, 14, 8, 0, 0, 0, time.UTC)
	for in, want := range map[string]time.Duration{
		"":                              0,
		"120":                           120 * time.Second,
		" 5 ":                           5 * time.Second,
		"0":                             0,
		"-3":                            0,
		"soon":                          0,
		"99999999999999999":             365 * 24 * time.Hour,
		"Tue, 14 May 2024 08:02:00 GMT": 2 * time.Minute,
		"Tue, 14 May 2024 07:00:00 GMT": 0, // in the past
	} {
		if got := parseRetryAfter(in, now); got != want {
			t.Errorf("parseRetryAfter(%q) = %s, want %s", in, got, want)
		}
	}
}

func TestFetchRedirects(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/loop/a", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/loop/b", http.StatusFound) })
	mux.HandleFunc("/loop/b", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/loop/a", http.StatusFound) })
	mux.HandleFunc("/self", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/self", http.StatusMovedPermanently)
	})
	n := 0
	mux.HandleFunc("/chain/", func(w http.ResponseWriter, r *http.Request) {
		n++
		http.Redirect(w, r, "/chain/"+strings.Repeat("x", n), http.StatusFound)
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()

	f := NewFetcher(FetcherOptions{MaxRedirects: 3})
	for path, want := range map[string]string{
		"/loop/a": "redirect loop at " + srv.URL + "/loop/a",
		"/self":   "redirect loop at " + srv.URL + "/self",
		"/chain/": "stopped after 3 redirects",
	} {
		_, err := f.Fetch(context.Background(), srv.URL+path, "", "")
		if err == nil || !strings.Contains(err.Error(), want) || !strings.HasPrefix(err.Error(), "feed: GET ") {
			t.Errorf("%s: err = %v, want %q", path, err, want)
		}
	}
}

func TestFetchTooLarge(t *testing.T) {
	const limit = DefaultMaxBytes
	big := bytes.Repeat([]byte("x"), limit+2<<20) // 2 MiB over the cap
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/chunked": // no Content-Length: the cap must hold while reading
			w.Header().Set("Content-Type", "application/rss+xml")
			for i := 0; i < len(big); i += 64 << 10 {
				w.Write(big[i:min(i+64<<10, len(big))])
				w.(http.Flusher).Flush()
			}
		case "/announced":
			w.Header().Set("Content-Length", "12582912")
			w.Write(big)
		case "/exact":
			w.Write(big[:limit])
		}
	}))
	defer srv.Close()

	f := NewFetcher(FetcherOptions{})
	for _, path := range []string{"/chunked", "/announced"} {
		_, err := f.Fetch(context.Background(), srv.URL+path, "", "")
		if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "10485760") {
			t.Errorf("%s: err = %v, want ErrTooLarge", path, err)
		}
	}
	res, err := f.Fetch(context.Background(), srv.URL+"/exact", "", "")
	if err != nil || len(res.Body) != limit {
		t.Errorf("a body of exactly the cap: err %v", err)
	}
}

func TestFetchTimeout(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow-body" {
			w.Write([]byte(`<?xml version="1.0"?><rss><channel>`))
			w.(http.Flusher).Flush()
		}
		select { // hang until the client gives up or the test ends
		case <-r.Context().Done():
		case <-release:
		}
	}))
	defer srv.Close()
	defer close(release)

	f := NewFetcher(FetcherOptions{Timeout: 200 * time.Millisecond})
	for _, path := range []string{"/hang", "/slow-body"} {
		start := time.Now()
		_, err := f.Fetch(context.Background(), srv.URL+path, "", "")
		if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "no complete answer within 200ms") {
			t.Errorf("%s: err = %v", path, err)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("%s: gave up after %s", path, d)
		}
	}
}

func TestFetchCharset(t *testing.T) {
	// ISO-8859-1 bytes, no XML declaration: only the header tells.
	body := []byte("<?xml version=\"1.0\"?><rss version=\"2.0\"><channel><link>https://latin.example.fr/</link>" +
		"<item><title>Caf\xe9 cr\xe8me</title><guid>c</guid></item></channel></rss>")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/xml; charset=ISO-8859-1")
		w.Write(body)
	}))
	defer srv.Close()

	res, err := NewFetcher(FetcherOptions{}).Fetch(context.Background(), srv.URL, "", "")
	if err != nil {
		t.Fatal(err)
	}
	posts, err := parsePosts(NewParser(), res.Body, res.FinalURL)
	if err != nil || len(posts) != 1 || posts[0].Title != "Café crème" {
		t.Fatalf("posts %+v, err %v", posts, err)
	}
}

func TestFetchGzip(t *testing.T) {
	// The transport asks for gzip and inflates it; the cap applies to the
	// inflated body, so a small bomb cannot get past it.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.Contains(r.Header.Get("Accept-Encoding"), "gzip") {
			t.Errorf("no gzip asked for")
		}
		w.Header().Set("Content-Encoding", "gzip")
		w.Write(gzipBytes(t, bytes.Repeat([]byte("a"), 2<<20)))
	}))
	defer srv.Close()
	_, err := NewFetcher(FetcherOptions{MaxBytes: 1 << 20}).Fetch(context.Background(), srv.URL, "", "")
	if !errors.Is(err, ErrTooLarge) {
		t.Errorf("err = %v", err)
	}
}

func TestFetchBadURL(t *testing.T) {
	f := NewFetcher(FetcherOptions{})
	for _, u := range []string{"", "ftp://example.org/feed", "file:///etc/passwd", "/relative", "http://"} {
		if _, err := f.Fetch(context.Background(), u, "", ""); err == nil || !strings.HasPrefix(err.Error(), "feed: ") {
			t.Errorf("%q: err = %v", u, err)
		}
	}
}

func TestFetchKeepsCallersClient(t *testing.T) {
	c := &http.Client{Timeout: time.Hour}
	NewFetcher(FetcherOptions{Client: c})
	if c.CheckRedirect != nil {
		t.Error("NewFetcher changed the caller's client")
	}
}
