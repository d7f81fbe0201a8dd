package testmail

import (
	"bytes"
	"fmt"
	"mime"
	"net/mail"
	"regexp"
	"strings"
	"unicode/utf8"
)

// LintOptions say what a message should carry.
type LintOptions struct {
	// FromAddress is the bare address From must carry (mail.from's).
	FromAddress string
	// Subject, when set, is what the decoded Subject must be.
	Subject string
}

// Line lengths of RFC 5322 §2.1.1: lines MUST be at most 998 characters
// and SHOULD be at most 78.
const (
	MaxLine    = 998
	ShouldLine = 78
)

var (
	tagRE    = regexp.MustCompile(`<(/?[a-zA-Z][a-zA-Z0-9]*)(\s[^<>]*)?/?>`)
	entityRE = regexp.MustCompile(`&(#[0-9]+|#x[0-9a-fA-F]+|[a-zA-Z]+);`)
	msgIDRE  = regexp.MustCompile(`^<[!-;=?-~]+@([A-Za-z0-9.-]+)>$`)
)

// Lint checks raw against the rules herald promises for every email (RFC
// 5322 and 2045-2047 as a strict client reads them) and returns every
// rule it breaks; none means the message passes.
//
//   - CRLF line endings only, no bare CR or LF, no NUL;
//   - header lines 7-bit ASCII (anything else RFC 2047-encoded), at most
//     998 characters, and at most 78 wherever a fold was possible (the
//     DKIM-Signature, folded by its signer, only needs 998);
//   - exactly one Date (parseable), Message-ID (angle brackets, on
//     mail.from's domain), From (mail.from's address), To, Subject and
//     MIME-Version (1.0);
//   - multipart/alternative with a UTF-8 text/plain part free of markup
//     and entities, and a UTF-8 text/html part without scripts;
//   - body lines at most 998 characters.
func Lint(raw []byte, o LintOptions) []error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	if bytes.IndexByte(raw, 0) >= 0 {
		bad("message contains a NUL byte")
	}
	for i, c := range raw {
		if c == '\n' && (i == 0 || raw[i-1] != '\r') {
			bad("bare LF at byte %d", i)
			break
		}
		if c == '\r' && (i+1 == len(raw) || raw[i+1] != '\n') {
			bad("bare CR at byte %d", i)
			break
		}
	}
	end := bytes.Index(raw, []byte("\r\n\r\n"))
	if end < 0 {
		return append(errs, fmt.Errorf("no blank line after the header"))
	}
	lines := strings.Split(string(raw[:end]), "\r\n")
	counts := map[string]int{}
	field := ""
	for _, l := range lines {
		continuation := l != "" && (l[0] == ' ' || l[0] == '\t')
		if !continuation {
			name, _, ok := strings.Cut(l, ":")
			if !ok || name == "" || strings.ContainsAny(name, " \t") {
				bad("header line %q is not a field", trunc(l))
				continue
			}
			field = strings.ToLower(name)
			counts[field]++
		}
		for i := 0; i < len(l); i++ {
			if l[i] >= 0x80 || (l[i] < ' ' && l[i] != '\t') || l[i] == 0x7f {
				bad("header %s: byte 0x%02x at %d is not printable ASCII (not RFC 2047-encoded)", field, l[i], i)
				break
			}
		}
		if len(l) > MaxLine {
			bad("header %s: line of %d characters (max %d)", field, len(l), MaxLine)
		}
		if len(l) > ShouldLine && field != "dkim-signature" {
			rest := strings.TrimLeft(l, " \t")
			if !continuation {
				_, rest, _ = strings.Cut(l, ":")
				rest = strings.TrimLeft(rest, " \t")
			}
			if strings.ContainsAny(rest, " \t") {
				bad("header %s: line of %d characters could have been folded: %q", field, len(l), trunc(l))
			}
		}
	}
	for _, f := range []string{"date", "message-id", "from", "to", "subject", "mime-version"} {
		if counts[f] != 1 {
			bad("%d %s fields, want exactly 1", counts[f], f)
		}
	}

	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		return append(errs, fmt.Errorf("net/mail cannot read it: %w", err))
	}
	h := msg.Header
	if _, err := mail.ParseDate(h.Get("Date")); err != nil {
		bad("Date %q: %v", h.Get("Date"), err)
	}
	id := h.Get("Message-Id")
	if m := msgIDRE.FindStringSubmatch(id); m == nil {
		bad("Message-ID %q is not <id@domain>", id)
	} else if o.FromAddress != "" {
		want := strings.ToLower(o.FromAddress[strings.LastIndexByte(o.FromAddress, '@')+1:])
		if strings.ToLower(m[1]) != want {
			bad("Message-ID %q is not on the From domain %s", id, want)
		}
	}
	from, err := mail.ParseAddress(h.Get("From"))
	if err != nil {
		bad("From %q: %v", h.Get("From"), err)
	} else if o.FromAddress != "" && from.Address != o.FromAddress {
		bad("From address %q, want %q", from.Address, o.FromAddress)
	}
	if _, err := mail.ParseAddress(h.Get("To")); err != nil {
		bad("To %q: %v", h.Get("To"), err)
	}
	if v := h.Get("Mime-Version"); v != "1.0" {
		bad("MIME-Version %q, want 1.0", v)
	}
	subject, err := new(mime.WordDecoder).DecodeHeader(h.Get("Subject"))
	if err != nil {
		bad("Subject %q does not decode: %v", h.Get("Subject"), err)
	} else if o.Subject != "" && subject != o.Subject {
		bad("Subject %q, want %q", subject, o.Subject)
	}

	p, err := Parse(raw)
	if err != nil {
		return append(errs, err)
	}
	if !utf8.ValidString(p.Text) || !utf8.ValidString(p.HTML) {
		bad("a part is not valid UTF-8")
	}
	if m := tagRE.FindString(p.Text); m != "" {
		bad("text/plain part has markup: %q", m)
	}
	if m := entityRE.FindString(p.Text); m != "" {
		bad("text/plain part has an HTML entity: %q", m)
	}
	if strings.Contains(strings.ToLower(p.HTML), "<script") {
		bad("text/html part has a script")
	}
	for i, l := range strings.Split(string(raw[end+4:]), "\r\n") {
		if len(l) > MaxLine {
			bad("body line %d has %d characters", i+1, len(l))
			break
		}
	}
	return errs
}

func trunc(s string) string {
	if len(s) > 60 {
		return s[:60] + "…"
	}
	return s
}
