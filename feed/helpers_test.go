package feed

import (
	"bytes"
	"compress/gzip"
	"github.com/herald-dev/herald"
	"testing"
)

func gzipBytes(t *testing.T, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// parsePosts is Parse for tests that only look at the posts.
func parsePosts(p *Parser, body []byte, base string) ([]*herald.Post, error) {
	parsed, err := p.Parse(body, base)
	if err != nil {
		return nil, err
	}
	return parsed.Posts, nil
}
