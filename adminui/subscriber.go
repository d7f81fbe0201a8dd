package adminui

import (
	"net/http"
	"net/url"
	"strings"

	"github.com/herald-dev/herald"
	"github.com/herald-dev/herald/api"
)

// The page of one subscriber: who they are, and what an admin may do
// about them, each through the admin API (as the command line does).

type subscriberData struct {
	Sub   *herald.Subscriber
	Freqs []string
	// URL is this page; Error is what went wrong with the edit form, and
	// Name and Frequency what it held.
	URL             string
	Error           string
	Name, Frequency string
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
	d := subscriberData{Sub: sub, Freqs: frequencies, URL: subscriberURL(sub.Email), Error: errMsg, Name: sub.Name, Frequency: string(sub.Frequency)}
	if form != nil {
		d.Name, d.Frequency = form.Name, form.Frequency
	}
	u.render(w, r, status, "subscriber", &view{Title: sub.Email, Active: "subscribers", Data: d})
}

// updateSubscriber is the edit form: PATCH /api/v1/subscribers/{email}
// with the fields shown.
func (u *UI) updateSubscriber(w http.ResponseWriter, r *http.Request) {
	email := r.PathValue("email")
	name, freq := strings.TrimSpace(r.PostForm.Get("name")), r.PostForm.Get("frequency")
	_, err := u.api.UpdateSubscriber(ctx(r), email, herald.SubscriberPatch{Name: &name, Frequency: &freq})
	if err != nil {
		status := api.StatusOf(err)
		if status < 400 || status >= 500 {
			status = http.StatusBadGateway
		}
		u.showSubscriber(w, r, status, userMessage(err), &subscriberData{Name: name, Frequency: freq})
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
