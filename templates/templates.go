// Package templates holds herald's pages and emails in an embed.FS,
// parsed once at start so a broken template fails at boot, not at 7am.
// Files in Options.Dir (digest.templates_dir) override the built-in ones
// of the same name; every template is then tried on sample data (see
// data.go) in every language, and a broken one is an error naming its
// file and line. Each language gets its own copy of every template, with
// the functions t, tn, th and date speaking it (package locale).
package templates

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	stdhtml "html"
	htmltemplate "html/template"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	texttemplate "text/template"
	"time"

	"github.com/vanng822/go-premailer/premailer"

	"github.com/herald-dev/herald/locale"
)

//go:embed pages/*.html email/*.html email/*.txt static/*.js
var files embed.FS

// FS exposes the built-in files (for tools, tests and the docs).
func FS() fs.FS { return files }

// Options configure a Set.
type Options struct {
	// Dir holds files that override the built-in templates of the same
	// name (pages/NAME.html, email/NAME.html, email/NAME.txt); "" = none.
	Dir string
	// Site is the blog's name, address and look, .Site in every template.
	Site Site
	// Language is the default language ("" = "en").
	Language string
}

// Set is every template, parsed, in every language.
type Set struct {
	site    Site
	catalog *locale.Catalog
	// by language code
	langs map[string]*langSet
	// where each file came from, for errors: "email/digest.html" →
	// "/etc/herald/templates/email/digest.html" (or "templates/…" when built in)
	origin map[string]string
}

type langSet struct {
	lang      *locale.Lang
	pages     map[string]*htmltemplate.Template
	emailHTML map[string]*htmltemplate.Template
	emailText map[string]*texttemplate.Template
}

// stubs name the functions for the parse; each language's copy gets its own.
func stubs() map[string]any {
	en := &locale.Lang{}
	return funcsFor(en)
}

// funcsFor are the functions every template has, speaking l.
func funcsFor(l *locale.Lang) map[string]any {
	return map[string]any{
		// t "id" "Name" value …: the message id in the reader's language.
		"t": func(id string, args ...any) string { return l.T(id, args...) },
		// tn "id" n …: a message with plural forms; n is .Count in it.
		"tn": func(id string, n int, args ...any) string { return l.N(id, n, args...) },
		// th "id" …: a message that holds markup (<strong>); its
		// arguments are escaped, the message itself is ours.
		"th": func(id string, args ...any) htmltemplate.HTML {
			esc := make([]any, len(args))
			for i, a := range args {
				if i%2 == 1 {
					if h, ok := a.(htmltemplate.HTML); ok {
						esc[i] = string(h)
					} else {
						esc[i] = htmltemplate.HTMLEscapeString(fmt.Sprint(a))
					}
				} else {
					esc[i] = a
				}
			}
			return htmltemplate.HTML(l.T(id, esc...)) //nolint:gosec // messages are herald's own files
		},
		// plain is a message with markup as text, for text parts.
		"plain": func(h htmltemplate.HTML) string { return plainText(string(h)) },
		// dict builds a map for a sub-template: dict "URL" u "Label" l.
		"dict": func(kv ...any) map[string]any {
			m := make(map[string]any, len(kv)/2)
			for i := 0; i+1 < len(kv); i += 2 {
				k, _ := kv[i].(string)
				m[k] = kv[i+1]
			}
			return m
		},
		// duration is a time span in words: "7 days", "36 hours".
		"duration": l.Duration,
		"date":     l.Date,
		"lang":     l.Code,
		"lines": func(s string) []string {
			return strings.Split(strings.TrimSpace(strings.ReplaceAll(s, "\r\n", "\n")), "\n")
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
}

var tag = regexp.MustCompile(`<[^>]*>`)

// plainText drops the tags of a message's markup and decodes its entities.
func plainText(s string) string {
	return stdhtml.UnescapeString(tag.ReplaceAllString(s, ""))
}

// overlay reads a file from dir when it is there, else from the
// built-in files, and says where it came from.
type overlay struct {
	dir string
}

func (o overlay) read(name string) ([]byte, string, error) {
	if o.dir != "" {
		p := filepath.Join(o.dir, filepath.FromSlash(name))
		b, err := os.ReadFile(p)
		if err == nil {
			return b, p, nil
		} else if !errors.Is(err, fs.ErrNotExist) {
			return nil, p, fmt.Errorf("templates: %w", err)
		}
	}
	b, err := files.ReadFile(name)
	return b, "templates/" + name, err
}

// checkDir refuses files in dir that override nothing: a typo in a
// file name must not pass silently.
func checkDir(dir string) error {
	if dir == "" {
		return nil
	}
	st, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("templates: templates_dir: %w", err)
	}
	if !st.IsDir() {
		return fmt.Errorf("templates: templates_dir: %s is not a directory", dir)
	}
	var builtin []string
	_ = fs.WalkDir(files, ".", func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			builtin = append(builtin, p)
		}
		return nil
	})
	var bad []string
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || strings.HasPrefix(d.Name(), ".") {
			return nil
		}
		rel, _ := filepath.Rel(dir, p)
		if !slices.Contains(builtin, filepath.ToSlash(rel)) {
			bad = append(bad, p)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("templates: templates_dir: %w", err)
	}
	if len(bad) > 0 {
		sort.Strings(builtin)
		return fmt.Errorf("templates: %s: overrides no built-in template (the names are: %s)", strings.Join(bad, ", "), strings.Join(builtin, ", "))
	}
	return nil
}

// Load parses every template (the built-in ones, or those of opt.Dir in
// their place) in every language, and tries each on sample data. Pages
// share pages/layout.html, HTML emails email/layout.html.
func Load(opt Options) (*Set, error) {
	if opt.Language == "" {
		opt.Language = "en"
	}
	cat, err := locale.New(opt.Language)
	if err != nil {
		return nil, fmt.Errorf("templates: %w", err)
	}
	if err := checkDir(opt.Dir); err != nil {
		return nil, err
	}
	if opt.Site.Colors.Light.Accent == "" {
		opt.Site.Colors = NewPalette("")
	}
	s := &Set{site: opt.Site, catalog: cat, langs: map[string]*langSet{}, origin: map[string]string{}}
	o := overlay{dir: opt.Dir}
	read := func(name string) (string, error) {
		b, from, err := o.read(name)
		if err != nil {
			return "", err
		}
		s.origin[name] = from
		return string(b), nil
	}
	base := &langSet{
		pages:     map[string]*htmltemplate.Template{},
		emailHTML: map[string]*htmltemplate.Template{},
		emailText: map[string]*texttemplate.Template{},
	}
	// Parse once, with stand-in functions; each language clones.
	parseHTML := func(kind string, layout string) (map[string]*htmltemplate.Template, error) {
		out := map[string]*htmltemplate.Template{}
		lsrc, err := read(kind + "/" + layout + ".html")
		if err != nil {
			return nil, fmt.Errorf("templates: %w", err)
		}
		names, _ := fs.Glob(files, kind+"/*.html")
		for _, p := range names {
			name := strings.TrimSuffix(strings.TrimPrefix(p, kind+"/"), ".html")
			if name == layout {
				continue
			}
			body, err := read(p)
			if err != nil {
				return nil, fmt.Errorf("templates: %w", err)
			}
			t, err := htmltemplate.New(kind + "/" + layout + ".html").Funcs(stubs()).Parse(lsrc)
			if err == nil {
				_, err = t.New(p).Parse(body)
			}
			if err != nil {
				return nil, s.fileError(err)
			}
			out[name] = t
		}
		return out, nil
	}
	if base.pages, err = parseHTML("pages", "layout"); err != nil {
		return nil, err
	}
	if base.emailHTML, err = parseHTML("email", "layout"); err != nil {
		return nil, err
	}
	texts, _ := fs.Glob(files, "email/*.txt")
	for _, p := range texts {
		name := strings.TrimSuffix(strings.TrimPrefix(p, "email/"), ".txt")
		body, err := read(p)
		if err != nil {
			return nil, fmt.Errorf("templates: %w", err)
		}
		t, err := texttemplate.New(p).Funcs(stubs()).Parse(body)
		if err != nil {
			return nil, s.fileError(err)
		}
		for _, block := range []string{"subject", "preheader"} {
			if t.Lookup(block) == nil {
				return nil, fmt.Errorf("templates: %s: defines no {{define %q}} (every email's text part names its subject and preheader)", s.origin[p], block)
			}
		}
		base.emailText[name] = t
	}
	for name := range base.emailHTML {
		if base.emailText[name] == nil {
			return nil, fmt.Errorf("templates: email %s has an HTML part but no email/%s.txt", name, name)
		}
	}
	for _, code := range cat.Codes() {
		l := cat.Lang(code)
		ls := &langSet{lang: l, pages: map[string]*htmltemplate.Template{}, emailHTML: map[string]*htmltemplate.Template{}, emailText: map[string]*texttemplate.Template{}}
		f := funcsFor(l)
		for name, t := range base.pages {
			c, err := t.Clone()
			if err != nil {
				return nil, fmt.Errorf("templates: %w", err)
			}
			ls.pages[name] = c.Funcs(f)
		}
		for name, t := range base.emailHTML {
			c, err := t.Clone()
			if err != nil {
				return nil, fmt.Errorf("templates: %w", err)
			}
			ls.emailHTML[name] = c.Funcs(f)
		}
		for name, t := range base.emailText {
			c, err := t.Clone()
			if err != nil {
				return nil, fmt.Errorf("templates: %w", err)
			}
			ls.emailText[name] = c.Funcs(texttemplate.FuncMap(f))
		}
		s.langs[code] = ls
	}
	if err := s.try(); err != nil {
		return nil, err
	}
	return s, nil
}

// templateErr finds the template name and line in text/template's and
// html/template's messages ("template: NAME:LINE: …" or
// "template: NAME:LINE:COL: …").
var templateErr = regexp.MustCompile(`(?:html/)?template: ?([^:\s]+):(\d+)(?::\d+)?: `)

// fileError names the file (the override's path, or the built-in one)
// and the line of a template error.
func (s *Set) fileError(err error) error {
	msg := templateErr.ReplaceAllStringFunc(err.Error(), func(m string) string {
		sub := templateErr.FindStringSubmatch(m)
		if from, ok := s.origin[sub[1]]; ok {
			return from + ":" + sub[2] + ": "
		}
		return m
	})
	return fmt.Errorf("templates: %s", msg)
}

// try renders every template on its sample data in every language: what
// only fails when it runs (a field that does not exist, a function given
// the wrong arguments) fails here, at start.
func (s *Set) try() error {
	for _, code := range s.catalog.Codes() {
		for name := range s.langs[code].pages {
			if err := s.Page(io.Discard, code, name, SamplePage(name)); err != nil {
				return err
			}
		}
		for name := range s.langs[code].emailHTML {
			data := SampleEmail(name)
			if data == nil {
				return fmt.Errorf("templates: email %s has no sample data (templates/data.go)", name)
			}
			if _, err := s.Email(code, name, data); err != nil {
				return err
			}
		}
	}
	return nil
}

// Overrides lists the templates a templates_dir replaced, by name
// ("email/digest.html"), sorted.
func (s *Set) Overrides() []string {
	var out []string
	for name, from := range s.origin {
		if from != "templates/"+name {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

// Site is the branding every template gets as .Site.
func (s *Set) Site() Site { return s.site }

// Catalog is the languages.
func (s *Set) Catalog() *locale.Catalog { return s.catalog }

// Lang is the language with code (the default when there is none).
func (s *Set) Lang(code string) *locale.Lang { return s.catalog.Lang(code) }

func (s *Set) langSet(code string) *langSet {
	if ls := s.langs[code]; ls != nil {
		return ls
	}
	return s.langs[s.catalog.Default()]
}

// Page renders a page in language lang into w. data is a map: the
// layout reads .Title and .Nonce from it, and gets .Site.
func (s *Set) Page(w io.Writer, lang, name string, data map[string]any) error {
	t, ok := s.langSet(lang).pages[name]
	if !ok {
		return fmt.Errorf("templates: no page %q", name)
	}
	if data == nil {
		data = map[string]any{}
	}
	data["Site"] = s.site
	// Render to a buffer first: a template error must not leave half a page.
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "pages/"+name+".html", data); err != nil {
		return s.fileError(err)
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
func (s *Set) HasPage(name string) bool { _, ok := s.langSet("").pages[name]; return ok }

// Subject renders only an email's subject (its "subject" block).
func (s *Set) Subject(lang, name string, data EmailData) (string, error) {
	tt, ok := s.langSet(lang).emailText[name]
	if !ok {
		return "", fmt.Errorf("templates: no email %q", name)
	}
	e := data.email()
	e.Site = s.site
	var b strings.Builder
	if err := tt.ExecuteTemplate(&b, "subject", data); err != nil {
		return "", s.fileError(err)
	}
	return strings.Join(strings.Fields(b.String()), " "), nil
}

// Rendered is an email's parts.
type Rendered struct {
	Subject string
	HTML    string // CSS inlined
	Text    string
}

// Email renders an email in language lang: its subject and preheader
// (the "subject" and "preheader" blocks of its text part), then both
// parts, the HTML with its CSS inlined.
func (s *Set) Email(lang, name string, data EmailData) (*Rendered, error) {
	ls := s.langSet(lang)
	ht, ok := ls.emailHTML[name]
	if !ok {
		return nil, fmt.Errorf("templates: no email %q", name)
	}
	tt := ls.emailText[name]
	e := data.email()
	e.Site = s.site
	var b strings.Builder
	if err := tt.ExecuteTemplate(&b, "subject", data); err != nil {
		return nil, s.fileError(err)
	}
	e.Subject = strings.Join(strings.Fields(b.String()), " ")
	b.Reset()
	if err := tt.ExecuteTemplate(&b, "preheader", data); err != nil {
		return nil, s.fileError(err)
	}
	e.Preheader = strings.Join(strings.Fields(b.String()), " ")
	var hb, tb bytes.Buffer
	if err := ht.ExecuteTemplate(&hb, "email/"+name+".html", data); err != nil {
		return nil, s.fileError(err)
	}
	if err := tt.Execute(&tb, data); err != nil {
		return nil, s.fileError(err)
	}
	html, err := inline(hb.String())
	if err != nil {
		return nil, err
	}
	return &Rendered{Subject: e.Subject, HTML: html, Text: strings.TrimSpace(tb.String()) + "\n"}, nil
}

// Outlook for Windows knows no max-width: the card sits in a 600px table
// only it sees. The CSS inliner drops comments, so the layout marks the
// places with elements of these names, and inline writes the comments in.
var msoGhost = strings.NewReplacer(
	"<mso-open></mso-open>", `<!--[if mso]><table role="presentation" align="center" width="600" cellpadding="0" cellspacing="0" border="0"><tr><td><![endif]-->`,
	"<mso-close></mso-close>", `<!--[if mso]></td></tr></table><![endif]-->`,
)

// inline moves the <style> rules onto the elements (clients that drop
// <style> still get them); @media rules (dark mode, small screens) stay.
func inline(html string) (string, error) {
	opt := premailer.NewOptions()
	pm, err := premailer.NewPremailerFromString(html, opt)
	if err != nil {
		return "", fmt.Errorf("templates: inline css: %w", err)
	}
	out, err := pm.Transform()
	if err != nil {
		return "", fmt.Errorf("templates: inline css: %w", err)
	}
	return msoGhost.Replace(out), nil
}
