// Package feed fetches blog feeds (conditional GET, size and time limits),
// parses RSS, Atom and JSON Feed into sanitised herald.Posts, and polls the
// configured feeds into a herald.PostStore.
package feed

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Fetcher defaults.
const (
	DefaultTimeout      = 30 * time.Second
	DefaultMaxBytes     = 10 << 20
	DefaultMaxRedirects = 5
)

// acceptHeader asks for feeds first; servers doing content negotiation
// otherwise hand out their HTML page.
const acceptHeader = "application/rss+xml, application/atom+xml, application/feed+json, " +
	"application/xml;q=0.9, text/xml;q=0.9, application/json;q=0.8, */*;q=0.5"

// FetcherOptions configures a Fetcher. Zero values take the defaults.
type FetcherOptions struct {
	// Client makes the requests; nil builds one. Its CheckRedirect is
	// replaced so that redirect limits hold whatever client is passed.
	Client       *http.Client
	Timeout      time.Duration // whole request, body included; default 30s
	MaxBytes     int64         // body cap after decompression; default 10 MiB
	UserAgent    string        // e.g. "herald/1.2.0 (+https://news.example.org)"
	MaxRedirects int           // default 5
}

// Fetcher downloads feeds. It is safe for concurrent use.
type Fetcher struct {
	client       *http.Client
	timeout      time.Duration
	maxBytes     int64
	userAgent    string
	maxRedirects int
}

// FetchResult is what one conditional GET brought back.
type FetchResult struct {
	// NotModified is true on a 304: Body is empty, the validators echo
	// the ones sent unless the server sent new ones.
	NotModified  bool
	Body         []byte // UTF-8, whatever the feed was encoded in
	ETag         string
	LastModified string
	FinalURL     string // after redirects; the base for relative links
	ContentType  string
	// Hub and Self are the WebSub links of the HTTP Link header ("" if
	// none); they take precedence over the document's own.
	Hub, Self string
}

// HTTPError is a response with a status herald cannot use: 4xx or 5xx.
// RetryAfter is the server's Retry-After, zero when absent.
type HTTPError struct {
	Status     int
	RetryAfter time.Duration
}

func (e *HTTPError) Error() string {
	msg := fmt.Sprintf("server answered %d %s", e.Status, http.StatusText(e.Status))
	if e.RetryAfter > 0 {
		msg += fmt.Sprintf(" (retry after %s)", e.RetryAfter)
	}
	return msg
}

// ErrTooLarge is wrapped by Fetch when a body is over the cap.
var ErrTooLarge = errors.New("feed: response body too large")

// NewFetcher returns a Fetcher with opts, defaults filled in.
func NewFetcher(opts FetcherOptions) *Fetcher {
	f := &Fetcher{
		timeout:      opts.Timeout,
		maxBytes:     opts.MaxBytes,
		userAgent:    opts.UserAgent,
		maxRedirects: opts.MaxRedirects,
	}
	if f.timeout <= 0 {
		f.timeout = DefaultTimeout
	}
	if f.maxBytes <= 0 {
		f.maxBytes = DefaultMaxBytes
	}
	if f.maxRedirects <= 0 {
		f.maxRedirects = DefaultMaxRedirects
	}
	var c http.Client
	if opts.Client != nil {
		c = *opts.Client // a shallow copy: the caller's client keeps its own policy
	}
	c.CheckRedirect = f.checkRedirect
	f.client = &c
	return f
}

func (f *Fetcher) checkRedirect(req *http.Request, via []*http.Request) error {
	if len(via) > f.maxRedirects {
		return fmt.Errorf("stopped after %d redirects", f.maxRedirects)
	}
	next := req.URL.String()
	for _, prev := range via {
		if prev.URL.String() == next {
			return fmt.Errorf("redirect loop at %s", next)
		}
	}
	return nil
}

// Fetch GETs rawURL, conditionally when etag or lastModified are given.
// A 304 gives NotModified; a 4xx or 5xx an error wrapping *HTTPError.
func (f *Fetcher) Fetch(ctx context.Context, rawURL, etag, lastModified string) (*FetchResult, error) {
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("feed: %q is not an http(s) URL", rawURL)
	}

	// A context deadline, not Client.Timeout: it holds for any client passed
	// in and covers reading the body too.
	ctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()

	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, fmt.Errorf("feed: %w", err)
	}
	if f.userAgent != "" {
		req.Header.Set("User-Agent", f.userAgent)
	}
	req.Header.Set("Accept", acceptHeader)
	if etag != "" {
		req.Header.Set("If-None-Match", etag)
	}
	if lastModified != "" {
		req.Header.Set("If-Modified-Since", lastModified)
	}

	resp, err := f.client.Do(req)
	if err != nil {
		return nil, f.requestError(ctx, rawURL, err)
	}
	defer resp.Body.Close()

	res := &FetchResult{
		ETag:         resp.Header.Get("ETag"),
		LastModified: resp.Header.Get("Last-Modified"),
		FinalURL:     resp.Request.URL.String(),
		ContentType:  resp.Header.Get("Content-Type"),
	}
	res.Hub, res.Self = linkRels(resp.Request.URL, resp.Header.Values("Link"))

	switch {
	case resp.StatusCode == http.StatusNotModified:
		res.NotModified = true
		if res.ETag == "" {
			res.ETag = etag
		}
		if res.LastModified == "" {
			res.LastModified = lastModified
		}
		return res, nil
	case resp.StatusCode == http.StatusNoContent:
		return nil, fmt.Errorf("feed: GET %s: server answered 204 No Content", rawURL)
	case resp.StatusCode < 200 || resp.StatusCode > 299:
		// Drain a little so the connection can be reused.
		_, _ = io.CopyN(io.Discard, resp.Body, 64<<10)
		herr := &HTTPError{Status: resp.StatusCode, RetryAfter: parseRetryAfter(resp.Header.Get("Retry-After"), time.Now())}
		return nil, fmt.Errorf("feed: GET %s: %w", rawURL, herr)
	}

	if resp.ContentLength > f.maxBytes {
		return nil, fmt.Errorf("%w: %s announces %d bytes, the limit is %d", ErrTooLarge, rawURL, resp.ContentLength, f.maxBytes)
	}
	// Read one byte past the cap to tell "exactly at the cap" from "over it".
	body, err := io.ReadAll(io.LimitReader(resp.Body, f.maxBytes+1))
	if err != nil {
		return nil, f.requestError(ctx, rawURL, err)
	}
	if int64(len(body)) > f.maxBytes {
		return nil, fmt.Errorf("%w: %s sent more than %d bytes", ErrTooLarge, rawURL, f.maxBytes)
	}
	if res.Body, err = toUTF8(body, res.ContentType); err != nil {
		return nil, err
	}
	return res, nil
}

// requestError words transport failures; a timeout says which limit hit.
func (f *Fetcher) requestError(ctx context.Context, rawURL string, err error) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("feed: GET %s: no complete answer within %s: %w", rawURL, f.timeout, context.DeadlineExceeded)
	}
	// url.Error repeats method and URL; keep its cause.
	var uerr *url.Error
	if errors.As(err, &uerr) {
		err = uerr.Err
	}
	return fmt.Errorf("feed: GET %s: %w", rawURL, err)
}

// parseRetryAfter reads delay-seconds or an HTTP date; zero if neither.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs <= 0 {
			return 0
		}
		// Clamp before multiplying: huge values would overflow.
		return time.Duration(min(secs, int64(365*24*time.Hour/time.Second))) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := t.Sub(now); d > 0 {
			return d.Round(time.Second)
		}
	}
	return 0
}

// linkRels finds the first rel="hub" and rel="self" targets of HTTP Link
// headers (RFC 8288), resolved against base.
func linkRels(base *url.URL, headers []string) (hub, self string) {
	for _, h := range headers {
		for _, link := range splitOutsideQuotes(h, ',') {
			link = strings.TrimSpace(link)
			if !strings.HasPrefix(link, "<") {
				continue
			}
			end := strings.IndexByte(link, '>')
			if end < 0 {
				continue
			}
			target := absHTTPURL(base, link[1:end])
			for _, param := range splitOutsideQuotes(link[end+1:], ';') {
				k, v, ok := strings.Cut(strings.TrimSpace(param), "=")
				if !ok || !strings.EqualFold(strings.TrimSpace(k), "rel") {
					continue
				}
				for _, rel := range strings.Fields(strings.ToLower(strings.Trim(strings.TrimSpace(v), `"`))) {
					switch {
					case rel == "hub" && hub == "":
						hub = target
					case rel == "self" && self == "":
						self = target
					}
				}
			}
		}
	}
	return hub, self
}

// splitOutsideQuotes splits s at sep where sep is not inside quotes.
func splitOutsideQuotes(s string, sep byte) []string {
	var out []string
	quoted, start := false, 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '"':
			quoted = !quoted
		case sep:
			if !quoted {
				out = append(out, s[start:i])
				start = i + 1
			}
		}
	}
	return append(out, s[start:])
}
