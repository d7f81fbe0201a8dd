package feed

import (
	"html"
	"io"
	"net/url"
	"strings"
	"unicode"
	"unicode/utf8"

	xhtml "golang.org/x/net/html"
	"golang.org/x/net/html/atom"
)

// urlAttrs are the attributes the sanitiser may keep that hold a URL.
var urlAttrs = map[string]bool{"href": true, "src": true, "cite": true, "poster": true}

// resolveHTML makes relative URLs in an HTML fragment absolute against
// base: the fragment ends up in an email, where a relative link leads
// nowhere. Tags it does not change are copied byte for byte.
func resolveHTML(base *url.URL, fragment string) string {
	if base == nil || !strings.Contains(fragment, "<") || !hasURLAttr(fragment) {
		return fragment
	}
	z := xhtml.NewTokenizer(strings.NewReader(fragment))
	var b strings.Builder
	b.Grow(len(fragment) + len(fragment)/8)
	var raw []byte
	for {
		tt := z.Next()
		switch tt {
		case xhtml.ErrorToken:
			if z.Err() != io.EOF {
				// Cannot happen with a strings.Reader; keep the input.
				return fragment
			}
			return b.String()
		case xhtml.StartTagToken, xhtml.SelfClosingTagToken:
			// Copy Raw first: Token unescapes attribute values in place.
			raw = append(raw[:0], z.Raw()...)
			tok := z.Token()
			changed := false
			for i, a := range tok.Attr {
				if a.Namespace != "" || !urlAttrs[a.Key] {
					continue
				}
				if abs := resolveRef(base, a.Val); abs != a.Val {
					tok.Attr[i].Val = abs
					changed = true
				}
			}
			if changed {
				b.WriteString(tok.String())
			} else {
				b.Write(raw)
			}
		default:
			b.Write(z.Raw())
		}
	}
}

// hasURLAttr is a cheap test for attributes resolveHTML would look at.
func hasURLAttr(s string) bool {
	for i := 0; i+4 <= len(s); i++ {
		switch s[i] | 0x20 {
		case 'h', 's', 'c', 'p':
			w := strings.ToLower(s[i:min(i+7, len(s))])
			if strings.HasPrefix(w, "href") || strings.HasPrefix(w, "src") ||
				strings.HasPrefix(w, "cite") || strings.HasPrefix(w, "poster") {
				return true
			}
		}
	}
	return false
}

// resolveRef resolves ref against base; refs that are absolute, or that do
// not parse (the sanitiser drops those), come back unchanged.
func resolveRef(base *url.URL, ref string) string {
	ref = strings.TrimSpace(ref)
	if ref == "" || base == nil {
		return ref
	}
	u, err := url.Parse(ref)
	if err != nil || u.IsAbs() {
		return ref
	}
	return base.ResolveReference(u).String()
}

// absHTTPURL resolves ref against base (which may be nil) and returns it
// only if the result is an absolute http(s) URL: anything else (javascript:,
// data:, a path with no base) must never become a post's link.
func absHTTPURL(base *url.URL, ref string) string {
	ref = strings.TrimSpace(ref)
	if ref == "" {
		return ""
	}
	u, err := url.Parse(ref)
	if err != nil {
		return ""
	}
	if !u.IsAbs() {
		if base == nil {
			return ""
		}
		u = base.ResolveReference(u)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return ""
	}
	return u.String()
}

// skipText are elements whose text a reader never sees.
var skipText = map[atom.Atom]bool{
	atom.Script: true, atom.Style: true, atom.Noscript: true, atom.Iframe: true,
	atom.Object: true, atom.Template: true, atom.Title: true, atom.Head: true,
	atom.Svg: true, atom.Math: true, atom.Noembed: true, atom.Noframes: true,
}

// breakTags separate words when markup is dropped ("a<br>b" is two words).
var breakTags = map[atom.Atom]bool{
	atom.Br: true, atom.P: true, atom.Div: true, atom.Li: true, atom.Tr: true,
	atom.Td: true, atom.Th: true, atom.H1: true, atom.H2: true, atom.H3: true,
	atom.H4: true, atom.H5: true, atom.H6: true, atom.Blockquote: true,
	atom.Pre: true, atom.Hr: true, atom.Section: true, atom.Article: true,
	atom.Figure: true, atom.Figcaption: true, atom.Dt: true, atom.Dd: true,
	atom.Ul: true, atom.Ol: true, atom.Table: true, atom.Img: true,
}

// htmlText returns the visible text of an HTML fragment, entities decoded
// and whitespace collapsed.
func htmlText(fragment string) string {
	if !strings.ContainsAny(fragment, "<&") {
		return collapseSpace(fragment)
	}
	z := xhtml.NewTokenizer(strings.NewReader(fragment))
	var b strings.Builder
	skip := 0
	for {
		switch z.Next() {
		case xhtml.ErrorToken:
			return collapseSpace(b.String())
		case xhtml.TextToken:
			if skip == 0 {
				b.Write(z.Text())
			}
		case xhtml.StartTagToken:
			name, _ := z.TagName()
			a := atom.Lookup(name)
			if skipText[a] {
				skip++
			} else if breakTags[a] {
				b.WriteByte(' ')
			}
		case xhtml.EndTagToken:
			name, _ := z.TagName()
			a := atom.Lookup(name)
			if skipText[a] {
				if skip > 0 {
					skip--
				}
			} else if breakTags[a] {
				b.WriteByte(' ')
			}
		case xhtml.SelfClosingTagToken:
			b.WriteByte(' ')
		}
	}
}

// plainText turns a feed's text field (a title, an author) into plain
// text. Feeds disagree on whether these hold text or HTML, so markup that
// looks like tags is dropped and entities are decoded either way; a lone
// "<" as in "a < b" survives.
func plainText(s string) string {
	if looksLikeMarkup(s) {
		return htmlText(s)
	}
	if strings.Contains(s, "&") {
		s = html.UnescapeString(s)
	}
	return collapseSpace(s)
}

func looksLikeMarkup(s string) bool {
	for i := 0; i < len(s)-1; i++ {
		if s[i] != '<' {
			continue
		}
		c := s[i+1]
		if c == '/' || c == '!' || c == '?' || ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z') {
			return true
		}
	}
	return false
}

// collapseSpace trims s and turns every run of white space into one space.
// Control characters go too: they have no place in a title or a header.
func collapseSpace(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	space := false
	for _, r := range s {
		if unicode.IsSpace(r) || unicode.IsControl(r) {
			space = b.Len() > 0
			continue
		}
		if space {
			b.WriteByte(' ')
			space = false
		}
		b.WriteRune(r)
	}
	return b.String()
}

// truncate cuts s to at most max runes, at a word boundary when one is
// near, and marks the cut with an ellipsis.
func truncate(s string, max int) string {
	if utf8.RuneCountInString(s) <= max {
		return s
	}
	runes := []rune(s)[:max-1]
	cut := len(runes)
	for i := len(runes) - 1; i > len(runes)/2; i-- {
		if runes[i] == ' ' {
			cut = i
			break
		}
	}
	return strings.TrimRight(string(runes[:cut]), " ") + "…"
}

// firstWords returns the first n words of collapsed text, with an ellipsis
// when there were more.
func firstWords(text string, n int) string {
	words := 0
	for i := 0; i < len(text); i++ {
		if text[i] == ' ' {
			words++
			if words == n {
				return text[:i] + "…"
			}
		}
	}
	return text
}

// cutText shortens collapsed text to about words words and at most
// maxRunes characters: at the end of the last whole sentence when one
// ends in the second half of that, else after a whole word with an
// ellipsis. Text within the bounds comes back as it is.
func cutText(text string, words, maxRunes int) string {
	cut := firstWords(text, words)
	if cut == text && utf8.RuneCountInString(text) <= maxRunes {
		return text
	}
	cut = strings.TrimSuffix(cut, "…")
	if utf8.RuneCountInString(cut) > maxRunes {
		cut = strings.TrimSuffix(truncate(cut, maxRunes), "…")
	}
	// The last sentence end: . ! ? (or 。！？) followed by a space or a
	// closing quote, past the middle of what is kept.
	best := -1
	for i, r := range cut {
		switch r {
		case '.', '!', '?', '。', '！', '？':
			end := i + utf8.RuneLen(r)
			for end < len(cut) && strings.ContainsRune(`"'’”»)`, rune(cut[end])) {
				end++
			}
			if (end == len(cut) || cut[end] == ' ') && end > len(cut)/2 && !abbreviation(cut[:i]) {
				best = end
			}
		}
	}
	if best > 0 {
		return cut[:best]
	}
	return strings.TrimRight(cut, " ,;:-–—") + "…"
}

// abbreviation says whether the word before a full stop is one that
// does not end a sentence ("e.g.", "Dr.", a single letter).
func abbreviation(before string) bool {
	w := before[strings.LastIndexByte(before, ' ')+1:]
	if utf8.RuneCountInString(w) <= 1 {
		return true
	}
	switch strings.ToLower(w) {
	case "e.g", "i.e", "etc", "dr", "mr", "mrs", "ms", "st", "vs", "z.b", "bzw", "usw", "ca", "sr", "sra", "mme", "m":
		return true
	}
	return false
}

// wordCount counts the words of collapsed text.
func wordCount(text string) int {
	if text == "" {
		return 0
	}
	return strings.Count(text, " ") + 1
}

// Limits on a fragment the balancing parse takes as a tree; past them it
// becomes its text, in paragraphs (a fragment that deep or that big is no
// post anyone wrote by hand).
const (
	maxFragmentDepth = 128
	maxFragmentTags  = 100_000
)

// voidTags never have an end tag, so they do not nest.
var voidTags = map[atom.Atom]bool{
	atom.Area: true, atom.Base: true, atom.Br: true, atom.Col: true, atom.Embed: true,
	atom.Hr: true, atom.Img: true, atom.Input: true, atom.Link: true, atom.Meta: true,
	atom.Source: true, atom.Track: true, atom.Wbr: true,
}

// balance parses an HTML fragment as the content of a <div> (the HTML5
// algorithm browsers use: what is left open is closed, stray end tags are
// dropped, misnested tags are mended) and renders it back. In an email,
// one post's unclosed <table> or <blockquote> can then never swallow the
// next post or the footer.
//
// Feed-plugin boilerplate goes in the same pass (see dropBoilerplate).
func balance(fragment string) string {
	if !strings.Contains(fragment, "<") {
		return dropBoilerplateText(fragment)
	}
	if !shallow(fragment) {
		return textHTML(htmlText(fragment))
	}
	ctx := &xhtml.Node{Type: xhtml.ElementNode, Data: "div", DataAtom: atom.Div}
	nodes, err := xhtml.ParseFragment(strings.NewReader(fragment), ctx)
	if err != nil {
		return textHTML(htmlText(fragment))
	}
	nodes = dropBoilerplate(nodes)
	var b strings.Builder
	b.Grow(len(fragment) + 16)
	for _, n := range nodes {
		if err := xhtml.Render(&b, n); err != nil {
			return textHTML(htmlText(fragment))
		}
	}
	return b.String()
}

// shallow reports whether fragment stays within the tree limits above.
func shallow(fragment string) bool {
	z := xhtml.NewTokenizer(strings.NewReader(fragment))
	depth, tags := 0, 0
	for {
		switch z.Next() {
		case xhtml.ErrorToken:
			return true
		case xhtml.StartTagToken:
			tags++
			name, _ := z.TagName()
			if !voidTags[atom.Lookup(name)] {
				depth++
			}
		case xhtml.SelfClosingTagToken:
			tags++
		case xhtml.EndTagToken:
			depth = max(depth-1, 0)
		}
		if depth > maxFragmentDepth || tags > maxFragmentTags {
			return false
		}
	}
}

// textField is a field the format says is plain text (an RSS title, an
// Atom type="text" title, a JSON Feed title, an author): what looks like
// a tag in it is text and stays. Entities are decoded once more, as many
// feeds escape their titles twice ("&amp;#8217;").
func textField(s string) string {
	if strings.Contains(s, "&") {
		s = html.UnescapeString(s)
	}
	return collapseSpace(s)
}

// textHTML turns plain text (JSON Feed content_text and summary, Atom
// type="text") into escaped HTML: a paragraph per blank-line-separated
// block, a <br> per line break inside one.
func textHTML(s string) string {
	s = strings.TrimSpace(strings.ReplaceAll(s, "\r\n", "\n"))
	if s == "" {
		return ""
	}
	var b strings.Builder
	b.Grow(len(s) + len(s)/8)
	for _, para := range strings.Split(s, "\n\n") {
		var lines []string
		for _, line := range strings.Split(para, "\n") {
			if line = collapseSpace(line); line != "" {
				lines = append(lines, html.EscapeString(line))
			}
		}
		if len(lines) == 0 {
			continue
		}
		b.WriteString("<p>")
		b.WriteString(strings.Join(lines, "<br>"))
		b.WriteString("</p>")
	}
	return b.String()
}
