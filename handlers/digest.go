package handlers

import (
	"math"
	"net/http"
	"strconv"
	"strings"

	"github.com/gorilla/mux"

	"github.com/herald-dev/herald"
	"github.com/herald-dev/herald/api"
	"github.com/herald-dev/herald/templates"
)

// registerDigest adds the posts, feeds, runs, preview and test-email routes.
func (s *Server) registerDigest(v1 *mux.Router) {
	v1.HandleFunc("/posts", s.apiListPosts).Methods(http.MethodGet)
	v1.HandleFunc("/posts", s.apiAddPost).Methods(http.MethodPost)
	v1.HandleFunc("/feeds", s.apiFeeds).Methods(http.MethodGet)
	v1.HandleFunc("/feeds/poll", s.apiPollFeeds).Methods(http.MethodPost)
	v1.HandleFunc("/runs", s.apiStartRun).Methods(http.MethodPost)
	v1.HandleFunc("/runs", s.apiListRuns).Methods(http.MethodGet)
	v1.HandleFunc("/runs/{id}", s.apiGetRun).Methods(http.MethodGet)
	v1.HandleFunc("/schedule", s.apiSchedule).Methods(http.MethodGet)
	v1.HandleFunc("/preview", s.apiPreview).Methods(http.MethodGet)
	v1.HandleFunc("/test-email", s.apiTestEmail).Methods(http.MethodPost)
	v1.HandleFunc("/look", s.apiLook).Methods(http.MethodGet)
	v1.HandleFunc("/look/preview", s.apiLookPreview).Methods(http.MethodGet)
}

// apiSchedule: GET /api/v1/schedule, when runs start by themselves.
func (s *Server) apiSchedule(w http.ResponseWriter, r *http.Request) {
	tt, err := s.deps.Digests.Timetable(r.Context())
	if err != nil {
		s.jsonError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, tt)
}

// pageArgs reads limit (1..1000, default def) and a numeric cursor.
func pageArgs(r *http.Request, def int, cursorName string) (int, uint64, error) {
	q := r.URL.Query()
	limit := def
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > 1000 {
			return 0, 0, herald.Errorf(herald.EINVALID, "limit must be a number from 1 to 1000").WithField("limit")
		}
		limit = n
	}
	var cur uint64
	if a := q.Get(cursorName); a != "" {
		n, err := strconv.ParseUint(a, 10, 64)
		if err != nil {
			return 0, 0, herald.Errorf(herald.EINVALID, "%s must be the \"next\" value of the previous page", cursorName).WithField(cursorName)
		}
		cur = n
	}
	return limit, cur, nil
}

func nextString(n uint64) string {
	if n == 0 {
		return ""
	}
	return strconv.FormatUint(n, 10)
}

func (s *Server) apiListPosts(w http.ResponseWriter, r *http.Request) {
	limit, after, err := pageArgs(r, 50, "after")
	if err != nil {
		s.jsonError(w, r, err)
		return
	}
	// Newest first: "after" is the id the previous page ended at.
	posts, next, err := s.deps.Posts.ListPosts(r.Context(), limit, after)
	if err != nil {
		s.jsonError(w, r, err)
		return
	}
	if posts == nil {
		posts = []*herald.PostRuns{}
	}
	writeJSON(w, http.StatusOK, api.PostList{Posts: posts, Next: nextString(next)})
}

func (s *Server) apiAddPost(w http.ResponseWriter, r *http.Request) {
	b, err := readBody(w, r)
	if err != nil {
		s.jsonError(w, r, err)
		return
	}
	var in herald.PostInput
	if err := decodeJSON(b, &in); err != nil {
		s.jsonError(w, r, err)
		return
	}
	p, created, err := s.deps.Posts.AddPost(r.Context(), in)
	if err != nil {
		s.jsonError(w, r, err)
		return
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	writeJSON(w, status, api.PostAdded{Post: p, Created: created})
}

func (s *Server) apiFeeds(w http.ResponseWriter, r *http.Request) {
	states, err := s.deps.Posts.Feeds(r.Context())
	if err != nil {
		s.jsonError(w, r, err)
		return
	}
	if states == nil {
		states = []*herald.FeedState{}
	}
	writeJSON(w, http.StatusOK, api.FeedList{Feeds: states})
}

func (s *Server) apiPollFeeds(w http.ResponseWriter, r *http.Request) {
	res, err := s.deps.Posts.PollFeeds(r.Context())
	if err != nil {
		s.jsonError(w, r, err)
		return
	}
	if res == nil {
		res = []*herald.PollResult{}
	}
	writeJSON(w, http.StatusOK, api.PollResults{Results: res})
}

func (s *Server) apiStartRun(w http.ResponseWriter, r *http.Request) {
	b, err := readBody(w, r)
	if err != nil {
		s.jsonError(w, r, err)
		return
	}
	in := api.RunRequest{Frequency: string(s.opt.DefaultFrequency)}
	if len(strings.TrimSpace(string(b))) > 0 {
		if err := decodeJSON(b, &in); err != nil {
			s.jsonError(w, r, err)
			return
		}
	}
	f, err := herald.ParseFrequency(in.Frequency)
	if err != nil {
		s.jsonError(w, r, err)
		return
	}
	trigger := herald.TriggerAPI
	if FromAdminUI(r.Context()) {
		trigger = herald.TriggerAdmin
	}
	run, err := s.deps.Digests.StartRun(r.Context(), f, trigger, in.DryRun)
	if err != nil {
		s.jsonError(w, r, err)
		return
	}
	w.Header().Set("Location", "/api/v1/runs/"+strconv.FormatUint(run.ID, 10))
	writeJSON(w, http.StatusAccepted, api.RunStarted{ID: run.ID, Run: run})
}

func (s *Server) apiListRuns(w http.ResponseWriter, r *http.Request) {
	limit, before, err := pageArgs(r, 50, "before")
	if err != nil {
		s.jsonError(w, r, err)
		return
	}
	skip, err := boolArg(r, "skip_empty")
	if err != nil {
		s.jsonError(w, r, err)
		return
	}
	runs, next, err := s.deps.Digests.ListRuns(r.Context(), herald.RunFilter{Limit: limit, Before: before, SkipEmpty: skip})
	if err != nil {
		s.jsonError(w, r, err)
		return
	}
	if runs == nil {
		runs = []*herald.Run{}
	}
	writeJSON(w, http.StatusOK, api.RunList{Runs: runs, Next: nextString(next)})
}

// boolArg reads a true/false query parameter (absent: false).
func boolArg(r *http.Request, name string) (bool, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, herald.Errorf(herald.EINVALID, "%s must be true or false", name).WithField(name)
	}
	return b, nil
}

func (s *Server) apiGetRun(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseUint(mux.Vars(r)["id"], 10, 64)
	if err != nil {
		s.jsonError(w, r, herald.Errorf(herald.ENOTFOUND, "no run %q", mux.Vars(r)["id"]))
		return
	}
	run, err := s.deps.Digests.RunByID(r.Context(), id)
	if err != nil {
		s.jsonError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, run)
}

func (s *Server) apiPreview(w http.ResponseWriter, r *http.Request) {
	email := r.URL.Query().Get("email")
	if email == "" {
		s.jsonError(w, r, herald.Errorf(herald.EINVALID, "email is required").WithField("email"))
		return
	}
	html, ok, err := s.deps.Digests.Preview(r.Context(), email)
	if err != nil {
		s.jsonError(w, r, err)
		return
	}
	if !ok {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	writeDigestHTML(w, html)
}

func (s *Server) apiTestEmail(w http.ResponseWriter, r *http.Request) {
	b, err := readBody(w, r)
	if err != nil {
		s.jsonError(w, r, err)
		return
	}
	var in api.TestEmailRequest
	if err := decodeJSON(b, &in); err != nil {
		s.jsonError(w, r, err)
		return
	}
	if err := s.deps.Digests.SendTest(r.Context(), in.To, in.Topics); err != nil {
		s.jsonError(w, r, err)
		return
	}
	writeJSON(w, http.StatusAccepted, api.TestEmailQueued{Status: "queued", To: in.To})
}

// apiLook is the blog's look and languages.
func (s *Server) apiLook(w http.ResponseWriter, r *http.Request) {
	site := s.deps.Templates.Site()
	look := api.Look{Name: site.Name, URL: site.URL, LogoURL: site.LogoURL, Footer: site.Footer, AccentColor: site.Colors.Light.Accent}
	if s.deps.Look != nil {
		look = *s.deps.Look
	}
	cat := s.deps.Templates.Catalog()
	look.Language, look.Languages = cat.Default(), cat.Codes()
	look.Overrides = s.deps.Templates.Overrides()
	light, dark := site.Colors.Light, site.Colors.Dark
	look.Palette = api.LookPalette{
		LightAccent: light.Accent, LightContrast: contrast(light.Accent, light.Card),
		DarkAccent: dark.Accent, DarkContrast: contrast(dark.Accent, dark.Card), DarkCard: dark.Card,
	}
	writeJSON(w, http.StatusOK, look)
}

func contrast(a, b string) float64 {
	ca, _ := templates.ParseColor(a)
	cb, _ := templates.ParseColor(b)
	return math.Round(templates.Contrast(ca, cb)*100) / 100
}

// apiLookPreview is a digest of the latest posts in ?lang=, with the
// templates in force.
func (s *Server) apiLookPreview(w http.ResponseWriter, r *http.Request) {
	lang, err := s.deps.Templates.Catalog().Parse(r.URL.Query().Get("lang"))
	if err != nil {
		s.jsonError(w, r, herald.Errorf(herald.EINVALID, "%v", err).WithField("lang"))
		return
	}
	html, err := s.deps.Digests.PreviewLatest(r.Context(), lang)
	if err != nil {
		s.jsonError(w, r, err)
		return
	}
	writeDigestHTML(w, html)
}

// writeDigestHTML answers with a rendered digest. The digest carries its
// own inline styles and no script, and is shown framed only by herald.
func writeDigestHTML(w http.ResponseWriter, html string) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; img-src * data:; frame-ancestors 'self'")
	h.Set("X-Frame-Options", "SAMEORIGIN")
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	_, _ = w.Write([]byte(html))
}
