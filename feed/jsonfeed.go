package feed

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// parseJSONFeed reads a JSON Feed (jsonfeed.org, 1.0 and 1.1) field by
// field: a field of the wrong type costs that field, an item that is no
// object costs that item, and both are named in skipped. Every text field
// keeps the kind the format gives it (title, summary and content_text are
// text; content_html is HTML).
func parseJSONFeed(body []byte) (*rawFeed, error) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(body, &top); err != nil {
		return nil, fmt.Errorf("%w: %s", ErrNotFeed, jsonError(err))
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

	var items []json.RawMessage
	if raw, ok := top["items"]; ok {
		if err := json.Unmarshal(raw, &items); err != nil {
			return nil, fmt.Errorf("%w: \"items\" is not a list", ErrNotFeed)
		}
	}
	for i, raw := range items {
		n := i + 1
		if n > maxItems {
			f.skipped = append(f.skipped, fmt.Sprintf("items after the first %d", maxItems))
			break
		}
		var fields map[string]json.RawMessage
		if err := json.Unmarshal(raw, &fields); err != nil {
			f.skipped = append(f.skipped, fmt.Sprintf("item %d: not a JSON object", n))
			continue
		}
		it := rawItem{pos: n}
		var bad []string
		str := func(key string) string {
			raw, ok := fields[key]
			if !ok || string(raw) == "null" {
				return ""
			}
			s, ok := jsonString(raw)
			if !ok {
				bad = append(bad, key+" is not a string")
			}
			return s
		}
		if raw, ok := fields["id"]; ok && string(raw) != "null" {
			if s, ok := jsonString(raw); ok {
				it.guid = s
			} else if num, ok := jsonNumber(raw); ok {
				it.guid = num // 1.0 feeds in the wild number their items
			} else {
				bad = append(bad, "id is neither a string nor a number")
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
		it.publishedRaw = str("date_published")
		it.updatedRaw = str("date_modified")
		it.author = jsonAuthor(fields["authors"], fields["author"])
		if raw, ok := fields["tags"]; ok && string(raw) != "null" {
			if err := json.Unmarshal(raw, &it.categories); err != nil {
				it.categories = nil
				bad = append(bad, "tags is not a list of strings")
			}
		}
		it.label = itemLabel{title: it.title, id: it.guid, link: it.link}.String()
		for _, b := range bad {
			f.skipped = append(f.skipped, fmt.Sprintf("item %d%s: %s, left out", n, it.label, b))
		}
		f.items = append(f.items, it)
	}
	return f, nil
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

// jsonError shortens encoding/json's messages for a poll result.
func jsonError(err error) string {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Sprintf("JSON syntax error at byte %d: %s", se.Offset, se.Error())
	}
	return err.Error()
}
