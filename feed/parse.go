package feed

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"html"
	"net/url"
	"strings"
	"time"

	"github.com/herald-dev/herald"
	"github.com/microcosm-cc/bluemonday"
	"github.com/mmcdole/gofeed"
)

// Limits on what one item may carry into a post.
const (
	maxTitleRunes    = 300
	maxAuthorRunes   = 200
	maxCategoryRunes = 100
	maxCategories    = 50
	// GUIDs longer than this are stored as their hash: they become keys.
	maxGUIDBytes = 512
	// summaryWords is the length of a summary made from longer text.
	summaryWords = 60
	// longSummaryWords: a description longer than this is the whole post
	// (Hugo, Blogger and many others put it there), too long for a digest.
	longSummaryWords = 150
	titleWords       = 12
	untitled         = "(untitled)"
)

// ErrNotFeed is wrapped by Parse when the input is no feed at all.
var ErrNotFeed = errors.New("feed: not a valid RSS, Atom or JSON feed")

// Parser turns feed documents into posts. Build it once with NewParser:
// the gofeed parser and the sanitising policy are made there. It is safe
// for concurrent use.
type Parser struct {
	fp     *gofeed.Parser
	policy *bluemonday.Policy
}

// NewParser returns a Parser.
func NewParser() *Parser {
	// UGCPolicy keeps text formatting, links, images, lists and tables, and
	// drops scripts, styles, iframes, forms, event handlers, class/style
	// attributes and URLs other than http, https and mailto. Links get
	// rel="nofollow noopener" and open in a new tab.
	p := bluemonday.UGCPolicy()
	p.AddTargetBlankToFullyQualifiedLinks(true)
	fp := gofeed.NewParser()
	// We don't use item images; the scan for one is a full HTML parse of
	// every item's content (a third of the parse time on big feeds).
	fp.RSSTranslator = &gofeed.DefaultRSSTranslator{DisableContentImageScan: true}
	return &Parser{fp: fp, policy: p}
}

// Parse parses an RSS, Atom or JSON feed into posts, in document order.
// baseURL is where the feed was fetched from (after redirects); relative
// links resolve against the feed's own site link, else against it.
// Summary and Content are sanitised HTML; Title, Author and Categories
// are plain text. Feed, FoundAt, ID and Silent are left to the caller.
func (p *Parser) Parse(body []byte, baseURL string) ([]*herald.Post, error) {
	body, err := toUTF8(body, "")
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNotFeed, err)
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, fmt.Errorf("%w: the document is empty", ErrNotFeed)
	}
	f, err := p.fp.Parse(bytes.NewReader(body))
	if errors.Is(err, gofeed.ErrFeedTypeNotDetected) {
		return nil, fmt.Errorf("%w: no <rss>, <rdf:RDF>, <feed> or JSON object at the start", ErrNotFeed)
	} else if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNotFeed, err)
	}
	// gofeed calls any JSON object a JSON Feed; a JSON Feed says so.
	if f.FeedType == "json" && !strings.Contains(f.FeedVersion, "jsonfeed.org/version/") {
		return nil, fmt.Errorf("%w: JSON without a jsonfeed.org version", ErrNotFeed)
	}

	var base *url.URL
	if b := absHTTPURL(nil, baseURL); b != "" {
		base, _ = url.Parse(b)
	}
	// Relative item links resolve against the site's link, made absolute
	// against where the feed came from.
	site := base
	if l := absHTTPURL(base, f.Link); l != "" {
		site, _ = url.Parse(l)
	}
	feedAuthor := personName(f.Author, f.Authors)

	posts := make([]*herald.Post, 0, len(f.Items))
	seenGUID := make(map[string]bool, len(f.Items))
	seenURL := make(map[string]bool, len(f.Items))
	for _, it := range f.Items {
		if it == nil {
			continue
		}
		post := p.post(it, site, feedAuthor)
		if post == nil || seenGUID[post.GUID] || (post.URL != "" && seenURL[post.URL]) {
			// No key to dedupe on, or a repeat: the first one wins, as the
			// store would otherwise fold the two into one post anyway.
			continue
		}
		seenGUID[post.GUID] = true
		if post.URL != "" {
			seenURL[post.URL] = true
		}
		posts = append(posts, post)
	}
	return posts, nil
}

// post normalises one item; nil when it has neither guid nor link.
func (p *Parser) post(it *gofeed.Item, site *url.URL, feedAuthor string) *herald.Post {
	link := it.Link
	if strings.TrimSpace(link) == "" && len(it.Links) > 0 {
		link = it.Links[0]
	}
	postURL := absHTTPURL(site, link)
	guid := strings.TrimSpace(it.GUID)
	if postURL == "" && strings.HasPrefix(guid, "http") {
		// An RSS guid is a permalink unless it says otherwise.
		postURL = absHTTPURL(nil, guid)
	}
	if guid == "" {
		guid = postURL
	}
	if guid == "" {
		return nil
	}
	if len(guid) > maxGUIDBytes {
		sum := sha256.Sum256([]byte(guid))
		guid = "sha256:" + hex.EncodeToString(sum[:])
	}

	// Relative links in the post's HTML are relative to the post.
	contentBase := site
	if postURL != "" {
		contentBase, _ = url.Parse(postURL)
	}

	post := &herald.Post{
		GUID:        guid,
		URL:         postURL,
		Title:       truncate(plainText(it.Title), maxTitleRunes),
		Author:      truncate(plainText(personName(it.Author, it.Authors)), maxAuthorRunes),
		Categories:  categories(it.Categories),
		PublishedAt: publishedAt(it),
		Content:     p.sanitize(contentBase, it.Content),
	}
	if post.Author == "" {
		post.Author = truncate(plainText(feedAuthor), maxAuthorRunes)
	}

	post.Summary = p.sanitize(contentBase, it.Description)
	summaryText := htmlText(post.Summary)
	switch {
	case summaryText == "":
		// No description, or one with nothing visible left after
		// sanitising: the start of the post stands in.
		post.Summary = excerpt(htmlText(post.Content))
		summaryText = htmlText(post.Summary)
	case wordCount(summaryText) > longSummaryWords:
		if post.Content == "" {
			post.Content = post.Summary
		}
		post.Summary = excerpt(summaryText)
	}

	if post.Title == "" {
		post.Title = truncate(firstWords(summaryText, titleWords), maxTitleRunes)
	}
	if post.Title == "" {
		post.Title = untitled
	}
	return post
}

// sanitize resolves relative URLs, then sanitises: the sanitiser runs last
// so that nothing added before it escapes it.
func (p *Parser) sanitize(base *url.URL, fragment string) string {
	if strings.TrimSpace(fragment) == "" {
		return ""
	}
	return strings.TrimSpace(p.policy.Sanitize(resolveHTML(base, fragment)))
}

// excerpt wraps the first words of plain text in a paragraph. The text is
// escaped, so the result is safe HTML without another sanitising pass.
func excerpt(text string) string {
	if text == "" {
		return ""
	}
	return "<p>" + html.EscapeString(truncate(firstWords(text, summaryWords), 4*maxTitleRunes)) + "</p>"
}

func personName(first *gofeed.Person, all []*gofeed.Person) string {
	if first != nil && strings.TrimSpace(first.Name) != "" {
		return first.Name
	}
	for _, a := range all {
		if a != nil && strings.TrimSpace(a.Name) != "" {
			return a.Name
		}
	}
	return ""
}

func categories(in []string) []string {
	var out []string
	seen := make(map[string]bool, len(in))
	for _, c := range in {
		c = truncate(plainText(c), maxCategoryRunes)
		key := strings.ToLower(c)
		if c == "" || seen[key] {
			continue
		}
		seen[key] = true
		out = append(out, c)
		if len(out) == maxCategories {
			break
		}
	}
	return out
}

// publishedAt is the publication date, else the update date, in UTC; zero
// when neither is a plausible date (the caller then goes by FoundAt).
func publishedAt(it *gofeed.Item) time.Time {
	for _, t := range []*time.Time{it.PublishedParsed, it.UpdatedParsed} {
		// Years outside 1970..9999 are junk, and past 9999 a time.Time no
		// longer marshals to JSON.
		if t != nil && t.Year() >= 1970 && t.Year() <= 9999 {
			return t.UTC()
		}
	}
	return time.Time{}
}
