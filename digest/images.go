package digest

import (
	"strconv"
	"strings"

	xhtml "golang.org/x/net/html"
	"golang.org/x/net/html/atom"
)

// fit scales a picture of w×h to at most max pixels wide. An unknown
// width (0) becomes max: Outlook for Windows ignores CSS widths and
// shows a picture without a width attribute at its own size, however
// wide. The height is scaled with the width, 0 when unknown.
func fit(w, h, max int) (int, int) {
	if w <= 0 {
		return max, 0
	}
	if w <= max {
		return w, h
	}
	if h > 0 {
		h = (h*max + w/2) / w
	}
	return max, h
}

// fitImages gives every <img> of a sanitised fragment a width attribute
// of at most max pixels (the height scaled with it) and a style that
// lets it shrink on a small screen: the attribute is what Outlook reads,
// the CSS what the others do. Other tags are copied byte for byte.
func fitImages(fragment string, max int) string {
	if !strings.Contains(fragment, "<img") {
		return fragment
	}
	z := xhtml.NewTokenizer(strings.NewReader(fragment))
	var b strings.Builder
	b.Grow(len(fragment) + 64)
	for {
		tt := z.Next()
		switch tt {
		case xhtml.ErrorToken:
			return b.String()
		case xhtml.StartTagToken, xhtml.SelfClosingTagToken:
			raw := string(z.Raw())
			tok := z.Token()
			if tok.DataAtom != atom.Img {
				b.WriteString(raw)
				continue
			}
			var w, h int
			attrs := tok.Attr[:0]
			for _, a := range tok.Attr {
				switch a.Key {
				case "width":
					w, _ = strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(a.Val), "px"))
				case "height":
					h, _ = strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(a.Val), "px"))
				case "style":
				default:
					attrs = append(attrs, a)
				}
			}
			w, h = fit(w, h, max)
			attrs = append(attrs, xhtml.Attribute{Key: "width", Val: strconv.Itoa(w)})
			if h > 0 {
				attrs = append(attrs, xhtml.Attribute{Key: "height", Val: strconv.Itoa(h)})
			}
			attrs = append(attrs, xhtml.Attribute{Key: "style", Val: "max-width:100%;height:auto;"})
			tok.Attr = attrs
			b.WriteString(tok.String())
		default:
			b.Write(z.Raw())
		}
	}
}
