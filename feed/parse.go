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
	"unicode/utf8"

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

// Parsed is what one feed document holds.
type Parsed struct {
	// Posts in document order; Feed, FoundAt, ID and Silent are left to
	// the caller.
	Posts []*herald.Post
	// Skipped names, one line each, what was left out: an item over a
	// limit or without anything to know it by, a repeat, a field of the
	// wrong type, the items after a break in the document.
	Skipped []string
	// Hashed counts posts identified by a hash of title and date (they
	// had neither guid nor link).
	Hashed int
	// Hub and Self are the WebSub hub and the feed's own URL as the
	// document advertises them ("" if it does not).
	Hub, Self string
}

// rawItem is one item as its format gives it, before normalising. The
// *HTML flags say whether a field holds HTML or plain text.
type rawItem struct {
	guid, link               string
	title                    string
	titleHTML                bool
	summary                  string
	summaryHTML              bool
	content                  string
	contentHTML              bool
	author                   string
	categories               []string
	published, updated       *time.Time
	publishedRaw, updatedRaw string
	images, thumbs           []herald.Image // lead image candidates, best first (see leadImages)
	label                    string         // names the item in a skipped line
	pos                      int            // the item's place in the document, from 1
}

// rawFeed is a feed document as its format gives it.
type rawFeed struct {
	link, author string
	hub, self    string
	items        []rawItem
	skipped      []string
}

// Parse parses an RSS, Atom or JSON feed. baseURL is where the feed was
// fetched from (after redirects); relative links resolve against the
// feed's own site link, else against it. Summary and Content are
// sanitised, balanced HTML; Title, Author and Categories are plain text.
// Parse fails only when the body is no feed at all or is over a limit
// that holds for the whole document; a bad item costs that item.
func (p *Parser) Parse(body []byte, baseURL string) (*Parsed, error) {
	body, err := toUTF8(body, "")
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNotFeed, err)
	}
	trimmed := bytes.TrimLeft(body, " \t\r\n")
	if len(trimmed) == 0 {
		return nil, fmt.Errorf("%w: the document is empty", ErrNotFeed)
	}
	var f *rawFeed
	if trimmed[0] == '{' {
		if err := scanJSON(trimmed); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrNotFeed, err)
		}
		f, err = parseJSONFeed(trimmed)
	} else {
		f, err = p.parseXML(body)
	}
	if err != nil {
		return nil, err
	}
	return p.normalise(f, baseURL), nil
}

// parseXML bounds the document (scanXML), lets gofeed parse what is left
// and takes from the scan what gofeed's universal translator forgets.
func (p *Parser) parseXML(body []byte) (*rawFeed, error) {
	sc, err := scanXML(stripControls(body))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNotFeed, err)
	}
	gf, err := p.fp.Parse(bytes.NewReader(sc.body))
	if errors.Is(err, gofeed.ErrFeedTypeNotDetected) {
		return nil, fmt.Errorf("%w: no <rss>, <rdf:RDF>, <feed> or JSON object at the start", ErrNotFeed)
	} else if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNotFeed, err)
	}
	if gf.FeedType == "json" { // a body that only looked like XML
		return nil, fmt.Errorf("%w: JSON without a jsonfeed.org version", ErrNotFeed)
	}
	f := &rawFeed{link: gf.Link, author: personName(gf.Author, gf.Authors), hub: sc.hub, self: sc.self, skipped: sc.skipped}
	shapes := sc.items
	if len(shapes) != len(gf.Items) {
		// The scan and gofeed disagree on what an item is (a document
		// too odd for either to be sure): fall back to the defaults.
		shapes = nil
	}
	isAtom := gf.FeedType == "atom"
	for i, it := range gf.Items {
		if it == nil {
			continue
		}
		var sh itemShape
		if shapes != nil {
			sh = shapes[i]
		}
		ri := rawItem{
			guid: it.GUID, link: it.Link, title: it.Title,
			author: personName(it.Author, it.Authors), categories: it.Categories,
			published: it.PublishedParsed, updated: it.UpdatedParsed,
			publishedRaw: it.Published, updatedRaw: it.Updated,
			summary: it.Description, content: it.Content,
		}
		ri.images, ri.thumbs = leadImages(it)
		if isAtom {
			// RFC 4287: title, summary and content are text unless their
			// type says html or xhtml.
			ri.titleHTML = atomHTML(sh.titleType)
			ri.summaryHTML = atomHTML(sh.summaryType)
			ri.contentHTML = atomHTML(sh.contentType)
		} else {
			// RSS: the title is text; description and content:encoded
			// are HTML.
			ri.summaryHTML, ri.contentHTML = true, true
		}
		ri.label = itemLabel{title: it.Title, id: it.GUID, link: it.Link}.String()
		ri.pos = sh.pos
		if ri.pos == 0 {
			ri.pos = i + 1
		}
		f.items = append(f.items, ri)
	}
	return f, nil
}

// atomHTML reads an Atom text construct's type: "html", "xhtml" or an
// HTML media type.
func atomHTML(typ string) bool {
	t := strings.ToLower(strings.TrimSpace(typ))
	return t == "html" || t == "xhtml" || strings.Contains(t, "html")
}

// normalise turns a raw feed into posts: identity, links, text and HTML.
func (p *Parser) normalise(f *rawFeed, baseURL string) *Parsed {
	var base *url.URL
	if b := absHTTPURL(nil, baseURL); b != "" {
		base, _ = url.Parse(b)
	}
	// Relative item links resolve against the site's link, made absolute
	// against where the feed came from.
	site := base
	if l := absHTTPURL(base, f.link); l != "" {
		site, _ = url.Parse(l)
	}
	out := &Parsed{
		Posts:   make([]*herald.Post, 0, len(f.items)),
		Skipped: f.skipped,
		Hub:     absHTTPURL(base, f.hub),
		Self:    absHTTPURL(base, f.self),
	}
	seen := make(map[string]int, len(f.items))
	for i := range f.items {
		it := &f.items[i]
		n := it.pos
		post, hashed := p.post(it, site, f.author)
		if post == nil {
			out.Skipped = append(out.Skipped, fmt.Sprintf("item %d%s: no guid, link, title or date to know it by, left out", n, it.label))
			continue
		}
		if first, dup := seen[post.GUID]; dup {
			// The first one wins: two items with one identity are one post.
			out.Skipped = append(out.Skipped, fmt.Sprintf("item %d%s: the same id as item %d, left out", n, it.label, first))
			continue
		}
		seen[post.GUID] = n
		if post.PublishedAt.IsZero() {
			for _, raw := range []string{it.publishedRaw, it.updatedRaw} {
				if raw = strings.TrimSpace(raw); raw != "" {
					out.Skipped = append(out.Skipped, fmt.Sprintf("item %d%s: date %q is not a date, left out", n, it.label, truncate(collapseSpace(raw), 60)))
					break
				}
			}
		}
		if hashed {
			out.Hashed++
		}
		out.Posts = append(out.Posts, post)
		*it = rawItem{} // let the raw text go as the posts are made
	}
	return out
}

// post normalises one item; nil when nothing can identify it. hashed is
// true when its identity is a hash of its title and date.
func (p *Parser) post(it *rawItem, site *url.URL, feedAuthor string) (post *herald.Post, hashed bool) {
	postURL := absHTTPURL(site, it.link)
	guid := strings.TrimSpace(it.guid)
	if postURL == "" && strings.HasPrefix(guid, "http") {
		// An RSS guid is a permalink unless it says otherwise.
		postURL = absHTTPURL(nil, guid)
	}

	// Relative links in the post's HTML are relative to the post.
	contentBase := site
	if postURL != "" {
		contentBase, _ = url.Parse(postURL)
	}

	// A title, an author or a category longer than this has nothing more
	// to show after truncation: don't collapse megabytes of it first.
	const fieldHead = 64 << 10
	title := head(it.title, fieldHead)
	if it.titleHTML {
		title = htmlText(title)
	} else {
		title = textField(title)
	}
	post = &herald.Post{
		URL:         postURL,
		Title:       truncate(title, maxTitleRunes),
		Author:      truncate(textField(head(it.author, fieldHead)), maxAuthorRunes),
		Categories:  categories(it.categories),
		PublishedAt: publishedAt(it),
		Content:     p.fragment(contentBase, it.content, it.contentHTML),
	}
	if post.Author == "" {
		post.Author = truncate(textField(feedAuthor), maxAuthorRunes)
	}

	post.Summary = p.fragment(contentBase, it.summary, it.summaryHTML)
	// Before the summary is replaced: a description that is only a
	// picture still has the post's picture.
	post.Image = leadImage(contentBase, it.images, it.thumbs, post.Content, post.Summary)
	summaryText := htmlText(post.Summary)
	switch {
	case summaryText == "":
		// No summary, or one with nothing visible left after
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

	// Identity: the guid, else the link, else a hash of title and date.
	switch {
	case guid != "":
	case postURL != "":
		guid = postURL
	case post.Title != "" || !post.PublishedAt.IsZero():
		date := ""
		if !post.PublishedAt.IsZero() {
			date = post.PublishedAt.Format(time.RFC3339)
		}
		sum := sha256.Sum256([]byte(post.Title + "\x00" + date))
		guid, hashed = "hash:"+hex.EncodeToString(sum[:16]), true
	default:
		return nil, false
	}
	if len(guid) > maxGUIDBytes {
		sum := sha256.Sum256([]byte(guid))
		guid = "sha256:" + hex.EncodeToString(sum[:])
	}
	post.GUID = guid
	if post.Title == "" {
		post.Title = untitled
	}
	return post, hashed
}

// head is the first n bytes of s at most, cut at a character boundary.
func head(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// fragment makes a field an email-safe HTML fragment: HTML is sanitised
// and balanced, text is escaped into paragraphs.
func (p *Parser) fragment(base *url.URL, s string, isHTML bool) string {
	if isHTML {
		return p.sanitize(base, s)
	}
	return textHTML(s)
}

// sanitize resolves relative URLs, sanitises, then balances: the
// sanitiser runs after the resolver so that nothing added before it
// escapes it, and the balancing parse last so that whatever the feed left
// open is closed within the fragment.
func (p *Parser) sanitize(base *url.URL, fragment string) string {
	if strings.TrimSpace(fragment) == "" {
		return ""
	}
	return strings.TrimSpace(balance(p.policy.Sanitize(resolveHTML(base, fragment))))
}

// excerpt wraps the start of plain text in a paragraph, cut at the end of
// a sentence or else of a word (see cutText). The text is escaped, so the
// result is safe HTML without another sanitising pass.
func excerpt(text string) string {
	text = cutText(dropBoilerplateText(text), summaryWords, 4*maxTitleRunes)
	if text == "" {
		return ""
	}
	return "<p>" + html.EscapeString(text) + "</p>"
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
		c = truncate(textField(head(c, 4*maxCategoryRunes)), maxCategoryRunes)
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
// Dates gofeed could not read get a second chance with parseDate.
func publishedAt(it *rawItem) time.Time {
	for _, d := range []struct {
		parsed *time.Time
		raw    string
	}{{it.published, it.publishedRaw}, {it.updated, it.updatedRaw}} {
		if d.parsed != nil {
			if t, ok := plausible(*d.parsed); ok {
				return t
			}
		}
		if t, ok := parseDate(d.raw); ok {
			return t
		}
	}
	return time.Time{}
}
