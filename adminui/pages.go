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

	"github.com/herald-dev/herald"
	"github.com/herald-dev/herald/api"
)

// runView is a run for the templates.
type runView struct{ *herald.Run }

// Done counts the readers the run has dealt with. A finished dry run has
// dealt with them all: Total is then those it would have mailed.
func (r runView) Done() int {
	if r.DryRun && r.Finished() {
		return r.Readers()
	}
	return r.Sent + r.Failed + r.Skipped
}

// Readers is how many readers the run goes through.
func (r runView) Readers() int {
	if r.DryRun && r.Finished() {
		return r.Total + r.Skipped
	}
	return r.Total
}

// Finished: the run will not change any more.
func (r runView) Finished() bool { return r.State == herald.RunDone || r.State == herald.RunFailed }

// Duration of a finished run.
func (r runView) Duration() string {
	if r.StartedAt == nil || r.FinishedAt == nil {
		return "—"
	}
	d := r.FinishedAt.Sub(*r.StartedAt)
	if d < time.Second {
		return d.Round(time.Millisecond).String()
	}
	return d.Round(time.Second).String()
}

func runViews(runs []*herald.Run) []runView {
	out := make([]runView, len(runs))
	for i, r := range runs {
		out[i] = runView{r}
	}
	return out
}

var frequencies = []string{"instant", "daily", "weekly"}
var statuses = []string{"pending", "confirmed", "unsubscribed", "bounced"}

// box is a part of a page whose data could not be read.
type box struct {
	Error string
}

func boxFor(err error) box {
	if err == nil {
		return box{}
	}
	return box{Error: userMessage(err)}
}

// ---- dashboard

type dashData struct {
	Stats    *statsView
	StatsBox box
	// Topics are the readers per offered topic; Everything the confirmed
	// readers who chose none (they get every post).
	Topics     []topicCount
	Everything int
	Chart      *chart
	ChartBox   box
	Runs       []runView
	RunsBox    box
	Feeds      []feedHealth
	FeedsBox   box
	Statuses   []string
	Freqs      []string
	Warnings   []string
	Schedule   *timetable
	SchedBox   box
}

func (u *UI) dashboard(w http.ResponseWriter, r *http.Request) {
	d := dashData{Statuses: statuses, Freqs: frequencies, Warnings: u.opt.Warnings}
	if st, err := u.api.Stats(ctx(r)); err != nil {
		d.StatsBox = boxFor(err)
	} else {
		d.Stats = &statsView{st}
		d.Topics, d.Everything = u.topicCounts(st)
	}
	if c, err := u.growthChart(r); err != nil {
		d.ChartBox = boxFor(err)
	} else {
		d.Chart = c
	}
	if l, err := u.api.ListRuns(ctx(r), api.RunQuery{Limit: 5, SkipEmpty: true}); err != nil {
		d.RunsBox = boxFor(err)
	} else {
		d.Runs = runViews(l.Runs)
	}
	d.Schedule, d.SchedBox = u.timetable(r)
	if feeds, err := u.api.Feeds(ctx(r)); err != nil {
		d.FeedsBox = boxFor(err)
	} else {
		for _, f := range feeds {
			d.Feeds = append(d.Feeds, feedHealth{f})
		}
	}
	u.render(w, r, http.StatusOK, "dashboard", &view{Title: "Dashboard", Active: "dashboard", Data: d})
}

// topicCount is one topic's readers on the dashboard.
type topicCount struct {
	Name    string
	Readers int
}

// topicCounts are the confirmed readers of each offered topic (counted
// whatever the case they chose it in), and those who chose none.
func (u *UI) topicCounts(st *herald.Stats) ([]topicCount, int) {
	if len(u.opt.Topics) == 0 {
		return nil, 0
	}
	out := make([]topicCount, len(u.opt.Topics))
	for i, t := range u.opt.Topics {
		out[i].Name = t
		for name, n := range st.Subscribers.ByTopic {
			if strings.EqualFold(name, t) {
				out[i].Readers += n
			}
		}
	}
	return out, max(0, st.Subscribers.ByStatus[herald.StatusConfirmed]-st.Subscribers.WithTopics)
}

// ---- subscribers

type addForm struct {
	Email, Name, Frequency string
	Confirmed              bool
	Error                  string
}

type subsData struct {
	Back        string // this page, to come back to after an erase
	Total       int    // subscribers with the status asked (or all); -1: unknown
	Q, Status   string
	After       string
	Subscribers []*herald.Subscriber
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
	d := subsData{Back: r.URL.RequestURI(), Total: -1, Q: strings.TrimSpace(in.Get("q")), Status: in.Get("status"), After: in.Get("after"), Statuses: statuses, Freqs: frequencies, Add: add}
	if st, err := u.api.Stats(ctx(r)); err == nil {
		d.Total = st.Subscribers.Total
		if d.Status != "" {
			d.Total = st.Subscribers.ByStatus[herald.Status(d.Status)]
		}
	}
	l, err := u.api.ListSubscribers(ctx(r), api.SubscriberQuery{Status: herald.Status(d.Status), Q: d.Q, Limit: subsPageSize, After: d.After, Newest: true})
	if err != nil {
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
	created, err := u.api.AddSubscriber(ctx(r), herald.SubscribeRequest{Email: f.Email, Name: f.Name, Frequency: f.Frequency, Confirmed: f.Confirmed})
	if err != nil {
		f.Error = userMessage(err)
		status := api.StatusOf(err)
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
	if err := u.api.DeleteSubscriber(ctx(r), email); err != nil {
		u.redirectFlash(w, r, back, "Could not erase "+email+": "+userMessage(err), true)
		return
	}
	u.chart.drop()
	u.log.Info("adminui: subscriber erased", "email", email)
	u.redirectFlash(w, r, back, "Erased "+email+" and their history.", false)
}

type importData struct {
	File      string
	Confirmed bool
	Report    *herald.ImportReport
	Shown     []herald.ImportProblem // the first invalid rows
	More      int                    // invalid rows not shown
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
	rep, err := u.api.ImportCSV(ctx(r), br, d.Confirmed)
	status := http.StatusOK
	if err != nil {
		d.Error = userMessage(err)
		status = api.StatusOf(err)
		if status < 400 {
			u.log.Error("adminui: CSV import", "err", err)
			status = http.StatusInternalServerError
		}
	}
	if rep != nil { // a whole import, or the part done before it stopped
		d.Report = rep
		d.Shown = rep.Invalid[:min(len(rep.Invalid), maxInvalidShown)]
		d.More = rep.InvalidTotal - len(d.Shown)
		u.chart.drop()
		u.log.Info("adminui: CSV import", "file", d.File, "added", rep.Added, "updated", rep.Updated, "skipped", rep.Skipped, "invalid", rep.InvalidTotal)
	}
	u.render(w, r, status, "import", &view{Title: "Import", Active: "subscribers", Data: d})
}

func (u *UI) exportCSV(w http.ResponseWriter, r *http.Request) {
	res, err := u.api.ExportCSV(ctx(r))
	if err != nil {
		u.failErr(w, r, err)
		return
	}
	defer res.Body.Close()
	for _, k := range []string{"Content-Type", "Content-Disposition"} {
		if v := res.Header.Get(k); v != "" {
			w.Header().Set(k, v)
		}
	}
	w.WriteHeader(http.StatusOK)
	if _, err := io.Copy(w, res.Body); err != nil {
		u.log.Warn("adminui: CSV export cut off", "err", err)
		panic(http.ErrAbortHandler) // the browser sees a broken download, not a short file
	}
}

// ---- posts

type postsData struct {
	Posts   []*herald.PostRuns
	After   string
	NextURL string
	Box     box
	HasRuns bool
}

func (u *UI) postsPage(w http.ResponseWriter, r *http.Request) {
	after := r.URL.Query().Get("after")
	d := postsData{After: after}
	if l, err := u.api.ListPosts(ctx(r), 50, after); err != nil {
		d.Box = boxFor(err)
	} else {
		d.Posts = l.Posts
		if l.Next != "" && l.Next != after {
			d.NextURL = "/admin/posts?after=" + url.QueryEscape(l.Next)
		}
		for _, p := range l.Posts {
			if len(p.Runs) > 0 {
				d.HasRuns = true
			}
		}
	}
	u.render(w, r, http.StatusOK, "posts", &view{Title: "Posts", Active: "posts", Data: d})
}

// sendPost mails a silent post after all: it becomes the newest post.
func (u *UI) sendPost(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseUint(r.PathValue("id"), 10, 64)
	if err != nil {
		u.redirectFlash(w, r, "/admin/posts", "Say which post to send.", true)
		return
	}
	if _, err := u.api.SendPost(ctx(r), id); err != nil {
		u.redirectFlash(w, r, "/admin/posts", fmt.Sprintf("Could not send post %d: %s", id, userMessage(err)), true)
		return
	}
	u.log.Info("adminui: silent post sent by hand", "id", id)
	u.redirectFlash(w, r, "/admin/posts", fmt.Sprintf("Post %d goes out with every reader's next email.", id), false)
}

// ---- runs

type runsData struct {
	Runs     []runView
	Box      box
	Before   string
	NextURL  string
	Freqs    []string
	Error    string
	All      bool // runs that mailed nobody are shown too
	Schedule *timetable
	SchedBox box
}

func (u *UI) runsPage(w http.ResponseWriter, r *http.Request) {
	u.showRuns(w, r, http.StatusOK, "")
}

func (u *UI) showRuns(w http.ResponseWriter, r *http.Request, status int, msg string) {
	q := r.URL.Query()
	before := q.Get("before")
	d := runsData{Before: before, Freqs: frequencies, Error: msg, All: q.Get("all") == "1"}
	if l, err := u.api.ListRuns(ctx(r), api.RunQuery{Limit: 50, Before: before, SkipEmpty: !d.All}); err != nil {
		d.Box = boxFor(err)
	} else {
		d.Runs = runViews(l.Runs)
		if l.Next != "" && l.Next != before {
			nq := url.Values{"before": {l.Next}}
			if d.All {
				nq.Set("all", "1")
			}
			d.NextURL = "/admin/runs?" + nq.Encode()
		}
	}
	d.Schedule, d.SchedBox = u.timetable(r)
	u.render(w, r, status, "runs", &view{Title: "Runs", Active: "runs", Data: d})
}

// startRun is "Send": the first press starts a dry run, and its page
// shows how many readers would get mail and which posts (see runPage);
// only the second press there (confirm=yes) starts the real run.
func (u *UI) startRun(w http.ResponseWriter, r *http.Request) {
	freq := r.PostForm.Get("frequency")
	sendNow := r.PostForm.Get("confirm") == "yes"
	out, err := u.api.StartRun(ctx(r), api.RunRequest{Frequency: freq, DryRun: !sendNow})
	if err != nil {
		status := api.StatusOf(err)
		if status < 400 || status >= 500 {
			status = http.StatusBadGateway
		}
		r.URL.RawQuery = ""
		u.showRuns(w, r, status, "Could not start a "+freq+" run: "+userMessage(err))
		return
	}
	u.log.Info("adminui: run started", "id", out.ID, "frequency", freq, "dry_run", !sendNow)
	if !sendNow {
		u.redirectFlash(w, r, fmt.Sprintf("/admin/runs/%d?send=1", out.ID), "", false)
		return
	}
	u.redirectFlash(w, r, fmt.Sprintf("/admin/runs/%d", out.ID), fmt.Sprintf("Started a %s run.", freq), false)
}

// runPageData is a run's page: the run, and whether it is the dry run
// of a "Send" waiting for its second press.
type runPageData struct {
	runView
	Confirm bool
}

func (u *UI) runPage(w http.ResponseWriter, r *http.Request) {
	idStr, asJSON := strings.CutSuffix(r.PathValue("id"), ".json")
	id, err := strconv.ParseUint(idStr, 10, 64)
	if err != nil {
		if asJSON {
			writeJSON(w, http.StatusNotFound, api.ErrorBody{Error: "no such run"})
			return
		}
		u.notFound(w, r)
		return
	}
	rn, err := u.api.Run(ctx(r), id)
	if asJSON {
		if err != nil {
			status := api.StatusOf(err)
			if status == 0 {
				status = http.StatusInternalServerError
			}
			writeJSON(w, status, api.ErrorBody{Error: userMessage(err)})
			return
		}
		writeJSON(w, http.StatusOK, rn)
		return
	}
	if err != nil {
		if api.StatusOf(err) == http.StatusNotFound {
			u.fail(w, r, http.StatusNotFound, fmt.Sprintf("There is no run %d.", id))
			return
		}
		u.failErr(w, r, err)
		return
	}
	title := fmt.Sprintf("Run %d", id)
	d := runPageData{runView: runView{rn}, Confirm: rn.DryRun && r.URL.Query().Get("send") == "1"}
	if d.Confirm {
		title = "Send " + string(rn.Frequency) + " now?"
	}
	u.render(w, r, http.StatusOK, "run", &view{Title: title, Active: "runs", Data: d})
}

// ---- preview

type previewData struct {
	Email    string
	FrameURL string
	Readers  []*herald.Subscriber
	// Topics are the previewed reader's: the test digest is theirs too.
	Topics []string
	Paused *time.Time // when the previewed reader's pause ends, if paused
}

func (u *UI) previewPage(w http.ResponseWriter, r *http.Request) {
	d := previewData{Email: strings.TrimSpace(r.URL.Query().Get("email"))}
	if d.Email != "" {
		d.FrameURL = "/admin/preview/frame?email=" + url.QueryEscape(d.Email)
		if sub, err := u.api.Subscriber(ctx(r), d.Email); err == nil {
			d.Topics = sub.Topics
			d.Paused = sub.PausedUntil
		}
	}
	if l, err := u.api.ListSubscribers(ctx(r), api.SubscriberQuery{Status: herald.StatusConfirmed, Limit: 200}); err == nil {
		d.Readers = l.Subscribers
	}
	u.render(w, r, http.StatusOK, "preview", &view{Title: "Preview", Active: "preview", Data: d})
}

// previewFrame is the digest itself, for the sandboxed iframe of the
// preview page: the email's own inline styles may apply, no script may run.
func (u *UI) previewFrame(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	sandboxFrame(h)
	email := strings.TrimSpace(r.URL.Query().Get("email"))
	if email == "" {
		u.frameMessage(w, http.StatusOK, "Choose a reader to see their digest.")
		return
	}
	html, ok, err := u.api.Preview(ctx(r), email)
	switch {
	case err != nil:
		status := api.StatusOf(err)
		if status == 0 {
			status = http.StatusInternalServerError
		}
		u.frameMessage(w, status, userMessage(err))
	case !ok:
		u.frameMessage(w, http.StatusOK, "Nothing new for "+email+": a run now would send them no email.")
	default:
		h.Set("Content-Type", "text/html; charset=utf-8")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write([]byte(html))
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
	topics := r.PostForm["topics"] // the previewed reader's, when they chose some
	if err := u.api.SendTest(ctx(r), to, topics...); err != nil {
		u.redirectFlash(w, r, back, "Could not send a test to "+to+": "+userMessage(err), true)
		return
	}
	u.log.Info("adminui: test email", "to", to, "topics", topics)
	msg := "A test digest is on its way to " + to + "."
	if len(topics) > 0 {
		msg = "A test digest of the latest posts for " + strings.Join(topics, ", ") + " is on its way to " + to + "."
	}
	u.redirectFlash(w, r, back, msg, false)
}

// sandboxFrame sets the headers of a digest shown in the admin's iframes:
// the email's own inline styles may apply, no script may run, no form
// may post, nothing is framed elsewhere.
func sandboxFrame(h http.Header) {
	h.Set("Content-Security-Policy", "sandbox; default-src 'none'; style-src 'unsafe-inline'; img-src http: https: data:; frame-ancestors 'self'; base-uri 'none'; form-action 'none'")
	h.Set("X-Frame-Options", "SAMEORIGIN")
	h.Set("Referrer-Policy", "no-referrer")
}
