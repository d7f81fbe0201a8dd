package feed

import (
	"bytes"
	"fmt"
	"mime"
	"regexp"
	"strings"
	"unicode/utf8"

	"golang.org/x/net/html/charset"
	"golang.org/x/text/encoding/unicode"
)

var (
	bomUTF8    = []byte{0xEF, 0xBB, 0xBF}
	bomUTF16LE = []byte{0xFF, 0xFE}
	bomUTF16BE = []byte{0xFE, 0xFF}
)

// prologEncoding finds the encoding pseudo-attribute of an XML declaration.
// Compiled once; read-only, so safe to share.
var prologEncoding = regexp.MustCompile(`encoding\s*=\s*["']([^"']*)["']`)

// toUTF8 returns body as UTF-8, with any XML declaration rewritten to say
// so. contentType is the HTTP Content-Type header ("" when unknown).
//
// Why rewrite the declaration: gofeed hands a declared encoding to
// charset.NewReaderLabel, so a body converted here but still declaring
// ISO-8859-1 would be decoded twice, and a UTF-8 body that wrongly declares
// ISO-8859-1 (common) would come out as mojibake.
//
// The choice, in order: a byte order mark; a body that already is valid
// UTF-8 is kept as it is whatever it declares; else the XML declaration,
// else the HTTP charset, else windows-1252 (the superset of Latin-1 that
// undeclared non-UTF-8 feeds are nearly always in). A body that claims
// UTF-8 but is not gets its bad bytes replaced with U+FFFD.
func toUTF8(body []byte, contentType string) ([]byte, error) {
	switch {
	case bytes.HasPrefix(body, bomUTF8):
		body = body[len(bomUTF8):]
		if !utf8.Valid(body) {
			body = bytes.ToValidUTF8(body, []byte("\uFFFD"))
		}
		return fixDeclaration(body), nil
	case bytes.HasPrefix(body, bomUTF16LE), bytes.HasPrefix(body, bomUTF16BE):
		out, err := unicode.UTF16(unicode.BigEndian, unicode.ExpectBOM).NewDecoder().Bytes(body)
		if err != nil {
			return nil, fmt.Errorf("feed: decode UTF-16: %w", err)
		}
		return fixDeclaration(out), nil
	}
	// UTF-16 without a byte order mark: every other byte of the ASCII
	// start ("<?xml", "<rss", "{") is zero. Such a body is valid UTF-8
	// full of NULs, so this comes before the UTF-8 test.
	if len(body) >= 4 && body[0] != 0 && body[1] == 0 && body[2] != 0 && body[3] == 0 {
		return decodeUTF16(body, unicode.LittleEndian)
	}
	if len(body) >= 4 && body[0] == 0 && body[1] != 0 && body[2] == 0 && body[3] != 0 {
		return decodeUTF16(body, unicode.BigEndian)
	}
	if utf8.Valid(body) {
		return fixDeclaration(body), nil
	}

	label := declaredEncoding(body)
	if label == "" {
		label = httpCharset(contentType)
	}
	enc, name := charset.Lookup(label)
	if enc == nil {
		enc, name = charset.Lookup("windows-1252")
	}
	if name == "utf-8" {
		return fixDeclaration(bytes.ToValidUTF8(body, []byte("\uFFFD"))), nil
	}
	out, err := enc.NewDecoder().Bytes(body)
	if err != nil {
		return nil, fmt.Errorf("feed: decode %s: %w", name, err)
	}
	return fixDeclaration(out), nil
}

// xmlDeclaration returns the span of a leading <?xml ...?> declaration.
func xmlDeclaration(body []byte) (start, end int, ok bool) {
	trimmed := bytes.TrimLeft(body, " \t\r\n")
	start = len(body) - len(trimmed)
	if !bytes.HasPrefix(trimmed, []byte("<?xml")) {
		return 0, 0, false
	}
	// A declaration is short; don't scan a huge body for "?>".
	limit := min(len(trimmed), 512)
	i := bytes.Index(trimmed[:limit], []byte("?>"))
	if i < 0 {
		return 0, 0, false
	}
	return start, start + i + 2, true
}

func declaredEncoding(body []byte) string {
	start, end, ok := xmlDeclaration(body)
	if !ok {
		return ""
	}
	m := prologEncoding.FindSubmatch(body[start:end])
	if m == nil {
		return ""
	}
	return strings.TrimSpace(string(m[1]))
}

// fixDeclaration makes a declared encoding say UTF-8. It copies only when
// it changes something.
func fixDeclaration(body []byte) []byte {
	start, end, ok := xmlDeclaration(body)
	if !ok {
		return body
	}
	decl := body[start:end]
	loc := prologEncoding.FindSubmatchIndex(decl)
	if loc == nil || strings.EqualFold(string(decl[loc[2]:loc[3]]), "utf-8") {
		return body
	}
	out := make([]byte, 0, len(body)+8)
	out = append(out, body[:start+loc[2]]...)
	out = append(out, "UTF-8"...)
	out = append(out, body[start+loc[3]:]...)
	return out
}

func httpCharset(contentType string) string {
	if contentType == "" {
		return ""
	}
	_, params, err := mime.ParseMediaType(contentType)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(params["charset"])
}

func decodeUTF16(body []byte, order unicode.Endianness) ([]byte, error) {
	out, err := unicode.UTF16(order, unicode.IgnoreBOM).NewDecoder().Bytes(body)
	if err != nil {
		return nil, fmt.Errorf("feed: decode UTF-16: %w", err)
	}
	return fixDeclaration(out), nil
}

// stripControls drops the C0 control characters XML 1.0 forbids (all but
// tab, line feed and carriage return): one stray byte in a title would
// otherwise end the document there. It copies only when it finds one.
func stripControls(body []byte) []byte {
	i := bytes.IndexFunc(body, isForbiddenControl)
	if i < 0 {
		return body
	}
	out := make([]byte, 0, len(body))
	out = append(out, body[:i]...)
	for _, c := range body[i:] {
		if c >= 0x20 || c == '\t' || c == '\n' || c == '\r' {
			out = append(out, c)
		}
	}
	return out
}

func isForbiddenControl(r rune) bool {
	return r < 0x20 && r != '\t' && r != '\n' && r != '\r'
}
