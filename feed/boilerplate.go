package feed

import (
	"regexp"
	"strings"
	"unicode/utf8"

	xhtml "golang.org/x/net/html"
	"golang.org/x/net/html/atom"
)

// What blog software and feed plugins add to every post, which says
// nothing in an email: Yoast's and WordPress's "The post … appeared first
// on …" (in the languages herald speaks), Medium's "originally published
// in", "Continue reading" links, and FeedBurner's flare and counters.
var (
	// boilerBlock matches the whole text of a paragraph that is nothing
	// but boilerplate.
	boilerBlock = regexp.MustCompile(`(?is)^(?:` +
		`the post .{1,400} appeared first on .{1,300}` +
		`|der beitrag .{1,400} erschien zuerst auf .{1,300}` +
		`|(?:l[’'‘]article|cet article) .{1,400} est apparu en premier sur .{1,300}` +
		`|la entrada .{1,400} (?:se publicó primero|aparece primero|apareció primero) en .{1,300}` +
		`|.{0,400}was originally published in .{1,300} on medium, where people are continuing the conversation.*` +
		`)$`)
	// boilerTail is the same, as the last sentence of a text with no
	// markup (a feed that stripped the links).
	boilerTail = regexp.MustCompile(`(?is)\s*(?:` +
		`the post .{1,400}? appeared first on [^.]{1,300}\.?` +
		`|der beitrag .{1,400}? erschien zuerst auf [^.]{1,300}\.?` +
		`|(?:l[’'‘]article|cet article) .{1,400}? est apparu en premier sur [^.]{1,300}\.?` +
		`|la entrada .{1,400}? (?:se publicó primero|aparece primero|apareció primero) en [^.]{1,300}\.?` +
		`)\s*$`)
	// moreLink matches the text of a "read more" link.
	moreLink = regexp.MustCompile(`(?i)^(?:continue reading|read more|keep reading|read the rest|weiterlesen|mehr lesen|lire la suite|continuer la lecture|leer más|seguir leyendo|sigue leyendo)\b`)
	// ellipsisTail is WordPress's excerpt end, "[…]" or "[...]" (an
	// ellipsis after a sentence that ended says nothing).
	ellipsisTail = regexp.MustCompile(`([.!?]["'’”»)]?)?\s*\[(?:…|\.\.\.|&hellip;|&#8230;)\]\s*$`)
)

// dropBoilerplateText is dropBoilerplate for text without markup.
func dropBoilerplateText(s string) string {
	if !strings.ContainsAny(s, "pPdDlLcC") {
		return s
	}
	s = boilerTail.ReplaceAllString(s, "")
	return endEllipsis(s)
}

// endEllipsis turns a trailing "[…]" into "…", or drops it after the
// end of a sentence.
func endEllipsis(s string) string {
	return ellipsisTail.ReplaceAllStringFunc(s, func(m string) string {
		if end := ellipsisTail.FindStringSubmatch(m)[1]; end != "" {
			return end
		}
		return "…"
	})
}

// dropBoilerplate removes, from a parsed fragment, the paragraphs that
// are boilerplate, "read more" links, FeedBurner's flare and tracking
// pixels, and turns a trailing "[…]" into "…". It works on the tree the
// balancing parse made, so no second parse is needed.
func dropBoilerplate(nodes []*xhtml.Node) []*xhtml.Node {
	out := nodes[:0]
	for _, n := range nodes {
		if boilerplate(n) {
			continue
		}
		prune(n)
		out = append(out, n)
	}
	for i := len(out) - 1; i >= 0; i-- {
		if last := lastText(out[i]); last != nil {
			last.Data = strings.TrimRight(endEllipsis(last.Data), " \t\r\n")
			break
		}
	}
	return out
}

// prune removes boilerplate below n.
func prune(n *xhtml.Node) {
	for c := n.FirstChild; c != nil; {
		next := c.NextSibling
		if boilerplate(c) {
			n.RemoveChild(c)
		} else {
			prune(c)
		}
		c = next
	}
}

// boilerplate says whether n goes.
func boilerplate(n *xhtml.Node) bool {
	if n.Type != xhtml.ElementNode {
		return false
	}
	switch n.DataAtom {
	case atom.P, atom.Div, atom.Footer, atom.Aside, atom.Section, atom.Span, atom.Small, atom.Em, atom.I:
		// Plugins link the post and the site: a paragraph that only
		// reads like one, without a link, is the author's (and the
		// cheap link test spares the text walk of most elements).
		if !hasLink(n) {
			return false
		}
		text := nodeText(n)
		return len(text) < 2000 && boilerBlock.MatchString(text) ||
			n.DataAtom == atom.P && moreLink.MatchString(text) && utf8.RuneCountInString(text) < 120
	case atom.A:
		href := nodeAttr(n, "href")
		if strings.Contains(href, "feeds.feedburner.com/~ff/") || strings.Contains(href, "feedads.g.doubleclick.net") {
			return true
		}
		text := nodeText(n)
		return moreLink.MatchString(text) && utf8.RuneCountInString(text) < 120
	case atom.Img:
		img := imgOf(n)
		return img.URL == "" || trackingPixel(img)
	}
	return false
}

func hasLink(n *xhtml.Node) bool {
	if n.Type == xhtml.ElementNode && n.DataAtom == atom.A {
		return true
	}
	for c := n.FirstChild; c != nil; c = c.NextSibling {
		if hasLink(c) {
			return true
		}
	}
	return false
}

// nodeText is the collapsed text of n.
func nodeText(n *xhtml.Node) string {
	var b strings.Builder
	var walk func(*xhtml.Node)
	walk = func(n *xhtml.Node) {
		if n.Type == xhtml.TextNode {
			b.WriteString(n.Data)
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
			if b.Len() > 4096 {
				return
			}
		}
	}
	walk(n)
	return collapseSpace(b.String())
}

// lastText is the last text node under n with something in it.
func lastText(n *xhtml.Node) *xhtml.Node {
	if n.Type == xhtml.TextNode {
		if strings.TrimSpace(n.Data) != "" {
			return n
		}
		return nil
	}
	for c := n.LastChild; c != nil; c = c.PrevSibling {
		if t := lastText(c); t != nil {
			return t
		}
	}
	return nil
}

func nodeAttr(n *xhtml.Node, key string) string {
	for _, a := range n.Attr {
		if a.Namespace == "" && a.Key == key {
			return a.Val
		}
	}
	return ""
}
