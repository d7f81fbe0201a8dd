package main

import (
	"fmt"
	"net/mail"
	"net/url"
	"strings"

	"github.com/herald-dev/herald"
)

// Warnings are settings that work but would hurt in production, each
// starting with its key. This is the one list: serve logs it and prints
// it at start, the admin dashboard shows it, check-config prints it.
func (c *Config) Warnings() []string {
	var ws []string
	add := func(format string, args ...any) { ws = append(ws, fmt.Sprintf(format, args...)) }
	smtp := c.Mail.Transport == "smtp" || c.Mail.Transport == "ses" // mail leaves this machine
	base, _ := url.Parse(c.Server.BaseURL)
	if smtp && base != nil && herald.LocalHost(base.Hostname()) {
		add("server.base_url %q points at this machine while mail goes out by SMTP: every link in every email (confirm, unsubscribe, preferences) will be dead for readers; set it to herald's public address", c.Server.BaseURL)
	} else if smtp && base != nil && base.Scheme == "http" {
		add("server.base_url %q is plain http while mail goes out by SMTP: readers' links are unencrypted; set server.tls = \"auto\" or put herald behind a TLS proxy", c.Server.BaseURL)
	}
	fromDomain := ""
	if a, err := mail.ParseAddress(c.Mail.From); err == nil {
		fromDomain = strings.ToLower(a.Address[strings.LastIndexByte(a.Address, '@')+1:])
	}
	if smtp && herald.LocalHost(strings.Trim(fromDomain, "[]")) {
		add("mail.from %q is a local address while mail goes out by SMTP: receivers will reject it or file it as spam; use an address at your blog's domain", c.Mail.From)
	}
	if c.Mail.Transport == "file" {
		add("mail.transport = \"file\": mail is written to %s, not sent; set mail.transport = \"smtp\" and [smtp] to send it", c.Mail.OutboxDir)
	}
	if c.Admin.Token == "" {
		add("admin.token is empty: the admin UI and API are disabled; set it (or HERALD_ADMIN_TOKEN) to a long random string")
	}
	if len(c.Feeds) == 0 {
		add("no [[feeds]]: herald watches no blog, so posts only come in through POST /api/v1/posts")
	}
	if c.DKIM.Domain == "" {
		add("dkim.domain is empty: mail is not DKIM-signed and is more likely to land in spam; run `herald dkim-keygen` and set [dkim]")
	} else if fromDomain != "" && !herald.LocalHost(fromDomain) { // a local from is warned about above
		d := strings.ToLower(c.DKIM.Domain)
		if fromDomain != d && !strings.HasSuffix(fromDomain, "."+d) {
			add("dkim.domain %q does not align with the domain of mail.from (%q): DMARC will not pass on DKIM", c.DKIM.Domain, fromDomain)
		}
	}
	if c.Site.URL == "" {
		add("site.url is empty: pages and emails have no link back to the blog, and the blog's own pages cannot POST the form as JSON (CORS)")
	}
	if c.Server.TLS != "auto" && len(c.Server.TLSDomains) > 0 {
		add("server.tls_domains is set but server.tls is %q: no certificates are requested", c.Server.TLS)
	}
	return ws
}
