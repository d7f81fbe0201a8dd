package feed

import (
	"net/url"
	"strings"

	"github.com/herald-dev/herald"
)

// Clean gives a post that came from outside a feed (the posts API, a CMS
// webhook) the same treatment as a parsed item: plain-text title and
// author, HTML sanitised, a summary from the content when it has none.
func (p *Parser) Clean(post *herald.Post) error {
	base, err := url.Parse(post.URL)
	if err != nil {
		return herald.Errorf(herald.EINVALID, "url is not a URL").WithField("url")
	}
	post.Title = truncate(plainText(post.Title), maxTitleRunes)
	if post.Title == "" {
		return herald.Errorf(herald.EINVALID, "title has no text in it").WithField("title")
	}
	post.Author = truncate(plainText(post.Author), maxAuthorRunes)
	post.Categories = categories(post.Categories)
	post.Content = p.sanitize(base, post.Content)
	post.Summary = p.sanitize(base, post.Summary)
	if post.Image == nil {
		post.Image = leadImage(base, nil, nil, post.Content, post.Summary)
	}
	if strings.TrimSpace(htmlText(post.Summary)) == "" {
		post.Summary = excerpt(htmlText(post.Content))
	} else if wordCount(htmlText(post.Summary)) > longSummaryWords {
		post.Summary = excerpt(htmlText(post.Summary))
	}
	if len(post.GUID) > maxGUIDBytes {
		return herald.Errorf(herald.EINVALID, "guid is longer than %d bytes", maxGUIDBytes).WithField("guid")
	}
	return nil
}
