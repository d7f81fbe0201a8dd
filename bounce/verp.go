package bounce

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base32"
	"fmt"
	"net/mail"
	"strings"
)

// VERP gives each message a return path of its own that names the
// reader: bounces@blog.example.org becomes
// bounces+k3j9x2qa.alice=example.net@blog.example.org for alice@example.net.
// Whatever a remote server writes in its bounce, it sends it to that
// address, so the reader is known without reading the report. The tag is
// an HMAC of the address: a forged bounce cannot name another reader.
type VERP struct {
	local, domain string
	key           []byte
}

var tagEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

const tagLen = 8

// NewVERP returns the VERP scheme for a return path address; the mailbox
// behind it must take mail for "local+anything@domain" (plus addressing,
// which Gmail, Fastmail, Postfix's recipient_delimiter and most hosts offer).
func NewVERP(returnPath string, key []byte) (*VERP, error) {
	a, err := mail.ParseAddress(returnPath)
	if err != nil {
		return nil, fmt.Errorf("bounce: return path %q: %w", returnPath, err)
	}
	local, domain, ok := strings.Cut(a.Address, "@")
	if !ok || local == "" || domain == "" || strings.Contains(local, "+") {
		return nil, fmt.Errorf("bounce: return path %q: want a plain address like bounces@blog.example.org", returnPath)
	}
	if len(key) == 0 {
		return nil, fmt.Errorf("bounce: VERP needs a key")
	}
	return &VERP{local: strings.ToLower(local), domain: strings.ToLower(domain), key: key}, nil
}

func (v *VERP) tag(rcpt string) string {
	m := hmac.New(sha256.New, v.key)
	m.Write([]byte(strings.ToLower(rcpt)))
	return tagEncoding.EncodeToString(m.Sum(nil))[:tagLen]
}

// Address is the return path for mail to rcpt.
func (v *VERP) Address(rcpt string) string {
	i := strings.LastIndexByte(rcpt, '@')
	if i <= 0 {
		return v.local + "@" + v.domain
	}
	return v.local + "+" + v.tag(rcpt) + "." + rcpt[:i] + "=" + rcpt[i+1:] + "@" + v.domain
}

// Recipient reads the reader's address back from a return path; ok is
// false for any other address or a tag that does not match.
func (v *VERP) Recipient(addr string) (rcpt string, ok bool) {
	addr = strings.ToLower(strings.Trim(strings.TrimSpace(addr), "<>"))
	at := strings.LastIndexByte(addr, '@')
	if at < 0 || addr[at+1:] != v.domain {
		return "", false
	}
	rest, ok := strings.CutPrefix(addr[:at], v.local+"+")
	if !ok || len(rest) < tagLen+1 || rest[tagLen] != '.' {
		return "", false
	}
	tag, enc := rest[:tagLen], rest[tagLen+1:]
	eq := strings.LastIndexByte(enc, '=')
	if eq <= 0 || eq == len(enc)-1 {
		return "", false
	}
	rcpt = enc[:eq] + "@" + enc[eq+1:]
	if !hmac.Equal([]byte(tag), []byte(v.tag(rcpt))) {
		return "", false
	}
	return rcpt, true
}
