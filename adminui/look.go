package adminui

import (
	"net/http"

	"golang.org/x/text/language"
	"golang.org/x/text/language/display"

	"github.com/herald-dev/herald/api"
)

type lookData struct {
	Look  *api.Look
	Lang  string
	Langs []lookLang
}

type lookLang struct {
	Code, Name string
	Current    bool
}

// lookPage shows the blog's look as configured and a digest of the latest
// posts in it, rendered now with the templates in force, in the language
// picked.
func (u *UI) lookPage(w http.ResponseWriter, r *http.Request) {
	look, err := u.api.Look(ctx(r))
	if err != nil {
		u.failErr(w, r, err)
		return
	}
	d := lookData{Look: look, Lang: look.Language}
	for _, code := range look.Languages {
		if r.URL.Query().Get("lang") == code {
			d.Lang = code
		}
	}
	for _, code := range look.Languages {
		d.Langs = append(d.Langs, lookLang{Code: code, Name: display.Self.Name(language.Make(code)), Current: code == d.Lang})
	}
	u.render(w, r, http.StatusOK, "look", &view{Title: "Look", Active: "look", Data: d})
}

// lookFrame is the digest itself, for the sandboxed iframe.
func (u *UI) lookFrame(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	sandboxFrame(h)
	html, err := u.api.LookPreview(ctx(r), r.URL.Query().Get("lang"))
	if err != nil {
		status := api.StatusOf(err)
		if status == 0 {
			status = http.StatusInternalServerError
		}
		u.frameMessage(w, status, userMessage(err))
		return
	}
	h.Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write([]byte(html))
}
