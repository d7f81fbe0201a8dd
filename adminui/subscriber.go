package adminui

import (
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/herald-dev/herald"
	"github.com/herald-dev/herald/api"
)

// The page of one subscriber: who they are, and what an admin may do
// about them, each through the admin API (as the command line does).

type subscriberData struct {
	Sub   *herald.Subscriber
	Freqs []string
	// URL is this page; Error is what went wrong with the edit form, and
	// Name, Frequency, Language, Topics and Timezone what it held.
	URL                       string
	Error                     string
	Name, Frequency, Language string
	// Languages are the codes herald speaks ("" is the site's default).
	Languages  []string
	Topics     []herald.TopicChoice // the offered topics, the reader's ticked
	Timezone   string
	SiteZone   string
	PauseWeeks []int
}

// subscriberURL is the page of the reader with the address.
func subscriberURL(email string) string {
	return "/admin/subscribers/" + url.PathEscape(email)
}

func (u *UI) subscriberPage(w http.ResponseWriter, r *http.Request) {
	u.showSubscriber(w, r, http.StatusOK, "", nil)
}

// showSubscriber renders the page; form, when not nil, is what the edit
// form held (shown again with errMsg).
func (u *UI) showSubscriber(w http.ResponseWriter, r *http.Request, status int, errMsg string, form *subscriberData) {
	email := r.PathValue("email")
	sub, err := u.api.Subscriber(ctx(r), email)
	if err != nil {
		if api.StatusOf(err) == http.StatusNotFound {
			u.fail(w, r, http.StatusNotFound, "There is no subscriber "+email+". They may have been erased.")
			return
		}
		u.failErr(w, r, err)
		return
	}
	d := subscriberData{Sub: sub, Freqs: frequencies, URL: subscriberURL(sub.Email), Error: errMsg, Name: sub.Name, Frequency: string(sub.Frequency), Language: sub.Language,
		Topics: herald.TopicChoices(u.opt.Topics, sub.Topics), Timezone: sub.Timezone, SiteZone: u.opt.Location.String(), PauseWeeks: herald.PauseWeeks}
	if look, err := u.api.Look(ctx(r)); err == nil {
		d.Languages = look.Languages
	}
	if form != nil {
		d.Name, d.Frequency, d.Language, d.Topics, d.Timezone = form.Name, form.Frequency, form.Language, form.Topics, form.Timezone
	}
	u.render(w, r, status, "subscriber", &view{Title: sub.Email, Active: "subscribers", Data: d})
}

// updateSubscriber is the edit form: PATCH /api/v1/subscribers/{email}
// with the fields shown (topics only when the site offers some: none
// ticked is every post).
func (u *UI) updateSubscriber(w http.ResponseWriter, r *http.Request) {
	email := r.PathValue("email")
	name, freq, lang := strings.TrimSpace(r.PostForm.Get("name")), r.PostForm.Get("frequency"), r.PostForm.Get("language")
	zone := strings.TrimSpace(r.PostForm.Get("timezone"))
	p := herald.SubscriberPatch{Name: &name, Frequency: &freq, Timezone: &zone}
	if r.PostForm.Has("language") {
		p.Language = &lang
	}
	topics := r.PostForm["topics"]
	if len(u.opt.Topics) > 0 {
		ts := append([]string{}, topics...)
		p.Topics = &ts
	}
	_, err := u.api.UpdateSubscriber(ctx(r), email, p)
	if err != nil {
		status := api.StatusOf(err)
		if status < 400 || status >= 500 {
			status = http.StatusBadGateway
		}
		u.showSubscriber(w, r, status, userMessage(err), &subscriberData{Name: name, Frequency: freq, Language: lang, Topics: herald.TopicChoices(u.opt.Topics, topics), Timezone: zone})
		return
	}
	u.chart.drop()
	u.log.Info("adminui: subscriber changed", "email", email)
	u.redirectFlash(w, r, subscriberURL(email), "Saved.", false)
}

func (u *UI) resendConfirmation(w http.ResponseWriter, r *http.Request) {
	email := r.PathValue("email")
	if _, err := u.api.ResendConfirmation(ctx(r), email); err != nil {
		u.redirectFlash(w, r, subscriberURL(email), "No confirmation sent: "+userMessage(err), true)
		return
	}
	u.log.Info("adminui: confirmation sent again", "email", email)
	u.redirectFlash(w, r, subscriberURL(email), "A confirmation email is on its way to "+email+".", false)
}

func (u *UI) reactivate(w http.ResponseWriter, r *http.Request) {
	email := r.PathValue("email")
	if _, err := u.api.Reactivate(ctx(r), email); err != nil {
		u.redirectFlash(w, r, subscriberURL(email), "Not reactivated: "+userMessage(err), true)
		return
	}
	u.chart.drop()
	u.log.Info("adminui: subscriber reactivated", "email", email)
	u.redirectFlash(w, r, subscriberURL(email), email+" is confirmed again and gets the next digest.", false)
}

// pauseSubscriber pauses a reader for the weeks chosen, or resumes them
// (weeks empty): PATCH paused_until, as the API and the command line do.
func (u *UI) pauseSubscriber(w http.ResponseWriter, r *http.Request) {
	email := r.PathValue("email")
	var p herald.SubscriberPatch
	msg := "Mail to " + email + " resumes now."
	if wk := r.PostForm.Get("weeks"); wk != "" {
		n, err := strconv.Atoi(wk)
		if err != nil || !slices.Contains(herald.PauseWeeks, n) {
			u.redirectFlash(w, r, subscriberURL(email), "Not paused: a pause is for 1, 2 or 4 weeks.", true)
			return
		}
		until := u.now().Add(time.Duration(n) * 7 * 24 * time.Hour).UTC()
		p.PausedUntil = herald.OptionalTime{Set: true, Time: &until}
		msg = "Mail to " + email + " is paused until " + until.In(u.opt.Location).Format("2 Jan 2006 15:04 MST") + "."
	} else {
		p.PausedUntil = herald.OptionalTime{Set: true}
	}
	if _, err := u.api.UpdateSubscriber(ctx(r), email, p); err != nil {
		u.redirectFlash(w, r, subscriberURL(email), "Not changed: "+userMessage(err), true)
		return
	}
	u.log.Info("adminui: subscriber paused or resumed", "email", email, "weeks", r.PostForm.Get("weeks"))
	u.redirectFlash(w, r, subscriberURL(email), msg, false)
}
