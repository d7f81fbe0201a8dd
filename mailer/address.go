package mailer

import (
	"mime"
	"net/mail"
	"strings"
)

// formatAddress is (*mail.Address).String, except for a non-ASCII display
// name with a backslash: net/mail Q-encodes such a name and leaves the
// backslash in the encoded word raw, which RFC 2047 (5.3) does not allow
// in a phrase, and net/mail itself then cannot parse the header back.
// Such a name is B-encoded instead (as net/mail does for quotes, commas
// and the like).
func formatAddress(a *mail.Address) string {
	s := a.String()
	if a.Name == "" || isASCII(a.Name) || !strings.ContainsRune(a.Name, '\\') {
		return s
	}
	return mime.BEncoding.Encode("utf-8", a.Name) + " " + (&mail.Address{Address: a.Address}).String()
}
