package herald

import (
	"net/mail"
	"net/netip"
	"strings"
	"unicode/utf8"
)

// MaxEmailLen is the longest address accepted (RFC 5321 path limit).
const MaxEmailLen = 254

// MaxNameLen is the longest display name accepted, in characters.
const MaxNameLen = 100

// NormalizeEmail checks an address typed by a person and returns its
// normal form: surrounding space trimmed, domain lower-cased, local part
// kept as typed (it may be case-sensitive). It refuses CR/LF anywhere,
// display names, over-long addresses and domains without a dot.
func NormalizeEmail(s string) (string, error) {
	if strings.ContainsAny(s, "\r\n") {
		return "", Errorf(EINVALID, "email address must not contain line breaks").WithField("email")
	}
	s = strings.TrimSpace(s)
	if s == "" {
		return "", Errorf(EINVALID, "email address is required").WithField("email")
	}
	if len(s) > MaxEmailLen {
		return "", Errorf(EINVALID, "email address is longer than %d characters", MaxEmailLen).WithField("email")
	}
	if !utf8.ValidString(s) {
		return "", Errorf(EINVALID, "email address is not valid UTF-8").WithField("email")
	}
	addr, err := mail.ParseAddress(s)
	if err != nil || addr.Name != "" || addr.Address != s {
		return "", Errorf(EINVALID, "%q is not a valid email address", s).WithField("email")
	}
	at := strings.LastIndexByte(s, '@')
	local, domain := s[:at], strings.ToLower(s[at+1:])
	if local == "" || !strings.Contains(domain, ".") || strings.HasPrefix(domain, ".") ||
		strings.HasSuffix(domain, ".") || strings.Contains(domain, "..") || strings.ContainsAny(s, " \t<>\"") {
		return "", Errorf(EINVALID, "%q is not a valid email address", s).WithField("email")
	}
	return local + "@" + domain, nil
}

// CleanName checks a display name: no CR/LF or other control characters,
// at most MaxNameLen characters. Surrounding space is trimmed.
func CleanName(s string) (string, error) {
	if strings.ContainsAny(s, "\r\n") {
		return "", Errorf(EINVALID, "name must not contain line breaks").WithField("name")
	}
	if !utf8.ValidString(s) {
		return "", Errorf(EINVALID, "name is not valid UTF-8").WithField("name")
	}
	s = strings.TrimSpace(s)
	if utf8.RuneCountInString(s) > MaxNameLen {
		return "", Errorf(EINVALID, "name is longer than %d characters", MaxNameLen).WithField("name")
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return "", Errorf(EINVALID, "name must not contain control characters").WithField("name")
		}
	}
	return s, nil
}

// LocalHost says whether a host name or address can only mean this
// machine or a private network: nobody on the internet reaches it.
func LocalHost(h string) bool {
	h = strings.TrimSuffix(strings.ToLower(h), ".")
	if h == "" {
		return true
	}
	if ip, err := netip.ParseAddr(h); err == nil {
		return ip.IsLoopback() || ip.IsPrivate() || ip.IsUnspecified() || ip.IsLinkLocalUnicast()
	}
	if !strings.Contains(h, ".") {
		return true // "localhost", a bare machine name
	}
	for _, suffix := range []string{".localhost", ".localdomain", ".local", ".internal", ".lan", ".home.arpa", ".test", ".invalid"} {
		if strings.HasSuffix(h, suffix) {
			return true
		}
	}
	return false
}
