package mailer

import (
	"bufio"
	"bytes"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/textproto"
	"strings"
)

// readable rewrites a message for a person reading the .eml file: each
// quoted-printable text part is decoded and marked 8bit (valid for a file,
// and for any server that speaks 8BITMIME), so links and non-ASCII text
// read as they are. A part whose lines would be longer than RFC 5322
// allows keeps its encoding. A signed message (DKIM) is written as signed:
// rewriting it would break the signature. Anything it cannot parse is
// written as it came.
func readable(raw []byte) []byte {
	hdrEnd := bytes.Index(raw, []byte("\r\n\r\n"))
	if hdrEnd < 0 || bytes.Count(raw[:hdrEnd], []byte("\n")) != bytes.Count(raw[:hdrEnd], []byte("\r\n")) {
		return raw // not herald's CRLF header block: leave it alone
	}
	head, body := raw[:hdrEnd+2], raw[hdrEnd+4:]
	h, err := textproto.NewReader(bufio.NewReader(bytes.NewReader(append(append([]byte{}, head...), '\r', '\n')))).ReadMIMEHeader()
	if err != nil || h.Get("Dkim-Signature") != "" {
		return raw
	}
	newBody, cte, ok := rewriteEntity(h, body)
	if !ok {
		return raw
	}
	var out bytes.Buffer
	out.Grow(len(raw))
	// The top header block keeps its order; only its encoding line changes.
	for _, line := range strings.SplitAfter(string(head), "\r\n") {
		if cte != "" && strings.HasPrefix(strings.ToLower(line), "content-transfer-encoding:") {
			line = "Content-Transfer-Encoding: " + cte + "\r\n"
		}
		out.WriteString(line)
	}
	out.WriteString("\r\n")
	out.Write(newBody)
	return out.Bytes()
}

// rewriteEntity returns the entity's body made readable, and its new
// Content-Transfer-Encoding ("" when unchanged); ok is false when it
// cannot be parsed.
func rewriteEntity(h textproto.MIMEHeader, body []byte) (_ []byte, cte string, ok bool) {
	mt, params, err := mime.ParseMediaType(h.Get("Content-Type"))
	if err != nil {
		return body, "", h.Get("Content-Type") == ""
	}
	switch {
	case strings.HasPrefix(mt, "multipart/"):
		out, ok := rewriteMultipart(body, params["boundary"])
		return out, "", ok
	case strings.HasPrefix(mt, "text/") && strings.EqualFold(h.Get("Content-Transfer-Encoding"), "quoted-printable"):
		dec, err := io.ReadAll(quotedprintable.NewReader(bytes.NewReader(body)))
		if err != nil || !shortLines(dec) {
			return body, "", err == nil
		}
		return dec, "8bit", true
	}
	return body, "", true
}

// rewriteMultipart rewrites each part of a multipart body, keeping its
// boundary.
func rewriteMultipart(body []byte, boundary string) ([]byte, bool) {
	if boundary == "" {
		return body, false
	}
	r := multipart.NewReader(bytes.NewReader(body), boundary)
	var out bytes.Buffer
	w := multipart.NewWriter(&out)
	if err := w.SetBoundary(boundary); err != nil {
		return body, false
	}
	for {
		// NextPart decodes a quoted-printable part and drops its
		// Content-Transfer-Encoding: what it gives is the text itself.
		p, err := r.NextPart()
		if err == io.EOF {
			break
		} else if err != nil {
			return body, false
		}
		mt, _, _ := mime.ParseMediaType(p.Header.Get("Content-Type"))
		decoded := p.Header.Get("Content-Transfer-Encoding") == "" && strings.HasPrefix(mt, "text/")
		content, err := io.ReadAll(p)
		if err != nil {
			return body, false
		}
		hdr := textproto.MIMEHeader{}
		for k, v := range p.Header {
			hdr[k] = v
		}
		switch {
		case decoded && shortLines(content):
			hdr.Set("Content-Transfer-Encoding", "8bit")
		case decoded:
			return body, false // a line too long for 8bit: keep the message as it was
		default:
			var cte string
			var ok bool
			if content, cte, ok = rewriteEntity(hdr, content); !ok {
				return body, false
			}
			if cte != "" {
				hdr.Set("Content-Transfer-Encoding", cte)
			}
		}
		pw, err := w.CreatePart(hdr)
		if err != nil {
			return body, false
		}
		if _, err := pw.Write(content); err != nil {
			return body, false
		}
	}
	if err := w.Close(); err != nil {
		return body, false
	}
	return out.Bytes(), true
}

// shortLines: every line fits the 998 octets RFC 5322 allows.
func shortLines(b []byte) bool {
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			i = len(b)
		}
		if i > 998 {
			return false
		}
		b = b[min(i+1, len(b)):]
	}
	return true
}
