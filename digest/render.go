package digest

import (
	"fmt"
	"html/template"
	"strings"

	"github.com/k3a/html2text"

	"github.com/herald-dev/herald"
	"github.com/herald-dev/herald/templates"
)

// Placeholders stand in for a reader's own links in a digest rendered once
// for everyone who gets the same posts; For swaps them in. They are plain
// letters so html/template leaves them alone in an href.
const (
	unsubscribePlaceholder = "HERALDPLACEHOLDERUNSUBSCRIBEURL"
	prefsPlaceholder       = "HERALDPLACEHOLDERPREFERENCESURL"
)

// Content says what each post carries in an email.
type Content string

const (
	// ContentSummary: the summary and the lead image (the default).
	ContentSummary Content = "summary"
	// ContentFull: the whole post, sanitised and balanced as summaries are.
	ContentFull Content = "full"
)

// Renderer turns a set of posts into a digest email body.
type Renderer struct {
	tpl      *templates.Set
	siteURL  string
	maxPosts int
	content  Content
}

// NewRenderer returns a Renderer; maxPosts caps the posts shown.
func NewRenderer(tpl *templates.Set, siteURL string, maxPosts int, content Content) *Renderer {
	if maxPosts <= 0 {
		maxPosts = 20
	}
	if content != ContentFull {
		content = ContentSummary
	}
	return &Renderer{tpl: tpl, siteURL: siteURL, maxPosts: maxPosts, content: content}
}

// Rendered is a digest body shared by every reader with the same posts.
type Rendered struct {
	Subject string
	HTML    string // CSS inlined
	Text    string
	// Posts is how many new posts there were (shown or linked).
	Posts int
	// Frequency is the frequency it was rendered for.
	Frequency herald.Frequency
}

// Render builds the digest for posts (oldest first, as stored) in
// language lang. More than maxPosts: the newest maxPosts are shown and
// the rest linked. archive drops every reader's link, for the public web
// copy.
func (r *Renderer) Render(posts []*herald.Post, freq herald.Frequency, archive bool, lang string) (*Rendered, error) {
	if len(posts) == 0 {
		return nil, fmt.Errorf("digest: nothing to render")
	}
	shown := posts
	more := 0
	if len(shown) > r.maxPosts {
		more = len(shown) - r.maxPosts
		shown = shown[len(shown)-r.maxPosts:]
	}
	data := &templates.DigestEmail{
		Count: len(posts), More: more, MoreURL: r.siteURL, Full: r.content == ContentFull,
		Archive: archive, Frequency: string(freq),
		UnsubscribeURL: unsubscribePlaceholder, PrefsURL: prefsPlaceholder,
	}
	if data.MoreURL == "" {
		data.MoreURL = posts[0].URL
	}
	// Newest first reads best in an inbox.
	for i := len(shown) - 1; i >= 0; i-- {
		data.Posts = append(data.Posts, r.post(shown[i]))
	}
	out, err := r.tpl.Email(lang, "digest", data)
	if err != nil {
		return nil, fmt.Errorf("digest: %w", err)
	}
	return &Rendered{Subject: out.Subject, HTML: out.HTML, Text: out.Text, Posts: len(posts), Frequency: freq}, nil
}

// Subject is the subject line of the email carrying posts, in the
// default language (a dry run's record of what it would send): the
// template's "subject" block, without rendering the rest.
func (r *Renderer) Subject(posts []*herald.Post) string {
	if len(posts) == 0 {
		return ""
	}
	data := &templates.DigestEmail{Count: len(posts)}
	for i := len(posts) - 1; i >= 0 && len(data.Posts) < r.maxPosts; i-- {
		data.Posts = append(data.Posts, templates.DigestPost{Title: posts[i].Title, URL: posts[i].URL, PublishedAt: posts[i].PublishedAt})
	}
	s, err := r.tpl.Subject("", "digest", data)
	if err != nil {
		return ""
	}
	return s
}

// post is one post as the template shows it. Summaries and contents are
// sanitised and balanced by the feed package before they are stored, so
// they go into the HTML as they are, once their pictures fit the column.
func (r *Renderer) post(p *herald.Post) templates.DigestPost {
	published := p.PublishedAt
	if published.IsZero() {
		published = p.FoundAt
	}
	body := p.Summary
	if r.content == ContentFull && strings.TrimSpace(p.Content) != "" {
		body = p.Content
	}
	body = fitImages(body, templates.ColumnWidth)
	v := templates.DigestPost{
		Title: p.Title, URL: p.URL, Author: p.Author, Categories: strings.Join(p.Categories, ", "),
		PublishedAt: published, Body: template.HTML(body), //nolint:gosec // sanitised by feed
		Text: strings.TrimSpace(html2text.HTML2TextWithOptions(body, html2text.WithUnixLineBreaks())),
	}
	// The lead image, unless the body shows it already.
	if p.Image != nil && !strings.Contains(body, template.HTMLEscapeString(p.Image.URL)) && !strings.Contains(body, p.Image.URL) {
		w, h := fit(p.Image.Width, p.Image.Height, templates.ColumnWidth)
		v.Image = &templates.Image{URL: p.Image.URL, Alt: p.Image.Alt, Width: w, Height: h}
	}
	return v
}

// For returns the bodies with one reader's links in them.
func (d *Rendered) For(unsubscribeURL, prefsURL string) (html, text string) {
	rep := strings.NewReplacer(unsubscribePlaceholder, template.HTMLEscapeString(unsubscribeURL), prefsPlaceholder, template.HTMLEscapeString(prefsURL))
	html = rep.Replace(d.HTML)
	text = strings.NewReplacer(unsubscribePlaceholder, unsubscribeURL, prefsPlaceholder, prefsURL).Replace(d.Text)
	return html, text
}
