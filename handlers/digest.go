package handlers

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/gorilla/mux"

	"github.com/herald-dev/herald"
)

// registerDigest adds the posts, feeds, runs, preview and test-email routes.
func (s *Server) registerDigest(api *mux.Router) {
	api.HandleFunc("/posts", s.apiListPosts).Methods(http.MethodGet)
	api.HandleFunc("/posts", s.apiAddPost).Methods(http.MethodPost)
	api.HandleFunc("/feeds", s.apiFeeds).Methods(http.MethodGet)
	api.HandleFunc("/feeds/poll", s.apiPollFeeds).Methods(http.MethodPost)
	api.HandleFunc("/runs", s.apiStartRun).Methods(http.MethodPost)
	api.HandleFunc("/runs", s.apiListRuns).Methods(http.MethodGet)
	api.HandleFunc("/runs/{id}", s.apiGetRun).Methods(http.MethodGet)
	api.HandleFunc("/preview", s.apiPreview).Methods(http.MethodGet)
	api.HandleFunc("/test-email", s.apiTestEmail).Methods(http.MethodPost)
}

func notAvailable(what string) error {
	return herald.Errorf(herald.ENOTIMPLEMENTED, "%s is not available on this server", what)
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
	if s.deps.Posts == nil {
		s.jsonError(w, r, notAvailable("the posts API"))
		return
	}
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
	out := make([]postView, len(posts))
	carried := s.carriers(r, posts)
	for i, p := range posts {
		out[i] = postView{Post: p, Runs: carried[p.ID]}
		if out[i].Runs == nil {
			out[i].Runs = []uint64{}
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"posts": out, "next": nextString(next)})
}

// postView is a post with the runs that carried it.
type postView struct {
	*herald.Post
	Runs []uint64 `json:"runs"`
}

// carriers finds, for each post, the first real run of each frequency
// whose cut-off took it in: the run that mailed it to the readers who
// were up to date. Readers further behind got it in that frequency's
// next digest for them; this is the run an admin asks about. It reads the
// last 1000 runs.
func (s *Server) carriers(r *http.Request, posts []*herald.Post) map[uint64][]uint64 {
	out := map[uint64][]uint64{}
	if s.deps.Runs == nil || len(posts) == 0 {
		return out
	}
	runs, err := s.deps.Runs.ListRuns(r.Context(), 1000, 0)
	if err != nil {
		s.log.Warn("handlers: runs for posts", "err", err)
		return out
	}
	// Oldest first, per frequency, only runs that sent something.
	byFreq := map[herald.Frequency][]*herald.Run{}
	for i := len(runs) - 1; i >= 0; i-- {
		run := runs[i]
		if run.DryRun || run.Sent == 0 {
			continue
		}
		byFreq[run.Frequency] = append(byFreq[run.Frequency], run)
	}
	for _, p := range posts {
		if p.Silent {
			continue
		}
		for _, f := range herald.Frequencies {
			for _, run := range byFreq[f] {
				if run.Cutoff >= p.ID {
					out[p.ID] = append(out[p.ID], run.ID)
					break
				}
			}
		}
	}
	return out
}

// PostInput is what POST /api/v1/posts accepts (a CMS webhook or an admin).
type PostInput struct {
	GUID        string   `json:"guid"`
	URL         string   `json:"url"`
	Title       string   `json:"title"`
	Summary     string   `json:"summary"`
	Content     string   `json:"content"`
	Author      string   `json:"author"`
	Categories  []string `json:"categories"`
	PublishedAt string   `json:"published_at"`
}

func (s *Server) apiAddPost(w http.ResponseWriter, r *http.Request) {
	if s.deps.Posts == nil || s.deps.CleanPost == nil {
		s.jsonError(w, r, notAvailable("the posts API"))
		return
	}
	b, err := readBody(w, r)
	if err != nil {
		s.jsonError(w, r, err)
		return
	}
	var in PostInput
	if err := decodeJSON(b, &in); err != nil {
		s.jsonError(w, r, err)
		return
	}
	p, err := postFromInput(in)
	if err != nil {
		s.jsonError(w, r, err)
		return
	}
	if err := s.deps.CleanPost(p); err != nil {
		s.jsonError(w, r, err)
		return
	}
	p.Feed = "api"
	p.FoundAt = s.opt.Now().UTC()
	created, err := s.deps.Posts.UpsertPost(r.Context(), p)
	if err != nil {
		s.jsonError(w, r, err)
		return
	}
	if created && s.deps.Digests != nil {
		s.deps.Digests.NewPosts()
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	writeJSON(w, status, map[string]any{"post": p, "created": created})
}

func postFromInput(in PostInput) (*herald.Post, error) {
	in.URL = strings.TrimSpace(in.URL)
	in.GUID = strings.TrimSpace(in.GUID)
	if in.URL == "" {
		return nil, herald.Errorf(herald.EINVALID, "url is required").WithField("url")
	}
	u, err := url.Parse(in.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || strings.ContainsAny(in.URL, " \r\n") {
		return nil, herald.Errorf(herald.EINVALID, "url must be an absolute http(s) URL").WithField("url")
	}
	if len(in.GUID) > 1000 {
		return nil, herald.Errorf(herald.EINVALID, "guid is longer than 1000 characters").WithField("guid")
	}
	if strings.TrimSpace(in.Title) == "" {
		return nil, herald.Errorf(herald.EINVALID, "title is required").WithField("title")
	}
	if len(in.Categories) > 50 {
		return nil, herald.Errorf(herald.EINVALID, "at most 50 categories").WithField("categories")
	}
	p := &herald.Post{GUID: in.GUID, URL: in.URL, Title: in.Title, Summary: in.Summary, Content: in.Content, Author: in.Author, Categories: in.Categories}
	if p.GUID == "" {
		p.GUID = p.URL
	}
	if in.PublishedAt != "" {
		t, err := time.Parse(time.RFC3339, in.PublishedAt)
		if err != nil {
			return nil, herald.Errorf(herald.EINVALID, "published_at must be an RFC 3339 time like 2026-11-25T07:00:00Z").WithField("published_at")
		}
		p.PublishedAt = t.UTC()
	}
	return p, nil
}

func (s *Server) apiFeeds(w http.ResponseWriter, r *http.Request) {
	if s.deps.Posts == nil {
		s.jsonError(w, r, notAvailable("the feeds API"))
		return
	}
	states, err := s.deps.Posts.FeedStates(r.Context())
	if err != nil {
		s.jsonError(w, r, err)
		return
	}
	if states == nil {
		states = []*herald.FeedState{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"feeds": states})
}

func (s *Server) apiPollFeeds(w http.ResponseWriter, r *http.Request) {
	if s.deps.PollFeeds == nil {
		s.jsonError(w, r, notAvailable("feed polling"))
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"results": s.deps.PollFeeds(r.Context())})
}

// RunInput is what POST /api/v1/runs accepts.
type RunInput struct {
	Frequency string `json:"frequency"`
	DryRun    bool   `json:"dry_run"`
}

func (s *Server) apiStartRun(w http.ResponseWriter, r *http.Request) {
	if s.deps.Digests == nil {
		s.jsonError(w, r, notAvailable("the runs API"))
		return
	}
	b, err := readBody(w, r)
	if err != nil {
		s.jsonError(w, r, err)
		return
	}
	in := RunInput{Frequency: string(s.opt.DefaultFrequency)}
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
	run, err := s.deps.Digests.StartRun(r.Context(), f, herald.TriggerAPI, in.DryRun)
	if err != nil {
		s.jsonError(w, r, err)
		return
	}
	w.Header().Set("Location", "/api/v1/runs/"+strconv.FormatUint(run.ID, 10))
	writeJSON(w, http.StatusAccepted, map[string]any{"id": run.ID, "run": run})
}

func (s *Server) apiListRuns(w http.ResponseWriter, r *http.Request) {
	if s.deps.Runs == nil {
		s.jsonError(w, r, notAvailable("the runs API"))
		return
	}
	limit, before, err := pageArgs(r, 50, "before")
	if err != nil {
		s.jsonError(w, r, err)
		return
	}
	runs, err := s.deps.Runs.ListRuns(r.Context(), limit, before)
	if err != nil {
		s.jsonError(w, r, err)
		return
	}
	if runs == nil {
		runs = []*herald.Run{}
	}
	next := ""
	if len(runs) == limit {
		next = strconv.FormatUint(runs[len(runs)-1].ID, 10)
	}
	writeJSON(w, http.StatusOK, map[string]any{"runs": runs, "next": next})
}

func (s *Server) apiGetRun(w http.ResponseWriter, r *http.Request) {
	if s.deps.Runs == nil {
		s.jsonError(w, r, notAvailable("the runs API"))
		return
	}
	id, err := strconv.ParseUint(mux.Vars(r)["id"], 10, 64)
	if err != nil {
		s.jsonError(w, r, herald.Errorf(herald.ENOTFOUND, "no run %q", mux.Vars(r)["id"]))
		return
	}
	run, err := s.deps.Runs.Run(r.Context(), id)
	if err != nil {
		s.jsonError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, run)
}

func (s *Server) apiPreview(w http.ResponseWriter, r *http.Request) {
	if s.deps.Digests == nil {
		s.jsonError(w, r, notAvailable("preview"))
		return
	}
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
	// The digest carries its own inline styles and no script.
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; img-src * data:; frame-ancestors 'self'")
	w.Header().Set("X-Frame-Options", "SAMEORIGIN")
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write([]byte(html))
}

func (s *Server) apiTestEmail(w http.ResponseWriter, r *http.Request) {
	if s.deps.Digests == nil {
		s.jsonError(w, r, notAvailable("test emails"))
		return
	}
	b, err := readBody(w, r)
	if err != nil {
		s.jsonError(w, r, err)
		return
	}
	var in struct {
		To string `json:"to"`
	}
	if err := decodeJSON(b, &in); err != nil {
		s.jsonError(w, r, err)
		return
	}
	if err := s.deps.Digests.SendTest(r.Context(), in.To); err != nil {
		s.jsonError(w, r, err)
		return
	}
	writeJSON(w, http.StatusAccepted, map[string]string{"status": "queued", "to": in.To})
}
