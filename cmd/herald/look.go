package main

import (
	"net/mail"
	"net/url"
	"strings"

	"github.com/herald-dev/herald/api"
	"github.com/herald-dev/herald/digest"
	"github.com/herald-dev/herald/locale"
	"github.com/herald-dev/herald/templates"
)

// validateLook checks the blog's look, its languages and its templates:
// [site] logo_url, accent_color, footer, language, mail.reply_to,
// digest.content and digest.templates_dir (whose templates are parsed and
// tried here, so check-config names a broken one's file and line).
func (c *Config) validateLook(bad func(key, format string, args ...any)) {
	if c.Site.LogoURL != "" {
		if u, err := url.Parse(c.Site.LogoURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad("site.logo_url", "want an absolute http(s) URL (emails load it from there), got %q", c.Site.LogoURL)
		}
	}
	if err := templates.CheckAccent(c.Site.AccentColor); err != nil {
		bad("site.accent_color", "%v", err)
	}
	if len(c.Site.Footer) > 2000 {
		bad("site.footer", "is %d bytes long; keep it under 2000 (an address, a line of thanks)", len(c.Site.Footer))
	}
	langOK := true
	if _, err := locale.New(c.Site.Language); err != nil {
		langOK = false
		bad("site.language", "%s", strings.TrimPrefix(err.Error(), "locale: "))
	}
	if c.Mail.ReplyTo != "" {
		if a, err := mail.ParseAddress(c.Mail.ReplyTo); err != nil || strings.ContainsAny(c.Mail.ReplyTo, "\r\n") || !strings.Contains(a.Address, "@") {
			bad("mail.reply_to", "not an address like \"Ada <ada@blog.example.org>\": %q", c.Mail.ReplyTo)
		}
	}
	switch digest.Content(c.Digest.Content) {
	case digest.ContentSummary, digest.ContentFull:
	default:
		bad("digest.content", "want \"summary\" or \"full\", got %q", c.Digest.Content)
	}
	if c.Digest.TemplatesDir != "" && langOK {
		if _, err := c.Templates(); err != nil {
			bad("digest.templates_dir", "%s", strings.TrimPrefix(err.Error(), "templates: "))
		}
	}
}

// Look is the look templates give every page and email.
func (c *Config) Look() templates.Site {
	return templates.Site{
		Name: c.Site.Name, URL: c.Site.URL, LogoURL: c.Site.LogoURL, Footer: strings.TrimSpace(c.Site.Footer),
		Colors: templates.NewPalette(c.Site.AccentColor),
	}
}

// Templates loads the templates with the config's look, languages and
// templates_dir.
func (c *Config) Templates() (*templates.Set, error) {
	return templates.Load(templates.Options{Dir: c.Digest.TemplatesDir, Site: c.Look(), Language: c.Site.Language})
}

// LookAPI is the look as GET /api/v1/look shows it.
func (c *Config) LookAPI() *api.Look {
	return &api.Look{
		Name: c.Site.Name, URL: c.Site.URL, LogoURL: c.Site.LogoURL, AccentColor: c.Site.AccentColor,
		Footer: strings.TrimSpace(c.Site.Footer), ReplyTo: c.Mail.ReplyTo, Content: c.Digest.Content, TemplatesDir: c.Digest.TemplatesDir,
	}
}
