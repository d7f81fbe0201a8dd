// Package testmail parses emails the way a strict mail client would, for
// tests: headers with net/mail, parts with mime/multipart, bodies decoded.
package testmail

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/mail"
	"regexp"
	"strings"
)

// Parsed is one email, decoded.
type Parsed struct {
	Header  mail.Header
	Subject string // RFC 2047-decoded
	Text    string
	HTML    string
}

// Parse decodes raw and checks it has the shape herald promises:
// multipart/alternative with a text/plain and a text/html part.
func Parse(raw []byte) (*Parsed, error) {
	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("testmail: %w", err)
	}
	p := &Parsed{Header: msg.Header}
	dec := new(mime.WordDecoder)
	if p.Subject, err = dec.DecodeHeader(msg.Header.Get("Subject")); err != nil {
		return nil, fmt.Errorf("testmail: subject: %w", err)
	}
	mt, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil {
		return nil, fmt.Errorf("testmail: content-type: %w", err)
	}
	if mt != "multipart/alternative" {
		return nil, fmt.Errorf("testmail: content-type %s, want multipart/alternative", mt)
	}
	mr := multipart.NewReader(msg.Body, params["boundary"])
	for {
		part, err := mr.NextPart()
		if err == io.EOF {
			break
		} else if err != nil {
			return nil, fmt.Errorf("testmail: part: %w", err)
		}
		pt, pparams, err := mime.ParseMediaType(part.Header.Get("Content-Type"))
		if err != nil {
			return nil, fmt.Errorf("testmail: part content-type: %w", err)
		}
		if cs := strings.ToLower(pparams["charset"]); cs != "utf-8" {
			return nil, fmt.Errorf("testmail: part %s charset %q, want utf-8", pt, cs)
		}
		var r io.Reader = part
		switch strings.ToLower(part.Header.Get("Content-Transfer-Encoding")) {
		case "quoted-printable":
			// multipart.Reader already decodes QP and drops the header.
			r = quotedprintable.NewReader(part)
		case "base64":
			r = base64.NewDecoder(base64.StdEncoding, part)
		}
		body, err := io.ReadAll(r)
		if err != nil {
			return nil, fmt.Errorf("testmail: body: %w", err)
		}
		switch pt {
		case "text/plain":
			p.Text = strings.ReplaceAll(string(body), "\r\n", "\n")
		case "text/html":
			p.HTML = string(body)
		}
	}
	if p.Text == "" || p.HTML == "" {
		return nil, fmt.Errorf("testmail: want both a text/plain and a text/html part")
	}
	return p, nil
}

// MustParse is Parse for tests that can't go on without it.
func MustParse(t interface {
	Helper()
	Fatalf(string, ...any)
}, raw []byte) *Parsed {
	t.Helper()
	p, err := Parse(raw)
	if err != nil {
		t.Fatalf("%v\n%s", err, raw)
	}
	return p
}

var linkRE = regexp.MustCompile(`https?://[^\s<>"]+`)

// Link returns the first link in the text part that contains substr.
func (p *Parsed) Link(substr string) string {
	for _, l := range linkRE.FindAllString(p.Text, -1) {
		if strings.Contains(l, substr) {
			return l
		}
	}
	return ""
}
