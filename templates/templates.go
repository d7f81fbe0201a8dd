// Package templates holds herald's pages and emails in an embed.FS, parsed
// once at start so a broken template fails at boot, not at 7am.
package templates

import (
	"bytes"
	"embed"
	"fmt"
	htmltemplate "html/template"
	"io"
	"io/fs"
	"strings"
	texttemplate "text/template"
	"time"
)

//go:embed pages/*.html email/*.html email/*.txt static/*.js
var files embed.FS

// FS exposes the raw files (for tools and tests).
func FS() fs.FS { return files }

// Set is every template, parsed.
type Set struct {
	pages     map[string]*htmltemplate.Template
	emailHTML map[string]*htmltemplate.Template
	emailText map[string]*texttemplate.Template
}

var funcs = map[string]any{
	"date": func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.Format("2 January 2006")
	},
	"datetime": func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.UTC().Format("2006-01-02 15:04 UTC")
	},
	"eq": func(a, b any) bool { return fmt.Sprint(a) == fmt.Sprint(b) },
	"title": func(s string) string {
		if s == "" {
			return s
		}
		return strings.ToUpper(s[:1]) + s[1:]
	},
}

// Load parses every template. Pages share pages/layout.html.
func Load() (*Set, error) {
	s := &Set{
		pages:     map[string]*htmltemplate.Template{},
		emailHTML: map[string]*htmltemplate.Template{},
		emailText: map[string]*texttemplate.Template{},
	}
	layout, err := files.ReadFile("pages/layout.html")
	if err != nil {
		return nil, fmt.Errorf("templates: %w", err)
	}
	pages, _ := fs.Glob(files, "pages/*.html")
	for _, p := range pages {
		name := strings.TrimSuffix(strings.TrimPrefix(p, "pages/"), ".html")
		if name == "layout" {
			continue
		}
		body, err := files.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("templates: %w", err)
		}
		t, err := htmltemplate.New("layout").Funcs(funcs).Parse(string(layout))
		if err == nil {
			_, err = t.New(name).Parse(string(body))
		}
		if err != nil {
			return nil, fmt.Errorf("templates: page %s: %w", name, err)
		}
		s.pages[name] = t
	}
	emailLayout, err := files.ReadFile("email/layout.html")
	if err != nil {
		return nil, fmt.Errorf("templates: %w", err)
	}
	htmls, _ := fs.Glob(files, "email/*.html")
	for _, p := range htmls {
		name := strings.TrimSuffix(strings.TrimPrefix(p, "email/"), ".html")
		if name == "layout" {
			continue
		}
		body, _ := files.ReadFile(p)
		t, err := htmltemplate.New("layout").Funcs(funcs).Parse(string(emailLayout))
		if err == nil {
			_, err = t.New(name).Parse(string(body))
		}
		if err != nil {
			return nil, fmt.Errorf("templates: email %s.html: %w", name, err)
		}
		s.emailHTML[name] = t
	}
	texts, _ := fs.Glob(files, "email/*.txt")
	for _, p := range texts {
		name := strings.TrimSuffix(strings.TrimPrefix(p, "email/"), ".txt")
		body, _ := files.ReadFile(p)
		t, err := texttemplate.New(name).Funcs(funcs).Parse(string(body))
		if err != nil {
			return nil, fmt.Errorf("templates: email %s.txt: %w", name, err)
		}
		s.emailText[name] = t
	}
	for name := range s.emailHTML {
		if s.emailText[name] == nil {
			return nil, fmt.Errorf("templates: email %s has an HTML part but no email/%s.txt", name, name)
		}
	}
	return s, nil
}

// Page renders a page into w. data is usually a map or a struct with the
// fields the page uses; layout reads .Site, .Title and .Nonce.
func (s *Set) Page(w io.Writer, name string, data any) error {
	t, ok := s.pages[name]
	if !ok {
		return fmt.Errorf("templates: no page %q", name)
	}
	// Render to a buffer first: a template error must not leave half a page.
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, name, data); err != nil {
		return fmt.Errorf("templates: page %s: %w", name, err)
	}
	_, err := buf.WriteTo(w)
	return err
}

// Script returns a script of static/ (the pages load them from herald
// itself, under its CSP nonce); false when there is none by that name.
func Script(name string) ([]byte, bool) {
	if strings.ContainsAny(name, "/\\") || !strings.HasSuffix(name, ".js") {
		return nil, false
	}
	b, err := files.ReadFile("static/" + name)
	return b, err == nil
}

// HasPage reports whether a page exists.
func (s *Set) HasPage(name string) bool { _, ok := s.pages[name]; return ok }

// Email renders both parts of an email.
func (s *Set) Email(name string, data any) (html, text string, err error) {
	ht, ok := s.emailHTML[name]
	if !ok {
		return "", "", fmt.Errorf("templates: no email %q", name)
	}
	var hb, tb bytes.Buffer
	if err := ht.ExecuteTemplate(&hb, name, data); err != nil {
		return "", "", fmt.Errorf("templates: email %s.html: %w", name, err)
	}
	if err := s.emailText[name].Execute(&tb, data); err != nil {
		return "", "", fmt.Errorf("templates: email %s.txt: %w", name, err)
	}
	return hb.String(), tb.String(), nil
}
