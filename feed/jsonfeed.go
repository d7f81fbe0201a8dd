package feed

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/herald-dev/herald"
)

// parseJSONFeed reads a JSON Feed (jsonfeed.org, 1.0 and 1.1) field by
// field: a field of the wrong type costs that field, an item that is no
// object costs that item, and both are named in skipped. Every text field
// keeps the kind the format gives it (title, summary and content_text are
// text; content_html is HTML).
func parseJSONFeed(body []byte) (*rawFeed, error) {
	// A streaming decoder, so that the items are never all held as raw
	// JSON at once: each is read, turned into a rawItem, and let go.
	dec := json.NewDecoder(bytes.NewReader(body))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, fmt.Errorf("%w: %s", ErrNotFeed, jsonError(err, "no JSON object"))
	}
	top := map[string]json.RawMessage{}
	var items []rawItem
	var skipped []string
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, fmt.Errorf("%w: %s", ErrNotFeed, jsonError(err, ""))
		}
		key, _ := tok.(string)
		if key != "items" {
			var raw json.RawMessage
			if err := dec.Decode(&raw); err != nil {
				return nil, fmt.Errorf("%w: %s", ErrNotFeed, jsonError(err, ""))
			}
			top[key] = raw
			continue
		}
		if tok, err := dec.Token(); err != nil || tok != json.Delim('[') {
			return nil, fmt.Errorf("%w: \"items\" is not a list", ErrNotFeed)
		}
		for n := 1; dec.More(); n++ {
			var raw json.RawMessage
			if err := dec.Decode(&raw); err != nil {
				return nil, fmt.Errorf("%w: %s", ErrNotFeed, jsonError(err, ""))
			}
			switch {
			case n == maxItems+1:
				skipped = append(skipped, fmt.Sprintf("items after the first %d", maxItems))
			case n <= maxItems:
				it, bad := jsonItem(raw, n)
				skipped = append(skipped, bad...)
				if it != nil {
					items = append(items, *it)
				}
			}
		}
		if _, err := dec.Token(); err != nil { // the closing ]
			return nil, fmt.Errorf("%w: %s", ErrNotFeed, jsonError(err, ""))
		}
	}
	if _, err := dec.Token(); err != nil { // the closing }
		return nil, fmt.Errorf("%w: %s", ErrNotFeed, jsonError(err, ""))
	}
	version, _ := jsonString(top["version"])
	if !strings.Contains(version, "jsonfeed.org/version/") {
		return nil, fmt.Errorf("%w: JSON without a jsonfeed.org version", ErrNotFeed)
	}
	f := &rawFeed{}
	f.link, _ = jsonString(top["home_page_url"])
	f.self, _ = jsonString(top["feed_url"])
	f.author = jsonAuthor(top["authors"], top["author"])
	var hubs []struct {
		Type string `json:"type"`
		URL  string `json:"url"`
	}
	if raw, ok := top["hubs"]; ok && json.Unmarshal(raw, &hubs) == nil {
		for _, h := range hubs {
			if strings.EqualFold(h.Type, "websub") && f.hub == "" {
				f.hub = h.URL
			}
		}
	}

	f.items, f.skipped = items, skipped
	return f, nil
}

// jsonItem reads the n-th item field by field; bad names what was left out.
func jsonItem(raw json.RawMessage, n int) (it *rawItem, bad []string) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw, &fields); err != nil {
		return nil, []string{fmt.Sprintf("item %d: not a JSON object", n)}
	}
	it = &rawItem{pos: n}
	var wrong []string
	str := func(key string) string {
		raw, ok := fields[key]
		if !ok || string(raw) == "null" {
			return ""
		}
		s, ok := jsonString(raw)
		if !ok {
			wrong = append(wrong, key+" is not a string")
		}
		return s
	}
	if raw, ok := fields["id"]; ok && string(raw) != "null" {
		if s, ok := jsonString(raw); ok {
			it.guid = s
		} else if num, ok := jsonNumber(raw); ok {
			it.guid = num // 1.0 feeds in the wild number their items
		} else {
			wrong = append(wrong, "id is neither a string nor a number")
		}
	}
	it.link = str("url")
	if it.link == "" {
		it.link = str("external_url")
	}
	it.title = str("title")
	if h := str("content_html"); h != "" {
		it.content, it.contentHTML = h, true
	} else {
		it.content = str("content_text")
	}
	it.summary = str("summary")
	for _, key := range []string{"image", "banner_image"} {
		if u := str(key); u != "" {
			it.images = append(it.images, herald.Image{URL: u})
		}
	}
	if raw, ok := fields["attachments"]; ok && string(raw) != "null" {
		var atts []struct {
			URL      string `json:"url"`
			MimeType string `json:"mime_type"`
			Title    string `json:"title"`
		}
		if json.Unmarshal(raw, &atts) == nil {
			for _, a := range atts {
				if strings.HasPrefix(strings.ToLower(a.MimeType), "image/") {
					it.images = append(it.images, herald.Image{URL: a.URL, Alt: a.Title})
				}
			}
		}
	}
	it.publishedRaw = str("date_published")
	it.updatedRaw = str("date_modified")
	it.author = jsonAuthor(fields["authors"], fields["author"])
	if raw, ok := fields["tags"]; ok && string(raw) != "null" {
		if err := json.Unmarshal(raw, &it.categories); err != nil {
			it.categories = nil
			wrong = append(wrong, "tags is not a list of strings")
		}
	}
	it.label = itemLabel{title: it.title, id: it.guid, link: it.link}.String()
	for _, w := range wrong {
		bad = append(bad, fmt.Sprintf("item %d%s: %s, left out", n, it.label, w))
	}
	return it, bad
}

// jsonString decodes a JSON string; ok is false for any other type.
func jsonString(raw json.RawMessage) (string, bool) {
	var s string
	if len(raw) == 0 || raw[0] != '"' || json.Unmarshal(raw, &s) != nil {
		return "", false
	}
	return s, true
}

// jsonNumber returns a JSON number as written.
func jsonNumber(raw json.RawMessage) (string, bool) {
	var n json.Number
	if json.Unmarshal(raw, &n) != nil {
		return "", false
	}
	if _, err := strconv.ParseFloat(n.String(), 64); err != nil {
		return "", false
	}
	return n.String(), true
}

// jsonAuthor is the first named author of a 1.1 "authors" list, else the
// 1.0 "author" object; either may be missing or malformed.
func jsonAuthor(authors, author json.RawMessage) string {
	type person struct {
		Name string `json:"name"`
	}
	var list []person
	if json.Unmarshal(authors, &list) == nil {
		for _, p := range list {
			if strings.TrimSpace(p.Name) != "" {
				return p.Name
			}
		}
	}
	var one person
	if json.Unmarshal(author, &one) == nil {
		return one.Name
	}
	return ""
}

// jsonError words encoding/json's errors for a poll result; what is
// said when there is no error but the wrong token.
func jsonError(err error, what string) string {
	var se *json.SyntaxError
	switch {
	case err == nil:
		return what
	case errors.As(err, &se):
		return fmt.Sprintf("JSON syntax error at byte %d: %s", se.Offset, se.Error())
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "the JSON document breaks off"
	}
	return err.Error()
}
