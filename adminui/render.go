package adminui

import (
	"bytes"
	"embed"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/herald-dev/herald/api"
)

//go:embed templates/*.html
var files embed.FS

type pageSet struct {
	pages map[string]*template.Template
}

// funcs are the templates' helpers; times are shown in loc
// (digest.timezone), with the zone's name, so the owner reads them as
// the schedules do.
func funcs(loc *time.Location) template.FuncMap {
	when := func(t any, layout string) string {
		switch v := t.(type) {
		case time.Time:
			if !v.IsZero() {
				return v.In(loc).Format(layout)
			}
		case *time.Time:
			if v != nil && !v.IsZero() {
				return v.In(loc).Format(layout)
			}
		}
		return "—"
	}
	return template.FuncMap{
		"datetime": func(t any) string { return when(t, "2 Jan 2006 15:04 MST") },
		"date":     func(t any) string { return when(t, "2 Jan 2006") },
		// isotime is for <time datetime>: the instant, in UTC.
		"isotime": func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
		"num":     func(n int) string { return thousands(int64(n)) },
		"int":     func(n int64) int { return int(n) },
		"title": func(v any) string { // a string, or a herald.Frequency, Status...
			s := fmt.Sprint(v)
			if s == "" {
				return s
			}
			return strings.ToUpper(s[:1]) + s[1:]
		},
		"pathesc":  url.PathEscape,
		"queryesc": url.QueryEscape,
		"add":      func(a, b int) int { return a + b },
		"join":     strings.Join,
	}
}

func thousands(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// loadPages parses every page with the shared layout, once, at New.
func loadPages(loc *time.Location) (*pageSet, error) {
	layout, err := files.ReadFile("templates/layout.html")
	if err != nil {
		return nil, fmt.Errorf("adminui: %w", err)
	}
	names, err := fs.Glob(files, "templates/*.html")
	if err != nil {
		return nil, fmt.Errorf("adminui: %w", err)
	}
	ps := &pageSet{pages: map[string]*template.Template{}}
	for _, p := range names {
		name := strings.TrimSuffix(strings.TrimPrefix(p, "templates/"), ".html")
		if name == "layout" {
			continue
		}
		body, err := files.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("adminui: %w", err)
		}
		t, err := template.New("layout").Funcs(funcs(loc)).Parse(string(layout))
		if err == nil {
			_, err = t.New(name).Parse(string(body))
		}
		if err != nil {
			return nil, fmt.Errorf("adminui: template %s: %w", name, err)
		}
		ps.pages[name] = t
	}
	return ps, nil
}

// view is what every page template gets.
type view struct {
	Title    string
	Active   string // the nav entry to highlight
	Site     string
	Nonce    string
	CSRF     string
	LoggedIn bool
	Flash    *flash
	Data     any
}

func (u *UI) render(w http.ResponseWriter, r *http.Request, status int, name string, v *view) {
	t := u.pages.pages[name]
	if t == nil {
		u.log.Error("adminui: no such template", "page", name)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	v.Site = u.opt.SiteName
	v.Nonce = u.opt.Nonce(r)
	if sess := sessionFrom(r); sess != nil {
		v.LoggedIn = true
		if v.CSRF == "" {
			v.CSRF = sess.csrf
		}
		if v.Flash == nil {
			v.Flash = u.sessions.takeFlash(sess)
		}
	}
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, name, v); err != nil {
		u.log.Error("adminui: render", "page", name, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		_, _ = w.Write(buf.Bytes())
	}
}

type failData struct {
	Message string
	Status  int
}

// fail renders the error page.
func (u *UI) fail(w http.ResponseWriter, r *http.Request, status int, msg string) {
	u.render(w, r, status, "error", &view{Title: http.StatusText(status), Data: failData{Message: msg, Status: status}})
}

// failErr renders the error page for an API error.
func (u *UI) failErr(w http.ResponseWriter, r *http.Request, err error) {
	status := api.StatusOf(err)
	if status == 0 {
		u.log.Error("adminui: API call", "path", r.URL.Path, "err", err)
		status = http.StatusInternalServerError
	}
	u.fail(w, r, status, userMessage(err))
}

// redirectFlash sends the browser to target with a message for the next page.
func (u *UI) redirectFlash(w http.ResponseWriter, r *http.Request, target, msg string, isErr bool) {
	if sess := sessionFrom(r); sess != nil && msg != "" {
		u.sessions.setFlash(sess, flash{Text: msg, Error: isErr})
	}
	http.Redirect(w, r, target, http.StatusSeeOther)
}

func (u *UI) notFound(w http.ResponseWriter, r *http.Request) {
	u.fail(w, r, http.StatusNotFound, "There is no admin page at this address.")
}
