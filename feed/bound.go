package feed

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Limits checked before a body reaches the XML or JSON parser. gofeed
// recurses once per nesting level and keeps every element it meets, so a
// hostile body could otherwise overflow the stack or cost hundreds of
// times its size in memory.
const (
	// maxItemDepth: an item nesting deeper than this (counted from the
	// document root) is left out. Real feeds stay under 20: Atom xhtml
	// content is the deepest, and HTML inside RSS is escaped text.
	maxItemDepth = 64
	// maxDepth: deeper than this anywhere and the body is refused. The
	// scan stops there, so what it holds stays small whatever follows.
	maxDepth = 256
	// elementBudget bounds the elements gofeed gets to see, which is what
	// its memory grows with: items after the budget is spent are left
	// out, and a body that spends it outside its items is refused. An
	// element of a namespace gofeed keeps as an extension (a map and a
	// struct each, several hundred bytes) costs extensionCost; one of RSS
	// or Atom itself, or inside an Atom text construct (kept as text), 1.
	elementBudget = 200_000
	extensionCost = 4
	// maxItemElements: an item with more elements than this is left out
	// (300,000 categories, say).
	maxItemElements = 10_000
	// maxItems: items after this many are left out; feeds list the newest
	// first.
	maxItems = 10_000
)

// Namespaces whose elements gofeed keeps in its own fields.
const (
	nsAtom = "http://www.w3.org/2005/Atom"
	nsRSS1 = "http://purl.org/rss/1.0/"
	nsRDF  = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
)

// atomText are Atom's text constructs: gofeed keeps what is inside them
// as text, whatever elements (xhtml) it holds.
var atomText = map[string]bool{"title": true, "subtitle": true, "summary": true, "content": true, "rights": true}

// itemShape is what the scan learns of one item that gofeed's universal
// translator forgets: whether its text fields hold text or HTML.
type itemShape struct {
	pos         int    // the item's place in the document, from 1
	titleType   string // Atom type attribute of <title>, "" for RSS
	summaryType string // Atom <summary>; RSS <description> is HTML
	contentType string // Atom <content>
	atom        bool
}

// xmlScan is what scanXML found in a feed document.
type xmlScan struct {
	body    []byte      // the body, less the items left out
	items   []itemShape // the items kept, in document order
	skipped []string
	hub     string // <link rel="hub"> at feed level
	self    string // <link rel="self"> at feed level
}

// errBound words a body refused by the limits.
type errBound struct{ msg string }

func (e *errBound) Error() string { return e.msg }

// scanXML reads a feed document as a stream of tokens, without building
// it, and checks it against the limits above. Items over a limit are cut
// out of the body (and named in skipped); a body over a document-wide
// limit is refused. A body that breaks off (a syntax error after at least
// one whole item) keeps its whole items: the body is cut after the last
// of them and the open elements closed.
//
// The decoder is set up as gofeed sets up its own (Strict false), so it
// sees the same tokens gofeed will.
func scanXML(body []byte) (*xmlScan, error) {
	d := xml.NewDecoder(bytes.NewReader(body))
	d.Strict = false
	// The body is UTF-8 by now (toUTF8), whatever the declaration says.
	d.CharsetReader = func(_ string, r io.Reader) (io.Reader, error) { return r, nil }

	type open struct {
		local string
		raw   string // the qualified name as written, to close it
	}
	var (
		stack     []open
		sc        = &xmlScan{}
		cuts      [][2]int64 // byte ranges to leave out
		spent     int        // of elementBudget, by the kept elements
		textDepth int        // depth of the Atom text construct we are in, 0 if none
		nItems    int

		inItem       bool
		itemDepth    int // depth of the item element
		itemStart    int64
		itemElements int
		itemCost     int
		itemTooDeep  bool
		shape        itemShape
		label        itemLabel

		lastItemEnd  int64    = -1
		stackAtEnd   []string // raw names open after the last whole item
		labelCapture string   // which child's text goes into label
	)
	for {
		start := d.InputOffset()
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			var serr *xml.SyntaxError
			if !errors.As(err, &serr) {
				return nil, err
			}
			if lastItemEnd < 0 {
				return nil, fmt.Errorf("XML syntax error on line %d: %s", serr.Line, serr.Msg)
			}
			// Keep the whole items: cut after the last one and close
			// what was open around it.
			kept := bytes.Clone(body[:lastItemEnd])
			for i := len(stackAtEnd) - 1; i >= 0; i-- {
				kept = append(kept, "</"+stackAtEnd[i]+">"...)
			}
			sc.skipped = append(sc.skipped, fmt.Sprintf("the document breaks off on line %d (%s): what follows item %d is lost", serr.Line, serr.Msg, nItems))
			body = kept
			cuts = clipCuts(cuts, lastItemEnd)
			break
		}
		switch t := tok.(type) {
		case xml.StartElement:
			depth := len(stack) + 1
			if depth > maxDepth {
				return nil, &errBound{fmt.Sprintf("XML nested deeper than %d elements", maxDepth)}
			}
			cost := 1
			switch {
			case textDepth > 0:
			case t.Name.Space == nsAtom && atomText[t.Name.Local]:
				textDepth = depth
			case t.Name.Space != "" && t.Name.Space != nsAtom && t.Name.Space != nsRSS1 && t.Name.Space != nsRDF:
				cost = extensionCost
			}
			if !inItem {
				spent += cost // an item's elements count when it is kept
				if spent > elementBudget {
					return nil, &errBound{fmt.Sprintf("more XML elements outside the items than the budget of %d allows", elementBudget)}
				}
			}
			stack = append(stack, open{t.Name.Local, rawName(body, start)})
			parent := ""
			if depth >= 2 {
				parent = stack[depth-2].local
			}
			switch {
			case !inItem && isItem(t.Name.Local, parent):
				inItem, itemDepth, itemStart, itemElements, itemCost, itemTooDeep = true, depth, start, 0, 0, false
				shape = itemShape{atom: t.Name.Local == "entry"}
				label = itemLabel{}
			case inItem:
				itemElements++
				itemCost += cost
				if depth > maxItemDepth {
					itemTooDeep = true
				}
				if depth == itemDepth+1 {
					labelCapture = ""
					switch t.Name.Local {
					case "title":
						shape.titleType = attr(t, "type")
						labelCapture = "title"
					case "summary":
						shape.summaryType = attr(t, "type")
					case "content":
						shape.contentType = attr(t, "type")
					case "guid", "id":
						labelCapture = "id"
					case "link":
						if h := attr(t, "href"); h != "" && label.link == "" {
							label.link = h
						} else {
							labelCapture = "link"
						}
					}
				}
			case t.Name.Local == "link" && (parent == "channel" || parent == "feed"):
				switch strings.ToLower(attr(t, "rel")) {
				case "hub":
					if sc.hub == "" {
						sc.hub = strings.TrimSpace(attr(t, "href"))
					}
				case "self":
					if sc.self == "" {
						sc.self = strings.TrimSpace(attr(t, "href"))
					}
				}
			}
		case xml.CharData:
			if inItem && labelCapture != "" && len(stack) == itemDepth+1 {
				label.add(labelCapture, t)
			}
		case xml.EndElement:
			if len(stack) == 0 {
				continue // a stray end tag: the decoder reports worse ones
			}
			depth := len(stack)
			stack = stack[:depth-1]
			if depth == textDepth {
				textDepth = 0
			}
			if inItem && depth == itemDepth+1 {
				labelCapture = ""
			}
			if !inItem || depth != itemDepth {
				continue
			}
			inItem = false
			nItems++
			end := d.InputOffset()
			var why string
			switch {
			case nItems > maxItems:
				why = fmt.Sprintf("more than %d items", maxItems)
			case itemTooDeep:
				why = fmt.Sprintf("nested deeper than %d elements", maxItemDepth)
			case itemElements > maxItemElements:
				why = fmt.Sprintf("%d elements, more than the %d an item may have", itemElements, maxItemElements)
			case spent+itemCost+1 > elementBudget:
				why = fmt.Sprintf("the items before it use up the element budget of %d", elementBudget)
			}
			if why != "" {
				cuts = append(cuts, [2]int64{itemStart, end})
				if len(sc.skipped) < maxSkippedLines { // don't name thousands
					sc.skipped = append(sc.skipped, fmt.Sprintf("item %d%s: %s", nItems, label.String(), why))
				}
			} else {
				spent += itemCost + 1
				shape.pos = nItems
				sc.items = append(sc.items, shape)
			}
			lastItemEnd = end
			stackAtEnd = stackAtEnd[:0]
			for _, o := range stack {
				stackAtEnd = append(stackAtEnd, o.raw)
			}
		}
	}
	if len(cuts) == 0 {
		sc.body = body
		return sc, nil
	}
	out := make([]byte, 0, len(body))
	var from int64
	for _, c := range cuts {
		out = append(out, body[from:c[0]]...)
		from = c[1]
	}
	sc.body = append(out, body[from:]...)
	return sc, nil
}

// clipCuts drops the ranges at or after limit (the body is cut there).
func clipCuts(cuts [][2]int64, limit int64) [][2]int64 {
	out := cuts[:0]
	for _, c := range cuts {
		if c[1] <= limit {
			out = append(out, c)
		}
	}
	return out
}

// isItem: RSS 2.0 items sit in <channel>, RSS 1.0 items beside it in
// <rdf:RDF>, Atom entries in <feed>.
func isItem(local, parent string) bool {
	switch local {
	case "item":
		return parent == "channel" || parent == "RDF"
	case "entry":
		return parent == "feed"
	}
	return false
}

func attr(t xml.StartElement, name string) string {
	for _, a := range t.Attr {
		if a.Name.Local == name {
			return a.Value
		}
	}
	return ""
}

// rawName reads the qualified name of the start tag at offset start.
func rawName(body []byte, start int64) string {
	i := bytes.IndexByte(body[start:], '<')
	if i < 0 {
		return ""
	}
	rest := body[start+int64(i)+1:]
	end := bytes.IndexAny(rest, " \t\r\n/>")
	if end < 0 {
		end = len(rest)
	}
	return string(rest[:min(end, 256)])
}

// itemLabel names an item in a skipped line: its title, else its id or link.
type itemLabel struct{ title, id, link string }

const labelMax = 80

func (l *itemLabel) add(field string, b []byte) {
	p := &l.title
	switch field {
	case "id":
		p = &l.id
	case "link":
		p = &l.link
	}
	if len(*p) < labelMax {
		*p += string(b[:min(len(b), labelMax)])
	}
}

func (l itemLabel) String() string {
	for _, s := range []string{l.title, l.id, l.link} {
		if s = collapseSpace(s); s != "" {
			return fmt.Sprintf(" (%q)", truncate(s, 60))
		}
	}
	return ""
}

// scanJSON checks a JSON document's nesting without decoding it. Strings
// are skipped over; escapes inside them cannot end them early.
func scanJSON(body []byte) error {
	depth := 0
	inString, escaped := false, false
	for _, c := range body {
		if inString {
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
			continue
		}
		switch c {
		case '"':
			inString = true
		case '{', '[':
			depth++
			if depth > maxDepth {
				return &errBound{fmt.Sprintf("JSON nested deeper than %d levels", maxDepth)}
			}
		case '}', ']':
			depth--
		}
	}
	return nil
}
