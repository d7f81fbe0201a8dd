// Package locale is herald's languages: the message files of every page
// and email (nicksnyder/go-i18n, one TOML file per language), the choice
// of a reader's language (golang.org/x/text/language's matcher over
// ?lang= and Accept-Language), and dates written in that language.
package locale

import (
	"embed"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/nicksnyder/go-i18n/v2/i18n"
	"golang.org/x/text/language"
	"golang.org/x/text/language/display"
)

//go:embed messages/*.toml
var builtin embed.FS

// Messages is the built-in message files, messages/<lang>.toml.
func Messages() fs.FS { return builtin }

// Catalog is every language herald speaks, loaded once at start. It is
// safe for concurrent use.
type Catalog struct {
	bundle  *i18n.Bundle
	def     string
	codes   []string // the default first, then the others sorted
	matcher language.Matcher
	langs   map[string]*Lang
}

// Lang is one language: its messages and its way of writing dates.
type Lang struct {
	code string
	loc  *i18n.Localizer
	ids  map[string]bool // the messages its own file has
}

// New loads the built-in languages and makes def (a code of one of them,
// e.g. "en") the default: pages and emails fall back to it.
func New(def string) (*Catalog, error) {
	b := i18n.NewBundle(language.English)
	b.RegisterUnmarshalFunc("toml", toml.Unmarshal)
	files, err := fs.Glob(builtin, "messages/*.toml")
	if err != nil {
		return nil, fmt.Errorf("locale: %w", err)
	}
	var codes []string
	ids := map[string]map[string]bool{}
	for _, f := range files {
		mf, err := b.LoadMessageFileFS(builtin, f)
		if err != nil {
			return nil, fmt.Errorf("locale: %s: %w", f, err)
		}
		code := strings.TrimSuffix(path.Base(f), ".toml")
		codes = append(codes, code)
		ids[code] = map[string]bool{}
		for _, m := range mf.Messages {
			ids[code][m.ID] = true
		}
	}
	if !slices.Contains(codes, def) {
		return nil, fmt.Errorf("locale: no language %q (have %s)", def, strings.Join(codes, ", "))
	}
	// The default goes first: the matcher falls back to its first tag.
	slices.Sort(codes)
	codes = slices.DeleteFunc(codes, func(c string) bool { return c == def })
	codes = append([]string{def}, codes...)
	c := &Catalog{bundle: b, def: def, codes: codes, langs: map[string]*Lang{}}
	tags := make([]language.Tag, len(codes))
	for i, code := range codes {
		tags[i] = language.Make(code)
		c.langs[code] = &Lang{code: code, loc: i18n.NewLocalizer(b, code), ids: ids[code]}
	}
	c.matcher = language.NewMatcher(tags)
	return c, nil
}

// Default is the default language's code.
func (c *Catalog) Default() string { return c.def }

// Codes lists the languages, the default first.
func (c *Catalog) Codes() []string { return slices.Clone(c.codes) }

// Lang returns the language with code, or the default when there is none.
func (c *Catalog) Lang(code string) *Lang {
	if l := c.langs[code]; l != nil {
		return l
	}
	return c.langs[c.def]
}

// Has reports whether code is one of the languages.
func (c *Catalog) Has(code string) bool { return c.langs[code] != nil }

// Parse reads a language a person or a program gave ("de", "de-AT",
// "DE"): the code of the closest language herald speaks, or an error
// when it speaks none near it. "" is "" (not given).
func (c *Catalog) Parse(s string) (string, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return "", nil
	}
	tag, err := language.Parse(s)
	if err == nil {
		// The same language, whatever its region or script: the matcher
		// alone would take a language it finds close enough to one of ours.
		base, _ := tag.Base()
		for _, code := range c.codes {
			if b, _ := language.Make(code).Base(); b == base {
				return code, nil
			}
		}
	}
	return "", fmt.Errorf("unknown language %q (want one of %s)", s, strings.Join(c.codes, ", "))
}

// Match picks a visitor's language: ?lang= first (when herald speaks
// it), then the browser's Accept-Language, else the default.
func (c *Catalog) Match(query, acceptLanguage string) string {
	if code, err := c.Parse(query); err == nil && code != "" {
		return code
	}
	if acceptLanguage == "" {
		return c.def
	}
	tags, _, err := language.ParseAcceptLanguage(acceptLanguage)
	if err != nil || len(tags) == 0 {
		return c.def
	}
	_, i, conf := c.matcher.Match(tags...)
	if conf == language.No {
		return c.def
	}
	return c.codes[i]
}

// Name is a language's own name for itself ("Deutsch"), for a language
// menu.
func (c *Catalog) Name(code string) string {
	t := language.Make(code)
	if n := display.Self.Name(t); n != "" {
		return strings.ToUpper(n[:1]) + n[1:]
	}
	return code
}

// MissingMessages lists, per language, the messages the default
// language has and it lacks (and those it has that the default lacks,
// prefixed with "+"): empty when every language is complete.
func MissingMessages(fsys fs.FS) (map[string][]string, error) {
	files, err := fs.Glob(fsys, "messages/*.toml")
	if err != nil {
		return nil, err
	}
	ids := map[string]map[string]bool{}
	for _, f := range files {
		var m map[string]any
		b, err := fs.ReadFile(fsys, f)
		if err != nil {
			return nil, err
		}
		if err := toml.Unmarshal(b, &m); err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		set := map[string]bool{}
		for k := range m {
			set[k] = true
		}
		ids[strings.TrimSuffix(path.Base(f), ".toml")] = set
	}
	out := map[string][]string{}
	for code, set := range ids {
		for id := range ids["en"] {
			if !set[id] {
				out[code] = append(out[code], id)
			}
		}
		for id := range set {
			if !ids["en"][id] {
				out[code] = append(out[code], "+"+id)
			}
		}
		slices.Sort(out[code])
		if len(out[code]) == 0 {
			delete(out, code)
		}
	}
	return out, nil
}

// Code is the language's code ("de"), for lang attributes.
func (l *Lang) Code() string { return l.code }

// T is message id with its arguments given as name, value pairs. A
// message missing in this language falls back to the default language's;
// one missing everywhere comes out as its id, so a typo shows in the
// page rather than failing it (the tests check every id exists).
func (l *Lang) T(id string, args ...any) string {
	return l.localize(id, nil, args)
}

// Has reports whether the language's own file has message id (T falls
// back to the default language's otherwise).
func (l *Lang) Has(id string) bool { return l.ids[id] }

// N is T for a message with plural forms, chosen by n; the message gets
// n as .Count.
func (l *Lang) N(id string, n int, args ...any) string {
	return l.localize(id, n, append(args, "Count", n))
}

func (l *Lang) localize(id string, count any, args []any) string {
	data := make(map[string]any, len(args)/2)
	for i := 0; i+1 < len(args); i += 2 {
		k, _ := args[i].(string)
		data[k] = args[i+1]
	}
	s, err := l.loc.Localize(&i18n.LocalizeConfig{MessageID: id, TemplateData: data, PluralCount: count})
	if s == "" && err != nil {
		return id
	}
	return s
}

// Date writes a day as people of this language do: "2 March 2026",
// "2. März 2026", "2 mars 2026", "2 de marzo de 2026".
func (l *Lang) Date(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return l.T("date", "Day", t.Day(), "Month", l.Month(t.Month()), "Year", strconv.Itoa(t.Year()))
}

// DateTime writes a moment with its weekday and time of day, as people
// of this language do: "Monday 2 March 2026 at 07:00", "Montag,
// 2. März 2026 um 07:00". t is shown in its own location.
func (l *Lang) DateTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return l.T("date_time", "Weekday", l.T("weekday_"+strconv.Itoa(int(t.Weekday()))), "Date", l.Date(t), "Time", t.Format("15:04"))
}

// Duration writes a span of time in words, as long as it is exact:
// "7 days", "36 hours", "1 hour", "90 minutes".
func (l *Lang) Duration(d time.Duration) string {
	switch {
	case d >= 48*time.Hour && d%(24*time.Hour) == 0:
		return l.N("duration_days", int(d/(24*time.Hour)))
	case d >= time.Hour && d%time.Hour == 0:
		return l.N("duration_hours", int(d/time.Hour))
	default:
		return l.N("duration_minutes", int(d/time.Minute))
	}
}

// Month is a month's name in this language.
func (l *Lang) Month(m time.Month) string {
	return l.T("month_" + strconv.Itoa(int(m)))
}
