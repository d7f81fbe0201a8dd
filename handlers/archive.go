package handlers

import (
	"html"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gorilla/feeds"
	"github.com/gorilla/mux"

	"github.com/herald-dev/herald"
)

// archivePage is how many digests one page of /archive lists, and the
// RSS feed carries.
const archivePage = 20

// registerArchive adds the public archive, when it is on: otherwise its
// routes do not exist (404).
func (s *Server) registerArchive(r *mux.Router) {
	if s.deps.Archive == nil {
		return
	}
	r.HandleFunc("/archive", s.archiveList).Methods(http.MethodGet, http.MethodHead)
	r.HandleFunc("/archive.xml", s.archiveFeed).Methods(http.MethodGet, http.MethodHead)
	r.HandleFunc("/archive/{id}", s.archiveShow).Methods(http.MethodGet, http.MethodHead)
}

type archiveItem struct {
	URL, Subject, DateISO string
	Date                  time.Time
	Frequency             string
	Posts                 int
	Titles                []string
	MoreTitles            int
}

func (s *Server) archiveList(w http.ResponseWriter, r *http.Request) {
	var before uint64
	if b := r.URL.Query().Get("before"); b != "" {
		n, err := strconv.ParseUint(b, 10, 64)
		if err != nil || n == 0 {
			s.error(w, r, herald.Errorf(herald.EINVALID, "before must be a digest number from an \"Older\" link").WithField("before"))
			return
		}
		before = n
	}
	entries, next, err := s.deps.Archive.ListArchive(r.Context(), archivePage, before)
	if err != nil {
		s.error(w, r, err)
		return
	}
	items := make([]archiveItem, 0, len(entries))
	for _, e := range entries {
		it := archiveItem{
			URL: "/archive/" + strconv.FormatUint(e.ID, 10), Subject: e.Subject, Date: e.Date,
			DateISO: e.Date.UTC().Format(time.RFC3339), Frequency: string(e.Frequency), Posts: e.Posts, Titles: e.Titles,
		}
		if len(it.Titles) > 5 {
			it.Titles = it.Titles[:5]
		}
		it.MoreTitles = e.Posts - len(it.Titles)
		items = append(items, it)
	}
	data := map[string]any{"Title": "Past digests", "Entries": items}
	if next != 0 {
		data["OlderURL"] = "/archive?before=" + strconv.FormatUint(next, 10)
	}
	if before != 0 {
		data["NewerURL"] = "/archive"
	}
	s.page(w, r, http.StatusOK, "archive", data)
}

// archiveShow serves one digest as its own web page: the stored archive
// copy (no reader's links in it), with a bar back to the list. The email's
// inline styles need a CSP of their own.
func (s *Server) archiveShow(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseUint(mux.Vars(r)["id"], 10, 64)
	if err != nil || id == 0 {
		s.notFound(w, r)
		return
	}
	e, err := s.deps.Archive.Archive(r.Context(), id)
	if herald.ErrorCode(err) == herald.ENOTFOUND {
		s.notFound(w, r)
		return
	} else if err != nil {
		s.error(w, r, err)
		return
	}
	posts := strconv.Itoa(e.Posts) + " posts"
	if e.Posts == 1 {
		posts = "1 post"
	}
	// The copy is the email as sent; the page around it says what it is:
	// a heading (the subject) and the date, under a bar back to the list.
	bar := `<header style="max-width:600px;margin:0 auto;padding:14px 12px 0;font:14px/1.5 -apple-system,'Segoe UI',Roboto,Arial,sans-serif;color:#5f6368;">` +
		`<p style="margin:0 0 10px;"><a href="/archive" style="color:#1f5fbf;">← All digests from ` + html.EscapeString(s.opt.SiteName) + `</a> · ` +
		`<a href="/archive.xml" style="color:#1f5fbf;">RSS</a> · <a href="/" style="color:#1f5fbf;">Subscribe</a></p>` +
		`<h1 style="margin:0;font-size:24px;line-height:1.3;color:#1d1d1f;">` + html.EscapeString(e.Subject) + `</h1>` +
		`<p style="margin:4px 0 0;"><time datetime="` + e.Date.UTC().Format(time.RFC3339) + `">` + e.Date.UTC().Format("2 January 2006") + `</time> · ` +
		html.EscapeString(titleCase(string(e.Frequency))) + ` digest · ` + posts + `</p></header>`
	page := insertAfterBody(e.HTML, bar)
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; img-src https: http: data:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'")
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "public, max-age=300")
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write([]byte(page))
	}
}

// insertAfterBody puts snippet right after the <body> tag, or in front
// when there is none.
func insertAfterBody(doc, snippet string) string {
	i := strings.Index(strings.ToLower(doc), "<body")
	if i < 0 {
		return snippet + doc
	}
	j := strings.IndexByte(doc[i:], '>')
	if j < 0 {
		return snippet + doc
	}
	at := i + j + 1
	return doc[:at] + snippet + doc[at:]
}

// bodyOf returns what is inside <body>…</body>, for feed readers.
func bodyOf(doc string) string {
	lower := strings.ToLower(doc)
	i := strings.Index(lower, "<body")
	if i < 0 {
		return doc
	}
	j := strings.IndexByte(doc[i:], '>')
	if j < 0 {
		return doc
	}
	start := i + j + 1
	end := strings.LastIndex(lower, "</body>")
	if end < start {
		end = len(doc)
	}
	return strings.TrimSpace(doc[start:end])
}

// archiveFeed is an RSS 2.0 feed of the newest digests.
func (s *Server) archiveFeed(w http.ResponseWriter, r *http.Request) {
	entries, _, err := s.deps.Archive.ListArchive(r.Context(), archivePage, 0)
	if err != nil {
		s.error(w, r, err)
		return
	}
	base := s.opt.BaseURL
	f := &feeds.Feed{
		Title:       s.opt.SiteName + ": past digests",
		Link:        &feeds.Link{Href: base + "/archive"},
		Description: "Every digest " + s.opt.SiteName + " has sent by email.",
		Created:     s.opt.Now().UTC(),
	}
	if len(entries) > 0 {
		f.Updated = entries[0].Date
		f.Created = entries[0].Date
	}
	for _, e := range entries {
		link := base + "/archive/" + strconv.FormatUint(e.ID, 10)
		desc := strconv.Itoa(e.Posts) + " new posts"
		if e.Posts == 1 {
			desc = "1 new post"
		}
		if len(e.Titles) > 0 {
			desc += ": " + strings.Join(e.Titles, "; ")
		}
		f.Items = append(f.Items, &feeds.Item{
			Title:       e.Subject,
			Link:        &feeds.Link{Href: link},
			Id:          link,
			IsPermaLink: "true",
			Description: desc,
			Content:     bodyOf(e.HTML),
			Created:     e.Date,
		})
	}
	out, err := f.ToRss()
	if err != nil {
		s.error(w, r, err)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/rss+xml; charset=utf-8")
	h.Set("Cache-Control", "public, max-age=300")
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write([]byte(out))
	}
}

// titleCase capitalises the first letter: "daily" → "Daily".
func titleCase(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}
