package feed

import (
	"net/url"
	"strconv"
	"strings"

	"github.com/mmcdole/gofeed"
	ext "github.com/mmcdole/gofeed/extensions"
	xhtml "golang.org/x/net/html"
	"golang.org/x/net/html/atom"

	"github.com/herald-dev/herald"
)

// leadImages are the images an item names outside its HTML, best first:
// Media RSS (media:content of an image medium or type, inside a
// media:group too), image enclosures (RSS <enclosure>, Atom
// rel="enclosure"), what gofeed found (an iTunes image). Thumbnails
// (media:thumbnail) come apart: a picture in the post beats them.
func leadImages(it *gofeed.Item) (out, thumbs []herald.Image) {
	media := it.Extensions["media"]
	contents := media["content"]
	for _, g := range media["group"] {
		contents = append(contents, g.Children["content"]...)
	}
	for _, c := range contents {
		if isImage(c.Attrs["medium"], c.Attrs["type"], c.Attrs["url"]) {
			out = append(out, mediaImage(c))
		}
	}
	for _, e := range it.Enclosures {
		if e != nil && strings.HasPrefix(strings.ToLower(strings.TrimSpace(e.Type)), "image/") {
			out = append(out, herald.Image{URL: e.URL})
		}
	}
	if it.ITunesExt != nil && it.ITunesExt.Image != "" {
		out = append(out, herald.Image{URL: it.ITunesExt.Image})
	}
	for _, c := range media["thumbnail"] {
		thumbs = append(thumbs, mediaImage(c))
	}
	return out, thumbs
}

// isImage: Media RSS says medium="image", or a type image/*; a media:content
// with neither is an image when its URL looks like one.
func isImage(medium, typ, u string) bool {
	medium, typ = strings.ToLower(strings.TrimSpace(medium)), strings.ToLower(strings.TrimSpace(typ))
	switch {
	case medium == "image", strings.HasPrefix(typ, "image/"):
		return true
	case medium != "" || typ != "":
		return false
	}
	p := strings.ToLower(u)
	if i := strings.IndexAny(p, "?#"); i >= 0 {
		p = p[:i]
	}
	for _, s := range []string{".jpg", ".jpeg", ".png", ".gif", ".webp", ".avif"} {
		if strings.HasSuffix(p, s) {
			return true
		}
	}
	return false
}

func mediaImage(c ext.Extension) herald.Image {
	img := herald.Image{URL: c.Attrs["url"], Width: dimension(c.Attrs["width"]), Height: dimension(c.Attrs["height"])}
	for _, d := range c.Children["description"] {
		img.Alt = d.Value
	}
	for _, t := range c.Children["title"] {
		if img.Alt == "" {
			img.Alt = t.Value
		}
	}
	return img
}

// dimension reads a width or height attribute: a positive number of
// pixels, "640" or "640px"; 0 when it is anything else.
func dimension(s string) int {
	n, err := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(s), "px"))
	if err != nil || n <= 0 || n > 100_000 {
		return 0
	}
	return n
}

// firstImage is the first <img> of a sanitised fragment with an http(s)
// source that is not a tracking pixel.
func firstImage(fragment string) *herald.Image {
	if !strings.Contains(fragment, "<img") {
		return nil
	}
	z := xhtml.NewTokenizer(strings.NewReader(fragment))
	for {
		switch z.Next() {
		case xhtml.ErrorToken:
			return nil
		case xhtml.StartTagToken, xhtml.SelfClosingTagToken:
			tok := z.Token()
			if tok.DataAtom != atom.Img {
				continue
			}
			img := imgAttrs(tok.Attr)
			if absHTTPURL(nil, img.URL) != "" && !trackingPixel(img) {
				return &img
			}
		}
	}
}

// imgAttrs reads an <img>'s source, size and text.
func imgAttrs(attrs []xhtml.Attribute) herald.Image {
	var img herald.Image
	for _, a := range attrs {
		switch a.Key {
		case "src":
			img.URL = a.Val
		case "width":
			img.Width = dimension(a.Val)
		case "height":
			img.Height = dimension(a.Val)
		case "alt":
			img.Alt = a.Val
		}
	}
	return img
}

func imgOf(n *xhtml.Node) herald.Image { return imgAttrs(n.Attr) }

// trackingPixel: a 1×1 (or 0-sized) image, or a counter of a feed
// service, never a post's picture.
func trackingPixel(img herald.Image) bool {
	if (img.Width > 0 && img.Width <= 2) || (img.Height > 0 && img.Height <= 2) {
		return true
	}
	u, err := url.Parse(img.URL)
	if err != nil {
		return true
	}
	h := strings.ToLower(u.Host)
	return (strings.HasSuffix(h, "feedburner.com") && (strings.HasPrefix(u.Path, "/~r/") || strings.HasPrefix(u.Path, "/~ff/"))) ||
		strings.HasSuffix(h, "feedsportal.com") || h == "pixel.wp.com" || h == "stats.wordpress.com"
}

// minThumbWidth: a thumbnail narrower than this (Blogger's 72px crops)
// would be blown up in an email; it is no lead image.
const minThumbWidth = 200

// leadImage picks the post's lead image: the first candidate with an
// absolute http(s) URL, else the first picture of the content (or of the
// summary), else a thumbnail big enough. Text fields are cut to sensible
// lengths.
func leadImage(base *url.URL, candidates, thumbs []herald.Image, content, summary string) *herald.Image {
	pick := func(list []herald.Image, minWidth int) *herald.Image {
		for _, c := range list {
			if u := absHTTPURL(base, c.URL); u != "" && (c.Width == 0 || c.Width >= minWidth) {
				c.URL = u
				if !trackingPixel(c) {
					c.Alt = truncate(textField(head(c.Alt, 4096)), maxTitleRunes)
					return &c
				}
			}
		}
		return nil
	}
	if img := pick(candidates, 0); img != nil {
		return img
	}
	for _, f := range []string{content, summary} {
		if img := firstImage(f); img != nil {
			img.Alt = truncate(textField(img.Alt), maxTitleRunes)
			return img
		}
	}
	return pick(thumbs, minThumbWidth)
}
