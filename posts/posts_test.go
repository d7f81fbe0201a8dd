package posts

import (
	"encoding/json"
	"net/url"
	"strings"
	"testing"

	"github.com/herald-dev/herald"
)

// FuzzPostInput: a post sent to the API (a CMS webhook) is outside input.
// No body panics; one that breaks a rule is EINVALID with the field named;
// whatever passes has an absolute http(s) URL, a title and a GUID.
func FuzzPostInput(f *testing.F) {
	for _, s := range []string{
		`{"guid":"g1","url":"https://blog.example.org/a/","title":"A post","summary":"<p>s</p>","content":"<p>c</p>","author":"Ann","categories":["x","y"],"published_at":"2026-11-25T07:00:00Z"}`,
		`{"url":"javascript:alert(1)","title":"x"}`,
		`{"url":"https://a.example/\r\nX: y","title":" "}`,
		`{"url":"https://a.example/","title":"t","published_at":"yesterday","categories":null}`,
		`{"url":" https://a.example/ ","title":"t","guid":"` + strings.Repeat("g", 1001) + `"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var in herald.PostInput
		if json.Unmarshal(body, &in) != nil {
			return // the handler's decoding refuses it (EMALFORMED)
		}
		p, err := postFromInput(in)
		if err != nil {
			if herald.ErrorCode(err) != herald.EINVALID || herald.ErrorField(err) == "" {
				t.Fatalf("error with code %q, field %q: %v", herald.ErrorCode(err), herald.ErrorField(err), err)
			}
			return
		}
		u, err := url.Parse(p.URL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || strings.ContainsAny(p.URL, " \r\n") {
			t.Fatalf("post with URL %q accepted", p.URL)
		}
		if strings.TrimSpace(p.Title) == "" || p.GUID == "" || len(p.GUID) > 1000 || len(p.Categories) > 50 {
			t.Fatalf("post accepted: %+v", p)
		}
	})
}
