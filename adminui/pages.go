package adminui

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// What the API answers, decoded leniently: fields the UI does not know are
// ignored, fields the API does not send stay empty.

type subscriber struct {
	ID          uint64     `json:"id"`
	Email       string     `json:"email"`
	Name        string     `json:"name"`
	Status      string     `json:"status"`
	Frequency   string     `json:"frequency"`
	CreatedAt   time.Time  `json:"created_at"`
	ConfirmedAt *time.Time `json:"confirmed_at"`
}

type subscriberList struct {
	Subscribers []subscriber `json:"subscribers"`
	Next        string       `json:"next"`
}

type post struct {
	ID          uint64    `json:"id"`
	GUID        string    `json:"guid"`
	URL         string    `json:"url"`
	Title       string    `json:"title"`
	Author      string    `json:"author"`
	Categories  []string  `json:"categories"`
	PublishedAt time.Time `json:"published_at"`
	Feed        string    `json:"feed"`
	// Silent posts are recorded, not mailed; the reason says why.
	Silent       bool   `json:"silent"`
	SilentReason string `json:"silent_reason"`
	// Runs that carried the post, if the API says.
	Runs []uint64 `json:"runs"`
}

type postList struct {
	Posts []post `json:"posts"`
	Next  string `json:"next"`
}

type runFailure struct {
	Email string    `json:"email"`
	Error string    `json:"error"`
	At    time.Time `json:"at"`
}

type run struct {
	ID         uint64       `json:"id"`
	Frequency  string       `json:"frequency"`
	Trigger    string       `json:"trigger"`
	DryRun     bool         `json:"dry_run"`
	State      string       `json:"state"`
	Total      int          `json:"total"`
	Sent       int          `json:"sent"`
	Failed     int          `json:"failed"`
	Skipped    int          `json:"skipped"`
	CreatedAt  time.Time    `json:"created_at"`
	StartedAt  *time.Time   `json:"started_at"`
	FinishedAt *time.Time   `json:"finished_at"`
	Error      string       `json:"error"`
	Failures   []runFailure `json:"failures"`
}

// Done counts the readers the run has dealt with.
func (r run) Done() int { return r.Sent + r.Failed + r.Skipped }

// Finished: the run will not change any more.
func (r run) Finished() bool { return r.State == "done" || r.State == "failed" }

// Duration of a finished run.
func (r run) Duration() string {
	if r.StartedAt == nil || r.FinishedAt == nil {
		return "—"
	}
	d := r.FinishedAt.Sub(*r.StartedAt)
	if d < time.Second {
		return d.Round(time.Millisecond).String()
	}
	return d.Round(time.Second).String()
}

type runList struct {
	Runs []run  `json:"runs"`
	Next string `json:"next"`
}

var frequencies = []string{"instant", "daily", "weekly"}
var statuses = []string{"pending", "confirmed", "unsubscribed", "bounced"}

// box is a part of a page whose data may be missing: an API route not
// there yet, or an error.
type box struct {
	Unavailable bool
	Error       string
}

func boxFor(err error) box {
	if err == nil {
		return box{}
	}
	if isUnavailable(err) {
		return box{Unavailable: true}
	}
	return box{Error: userMessage(err)}
}

// ---- dashboard

type dashData struct {
	Stats      *statsView
	StatsBox   box
	Chart      *chart
	ChartBox   box
	Runs       []run
	RunsBox    box
	Feeds      []feedHealth
	FeedsBox   box
	Statuses   []string
	Freqs      []string
	GrandTotal int
	Warnings   []string
}

func (u *UI) dashboard(w http.ResponseWriter, r *http.Request) {
	d := dashData{Statuses: statuses, Freqs: frequencies, Warnings: u.opt.Warnings}
	var raw map[string]any
	if err := u.getJSON(r, "/api/v1/stats", &raw); err != nil {
		d.StatsBox = boxFor(err)
	} else {
		d.Stats = parseStats(raw)
	}
	if c, err := u.growthChart(r); err != nil {
		d.ChartBox = boxFor(err)
	} else {
		d.Chart = c
	}
	if runs, _, err := u.listRuns(r, 5, ""); err != nil {
		d.RunsBox = boxFor(err)
	} else {
		d.Runs = runs
	}
	feeds, err := u.feedHealth(r)
	if err != nil && d.Stats != nil && len(d.Stats.Feeds) > 0 {
		feeds, err = d.Stats.Feeds, nil
	}
	d.Feeds, d.FeedsBox = feeds, boxFor(err)
	u.render(w, r, http.StatusOK, "dashboard", &view{Title: "Dashboard", Active: "dashboard", Data: d})
}

// listRuns reads a page of runs, newest first; before is the "next" of the
// previous page.
func (u *UI) listRuns(r *http.Request, limit int, before string) ([]run, string, error) {
	q := url.Values{}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	if before != "" {
		q.Set("before", before)
	}
	res, err := u.call(r, http.MethodGet, "/api/v1/runs?"+q.Encode(), "", nil)
	if err != nil {
		return nil, "", err
	}
	var l runList
	if err := decodeAPI(res, "/api/v1/runs", &l); err != nil {
		// a bare array is fine too
		var arr []run
		if err2 := decodeAPI(res, "/api/v1/runs", &arr); err2 != nil {
			return nil, "", err
		}
		l.Runs = arr
	}
	if limit > 0 && len(l.Runs) > limit {
		l.Runs = l.Runs[:limit]
	}
	return l.Runs, l.Next, nil
}

// ---- subscribers

type addForm struct {
	Email, Name, Frequency string
	Confirmed              bool
	Error                  string
}

type subsData struct {
	Back        string // this page, to come back to after an erase
	Q, Status   string
	After       string
	Subscribers []subscriber
	Next        string
	NextURL     string
	Box         box
	Statuses    []string
	Freqs       []string
	Add         addForm
}

const subsPageSize = 50

func (u *UI) subscribersPage(w http.ResponseWriter, r *http.Request) {
	u.showSubscribers(w, r, http.StatusOK, addForm{Frequency: "daily"})
}

func (u *UI) showSubscribers(w http.ResponseWriter, r *http.Request, status int, add addForm) {
	in := r.URL.Query()
	d := subsData{Back: r.URL.RequestURI(), Q: strings.TrimSpace(in.Get("q")), Status: in.Get("status"), After: in.Get("after"), Statuses: statuses, Freqs: frequencies, Add: add}
	q := url.Values{"limit": {strconv.Itoa(subsPageSize)}}
	if d.Q != "" {
		q.Set("q", d.Q)
	}
	if d.Status != "" {
		q.Set("status", d.Status)
	}
	if d.After != "" {
		q.Set("after", d.After)
	}
	var l subscriberList
	if err := u.getJSON(r, "/api/v1/subscribers?"+q.Encode(), &l); err != nil {
		d.Box = boxFor(err)
	} else {
		d.Subscribers, d.Next = l.Subscribers, l.Next
		if l.Next != "" {
			nq := url.Values{"after": {l.Next}}
			if d.Q != "" {
				nq.Set("q", d.Q)
			}
			if d.Status != "" {
				nq.Set("status", d.Status)
			}
			d.NextURL = "/admin/subscribers?" + nq.Encode()
		}
	}
	u.render(w, r, status, "subscribers", &view{Title: "Subscribers", Active: "subscribers", Data: d})
}

func (u *UI) addSubscriber(w http.ResponseWriter, r *http.Request) {
	f := addForm{
		Email:     strings.TrimSpace(r.PostForm.Get("email")),
		Name:      strings.TrimSpace(r.PostForm.Get("name")),
		Frequency: r.PostForm.Get("frequency"),
		Confirmed: r.PostForm.Get("confirmed") != "",
	}
	var created subscriber
	_, err := u.sendJSON(r, http.MethodPost, "/api/v1/subscribers",
		map[string]any{"email": f.Email, "name": f.Name, "frequency": f.Frequency, "confirmed": f.Confirmed}, &created)
	if err != nil {
		f.Error = userMessage(err)
		status := apiStatus(err)
		if status < 400 || status >= 500 {
			status = http.StatusUnprocessableEntity
		}
		r.URL.RawQuery = ""
		u.showSubscribers(w, r, status, f)
		return
	}
	u.chart.drop()
	email := created.Email
	if email == "" {
		email = f.Email
	}
	msg := "Added " + email + "."
	if !f.Confirmed {
		msg += " A confirmation email is on its way; they count once they confirm."
	}
	u.redirectFlash(w, r, "/admin/subscribers?q="+url.QueryEscape(email), msg, false)
}

type eraseData struct {
	Email string
	Back  string
}

func (u *UI) eraseSubscriber(w http.ResponseWriter, r *http.Request) {
	email := strings.TrimSpace(r.PostForm.Get("email"))
	back := safeNext(r.PostForm.Get("back"))
	if back == "/admin/" {
		back = "/admin/subscribers"
	}
	if email == "" {
		u.redirectFlash(w, r, back, "Say which subscriber to erase.", true)
		return
	}
	if r.PostForm.Get("confirm") != "yes" {
		u.render(w, r, http.StatusOK, "erase", &view{Title: "Erase " + email, Active: "subscribers", Data: eraseData{Email: email, Back: back}})
		return
	}
	if _, err := u.call(r, http.MethodDelete, "/api/v1/subscribers/"+url.PathEscape(email), "", nil); err != nil {
		u.redirectFlash(w, r, back, "Could not erase "+email+": "+userMessage(err), true)
		return
	}
	u.chart.drop()
	u.log.Info("adminui: subscriber erased", "email", email)
	u.redirectFlash(w, r, back, "Erased "+email+" and their history.", false)
}

type csvReport struct {
	Added   int          `json:"added"`
	Updated int          `json:"updated"`
	Skipped int          `json:"skipped"`
	Invalid []invalidRow `json:"invalid"`
}

type invalidRow struct {
	Line  int    `json:"line"`
	Error string `json:"error"`
}

type importData struct {
	File      string
	Confirmed bool
	Report    *csvReport
	Shown     []invalidRow // the first invalid rows
	More      int          // invalid rows not shown
	Error     string
}

const maxInvalidShown = 200

// importCSV streams the uploaded file to the API's CSV import. The form
// puts its CSRF token and options before the file, so they are read (and
// checked) before a byte of the file is.
func (u *UI) importCSV(w http.ResponseWriter, r *http.Request) {
	mr, err := r.MultipartReader()
	if err != nil {
		r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
		if r.ParseForm() != nil || !u.csrfOK(r, r.PostForm.Get("csrf")) {
			u.csrfFail(w, r)
			return
		}
		u.fail(w, r, http.StatusBadRequest, "Upload the CSV file with the import form.")
		return
	}
	var d importData
	csrfOK := false
	for {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			u.fail(w, r, http.StatusBadRequest, "The upload could not be read: "+err.Error())
			return
		}
		switch part.FormName() {
		case "csrf":
			b, _ := io.ReadAll(io.LimitReader(part, 256))
			csrfOK = u.csrfOK(r, string(b))
		case "confirmed":
			b, _ := io.ReadAll(io.LimitReader(part, 16))
			d.Confirmed = len(b) > 0
		case "file":
			if !csrfOK {
				u.csrfFail(w, r)
				return
			}
			d.File = part.FileName()
			u.runImport(w, r, part, &d)
			return
		}
		part.Close()
	}
	if !csrfOK {
		u.csrfFail(w, r)
		return
	}
	d.Error = "Choose a CSV file to import."
	u.render(w, r, http.StatusUnprocessableEntity, "import", &view{Title: "Import", Active: "subscribers", Data: d})
}

func (u *UI) runImport(w http.ResponseWriter, r *http.Request, file io.Reader, d *importData) {
	br := bufio.NewReaderSize(file, 64<<10)
	if _, err := br.Peek(1); err != nil {
		d.Error = "The file is empty."
		if d.File == "" {
			d.Error = "Choose a CSV file to import."
		}
		u.render(w, r, http.StatusUnprocessableEntity, "import", &view{Title: "Import", Active: "subscribers", Data: d})
		return
	}
	path := "/api/v1/subscribers.csv"
	if d.Confirmed {
		path += "?confirmed=true"
	}
	res, err := u.call(r, http.MethodPost, path, "text/csv", br)
	status := http.StatusOK
	if err != nil {
		d.Error = userMessage(err)
		status = apiStatus(err)
		if status < 400 {
			status = http.StatusInternalServerError
		}
	} else {
		var rep csvReport
		if err := decodeAPI(res, path, &rep); err != nil {
			u.log.Error("adminui: import report", "err", err)
			d.Error = "The import ran, but its report could not be read."
		} else {
			d.Report = &rep
			d.Shown = rep.Invalid[:min(len(rep.Invalid), maxInvalidShown)]
			d.More = len(rep.Invalid) - len(d.Shown)
		}
		u.chart.drop()
		u.log.Info("adminui: CSV import", "file", d.File, "added", rep.Added, "updated", rep.Updated, "skipped", rep.Skipped, "invalid", len(rep.Invalid))
	}
	u.render(w, r, status, "import", &view{Title: "Import", Active: "subscribers", Data: d})
}

func (u *UI) exportCSV(w http.ResponseWriter, r *http.Request) {
	req, err := u.newAPIRequest(r, http.MethodGet, "/api/v1/subscribers.csv", "", nil)
	if err != nil {
		u.failErr(w, r, err)
		return
	}
	req.Header.Set("Accept", "text/csv")
	sw := &streamWriter{w: w, header: http.Header{}}
	u.opt.API.ServeHTTP(sw, req)
	if !sw.wrote {
		sw.WriteHeader(http.StatusOK)
	}
	if sw.passing {
		return
	}
	u.failErr(w, r, errorFrom(sw.code, sw.header, sw.errBody.Bytes()))
}

// ---- posts

type postsData struct {
	Posts   []post
	After   string
	NextURL string
	Box     box
	HasRuns bool
}

func (u *UI) postsPage(w http.ResponseWriter, r *http.Request) {
	after := r.URL.Query().Get("after")
	d := postsData{After: after}
	q := url.Values{"limit": {"50"}}
	if after != "" {
		q.Set("after", after)
	}
	var l postList
	if err := u.getJSON(r, "/api/v1/posts?"+q.Encode(), &l); err != nil {
		d.Box = boxFor(err)
	} else {
		d.Posts = l.Posts
		if l.Next != "" && l.Next != after {
			d.NextURL = "/admin/posts?after=" + url.QueryEscape(l.Next)
		}
		for _, p := range l.Posts {
			if p.Runs != nil {
				d.HasRuns = true
			}
		}
	}
	u.render(w, r, http.StatusOK, "posts", &view{Title: "Posts", Active: "posts", Data: d})
}

// sendPost mails a silent post after all: it becomes the newest post.
func (u *UI) sendPost(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if _, err := strconv.ParseUint(id, 10, 64); err != nil {
		u.redirectFlash(w, r, "/admin/posts", "Say which post to send.", true)
		return
	}
	if _, err := u.sendJSON(r, http.MethodPost, "/api/v1/posts/"+id+"/send", map[string]any{}, nil); err != nil {
		u.redirectFlash(w, r, "/admin/posts", "Could not send post "+id+": "+userMessage(err), true)
		return
	}
	u.log.Info("adminui: silent post sent by hand", "id", id)
	u.redirectFlash(w, r, "/admin/posts", "Post "+id+" goes out with every reader's next email.", false)
}

// ---- runs

type runsData struct {
	Runs    []run
	Box     box
	Before  string
	NextURL string
	Freqs   []string
	Error   string
}

func (u *UI) runsPage(w http.ResponseWriter, r *http.Request) {
	u.showRuns(w, r, http.StatusOK, "")
}

func (u *UI) showRuns(w http.ResponseWriter, r *http.Request, status int, msg string) {
	before := r.URL.Query().Get("before")
	d := runsData{Before: before, Freqs: frequencies, Error: msg}
	runs, next, err := u.listRuns(r, 50, before)
	if err != nil {
		d.Box = boxFor(err)
	} else {
		d.Runs = runs
		if next != "" && next != before {
			d.NextURL = "/admin/runs?before=" + url.QueryEscape(next)
		}
	}
	u.render(w, r, status, "runs", &view{Title: "Runs", Active: "runs", Data: d})
}

func (u *UI) startRun(w http.ResponseWriter, r *http.Request) {
	freq := r.PostForm.Get("frequency")
	dry := r.PostForm.Get("dry_run") != ""
	var out struct {
		ID uint64 `json:"id"`
	}
	_, err := u.sendJSON(r, http.MethodPost, "/api/v1/runs", map[string]any{"frequency": freq, "dry_run": dry}, &out)
	if err != nil {
		status := apiStatus(err)
		if status < 400 || status >= 500 {
			status = http.StatusBadGateway
			if isUnavailable(err) {
				status = http.StatusNotImplemented
			}
		}
		r.URL.RawQuery = ""
		u.showRuns(w, r, status, "Could not start a "+freq+" run: "+userMessage(err))
		return
	}
	u.log.Info("adminui: run started", "id", out.ID, "frequency", freq, "dry_run", dry)
	kind := "run"
	if dry {
		kind = "dry run"
	}
	u.redirectFlash(w, r, fmt.Sprintf("/admin/runs/%d", out.ID), fmt.Sprintf("Started a %s %s.", freq, kind), false)
}

func (u *UI) runPage(w http.ResponseWriter, r *http.Request) {
	idStr, asJSON := strings.CutSuffix(r.PathValue("id"), ".json")
	id, err := strconv.ParseUint(idStr, 10, 64)
	if err != nil {
		if asJSON {
			writeJSON(w, http.StatusNotFound, map[string]string{"error": "no such run"})
			return
		}
		u.notFound(w, r)
		return
	}
	path := fmt.Sprintf("/api/v1/runs/%d", id)
	res, err := u.call(r, http.MethodGet, path, "", nil)
	if asJSON {
		if err != nil {
			status := apiStatus(err)
			if status == 0 {
				status = http.StatusInternalServerError
			}
			writeJSON(w, status, map[string]string{"error": userMessage(err)})
			return
		}
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(res.body.Bytes())
		return
	}
	if err != nil {
		if apiStatus(err) == http.StatusNotFound && !isUnavailable(err) {
			u.fail(w, r, http.StatusNotFound, fmt.Sprintf("There is no run %d.", id))
			return
		}
		u.failErr(w, r, err)
		return
	}
	var rn run
	if err := decodeAPI(res, path, &rn); err != nil {
		u.failErr(w, r, err)
		return
	}
	u.render(w, r, http.StatusOK, "run", &view{Title: fmt.Sprintf("Run %d", id), Active: "runs", Data: rn})
}

// ---- preview

type previewData struct {
	Email    string
	FrameURL string
	Readers  []subscriber
}

func (u *UI) previewPage(w http.ResponseWriter, r *http.Request) {
	d := previewData{Email: strings.TrimSpace(r.URL.Query().Get("email"))}
	if d.Email != "" {
		d.FrameURL = "/admin/preview/frame?email=" + url.QueryEscape(d.Email)
	}
	var l subscriberList
	if err := u.getJSON(r, "/api/v1/subscribers?status=confirmed&limit=200", &l); err == nil {
		d.Readers = l.Subscribers
	}
	u.render(w, r, http.StatusOK, "preview", &view{Title: "Preview", Active: "preview", Data: d})
}

// previewFrame is the digest itself, for the sandboxed iframe of the
// preview page: the email's own inline styles may apply, no script may run.
func (u *UI) previewFrame(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", "sandbox; default-src 'none'; style-src 'unsafe-inline'; img-src http: https: data:; frame-ancestors 'self'; base-uri 'none'; form-action 'none'")
	h.Set("X-Frame-Options", "SAMEORIGIN")
	h.Set("Referrer-Policy", "no-referrer")
	email := strings.TrimSpace(r.URL.Query().Get("email"))
	if email == "" {
		u.frameMessage(w, http.StatusOK, "Choose a reader to see their digest.")
		return
	}
	res, err := u.call(r, http.MethodGet, "/api/v1/preview?email="+url.QueryEscape(email), "", nil)
	switch {
	case err != nil:
		status := apiStatus(err)
		if status == 0 {
			status = http.StatusInternalServerError
		}
		u.frameMessage(w, status, userMessage(err))
	case res.code == http.StatusNoContent || res.body.Len() == 0:
		u.frameMessage(w, http.StatusOK, "Nothing new for "+email+": a run now would send them no email.")
	default:
		h.Set("Content-Type", "text/html; charset=utf-8")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(res.body.Bytes())
	}
}

func (u *UI) frameMessage(w http.ResponseWriter, status int, msg string) {
	u.render(w, &http.Request{Method: http.MethodGet}, status, "frame-message", &view{Data: msg})
}

func (u *UI) sendTest(w http.ResponseWriter, r *http.Request) {
	to := strings.TrimSpace(r.PostForm.Get("to"))
	back := "/admin/preview"
	if e := strings.TrimSpace(r.PostForm.Get("email")); e != "" {
		back += "?email=" + url.QueryEscape(e)
	}
	if _, err := u.sendJSON(r, http.MethodPost, "/api/v1/test-email", map[string]string{"to": to}, nil); err != nil {
		u.redirectFlash(w, r, back, "Could not send a test to "+to+": "+userMessage(err), true)
		return
	}
	u.log.Info("adminui: test email", "to", to)
	u.redirectFlash(w, r, back, "A test digest is on its way to "+to+".", false)
}
