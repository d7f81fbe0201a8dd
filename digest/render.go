package digest

import (
	"fmt"
	"html/template"
	"strings"
	"time"

	"github.com/k3a/html2text"
	"github.com/vanng822/go-premailer/premailer"

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

// Renderer turns a set of posts into a digest email body.
type Renderer struct {
	tpl      *templates.Set
	siteName string
	siteURL  string
	maxPosts int
}

// NewRenderer returns a Renderer; maxPosts caps the posts shown.
func NewRenderer(tpl *templates.Set, siteName, siteURL string, maxPosts int) *Renderer {
	if maxPosts <= 0 {
		maxPosts = 20
	}
	return &Renderer{tpl: tpl, siteName: siteName, siteURL: siteURL, maxPosts: maxPosts}
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

type postView struct {
	Title, URL, Author, Categories string
	PublishedAt                    time.Time
	Summary                        template.HTML
	SummaryText                    string
}

type site struct{ Name, URL string }

// Render builds the digest for posts (oldest first, as stored). More than
// maxPosts: the newest maxPosts are shown and the rest linked. archive
// drops every reader's link, for the public web copy.
func (r *Renderer) Render(posts []*herald.Post, freq herald.Frequency, archive bool) (*Rendered, error) {
	if len(posts) == 0 {
		return nil, fmt.Errorf("digest: nothing to render")
	}
	shown := posts
	more := 0
	if len(shown) > r.maxPosts {
		more = len(shown) - r.maxPosts
		shown = shown[len(shown)-r.maxPosts:]
	}
	views := make([]postView, 0, len(shown))
	// Newest first reads best in an inbox.
	for i := len(shown) - 1; i >= 0; i-- {
		p := shown[i]
		published := p.PublishedAt
		if published.IsZero() {
			published = p.FoundAt
		}
		// Summaries are sanitised by the feed package (bluemonday) before
		// they are stored, so they may go into the HTML as they are.
		views = append(views, postView{
			Title: p.Title, URL: p.URL, Author: p.Author, Categories: strings.Join(p.Categories, ", "),
			PublishedAt: published, Summary: template.HTML(p.Summary),
			SummaryText: strings.TrimSpace(html2text.HTML2TextWithOptions(p.Summary, html2text.WithUnixLineBreaks())),
		})
	}
	subject := r.Subject(posts)
	moreURL := r.siteURL
	if moreURL == "" && len(posts) > 0 {
		moreURL = posts[0].URL
	}
	data := map[string]any{
		"Site":           site{r.siteName, r.siteURL},
		"Subject":        subject,
		"Intro":          fmt.Sprintf("%d new posts", len(posts)),
		"Posts":          views,
		"More":           more,
		"MoreURL":        moreURL,
		"Archive":        archive,
		"FrequencyText":  frequencyText(freq),
		"UnsubscribeURL": unsubscribePlaceholder,
		"PrefsURL":       prefsPlaceholder,
	}
	html, text, err := r.tpl.Email("digest", data)
	if err != nil {
		return nil, fmt.Errorf("digest: %w", err)
	}
	pm, err := premailer.NewPremailerFromString(html, premailer.NewOptions())
	if err != nil {
		return nil, fmt.Errorf("digest: inline css: %w", err)
	}
	inlined, err := pm.Transform()
	if err != nil {
		return nil, fmt.Errorf("digest: inline css: %w", err)
	}
	return &Rendered{Subject: subject, HTML: inlined, Text: text, Posts: len(posts), Frequency: freq}, nil
}

// Subject is the subject line of the email carrying posts: the post's
// title for one, a count for more.
func (r *Renderer) Subject(posts []*herald.Post) string {
	if len(posts) == 1 {
		// Feed titles are collapsed already; a line break from elsewhere
		// must not make the email unsendable (Compose refuses it).
		return strings.Join(strings.Fields(posts[0].Title), " ")
	}
	return fmt.Sprintf("%s: %d new posts", r.siteName, len(posts))
}

// For returns the bodies with one reader's links in them.
func (d *Rendered) For(unsubscribeURL, prefsURL string) (html, text string) {
	rep := strings.NewReplacer(unsubscribePlaceholder, template.HTMLEscapeString(unsubscribeURL), prefsPlaceholder, template.HTMLEscapeString(prefsURL))
	html = rep.Replace(d.HTML)
	text = strings.NewReplacer(unsubscribePlaceholder, unsubscribeURL, prefsPlaceholder, prefsURL).Replace(d.Text)
	return html, text
}

func frequencyText(f herald.Frequency) string {
	switch f {
	case herald.Instant:
		return "every post as it is published"
	case herald.Weekly:
		return "a weekly digest"
	case herald.Daily:
		return "a daily digest"
	}
	return "new posts by email"
}
