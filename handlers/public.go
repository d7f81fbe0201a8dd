package handlers

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/herald-dev/herald"
)

func (s *Server) subscribePage(w http.ResponseWriter, r *http.Request) {
	freq := r.URL.Query().Get("frequency")
	if !herald.Frequency(freq).Valid() {
		freq = string(s.opt.DefaultFrequency)
	}
	s.page(w, r, http.StatusOK, "subscribe", map[string]any{
		"Title": "Subscribe", "Action": "/subscribe", "Frequency": freq, "Topics": s.topicBoxes(nil),
	})
}

// topicBox is one topic's checkbox.
type topicBox struct {
	Name    string
	Checked bool
}

// topicBoxes are the offered topics, those in chosen ticked (any case).
func (s *Server) topicBoxes(chosen []string) []topicBox {
	out := make([]topicBox, len(s.opt.Topics))
	for i, t := range s.opt.Topics {
		out[i].Name = t
		for _, c := range chosen {
			if strings.EqualFold(strings.TrimSpace(c), t) {
				out[i].Checked = true
			}
		}
	}
	return out
}

// subscribe answers the same whether the address is new, pending or
// already subscribed, so nobody learns who reads the blog.
func (s *Server) subscribe(w http.ResponseWriter, r *http.Request) {
	asJSON := wantsJSON(r)
	fail := func(err error, in SubscribeInput) {
		if asJSON {
			s.jsonError(w, r, err)
			return
		}
		code := herald.ErrorCode(err)
		if code == herald.EINVALID {
			freq := in.Frequency
			if !herald.Frequency(freq).Valid() {
				freq = string(s.opt.DefaultFrequency)
			}
			s.page(w, r, http.StatusUnprocessableEntity, "subscribe", map[string]any{
				"Title": "Subscribe", "Action": "/subscribe", "Error": herald.ErrorMessage(err),
				"Field": herald.ErrorField(err), "Email": in.Email, "Name": in.Name, "Frequency": freq,
				"Topics": s.topicBoxes(in.Topics), "Timezone": in.Timezone, "SiteZone": s.opt.Timezone,
			})
			return
		}
		s.error(w, r, err)
	}
	s.cors(w, r)
	body, err := readBody(w, r)
	if err != nil {
		fail(err, SubscribeInput{})
		return
	}
	in, err := DecodeSubscribe(r.Header.Get("Content-Type"), body)
	if err != nil {
		fail(err, in)
		return
	}
	if ok, retry := s.ipLim.allow(ClientIP(r).String()); !ok {
		fail(&herald.Error{Code: herald.ERATELIMIT, Message: "Too many sign-ups from your network. Please try again later.", RetryAfter: retry}, in)
		return
	}
	if strings.TrimSpace(in.Website) != "" {
		// A bot filled the hidden field: look like success, send nothing.
		s.log.Info("handlers: honeypot filled; ignoring sign-up", "ip", ClientIP(r).String())
		s.subscribed(w, r, asJSON)
		return
	}
	_, err = s.deps.Subscriptions.Subscribe(r.Context(), herald.SubscribeRequest{
		Email: in.Email, Name: in.Name, Frequency: in.Frequency, Topics: in.Topics, Timezone: in.Timezone, Source: "form",
	})
	if err != nil {
		fail(err, in)
		return
	}
	s.subscribed(w, r, asJSON)
}

func (s *Server) subscribed(w http.ResponseWriter, r *http.Request, asJSON bool) {
	if asJSON {
		writeJSON(w, http.StatusAccepted, map[string]string{"status": "pending"})
		return
	}
	http.Redirect(w, r, "/subscribe/check-email", http.StatusSeeOther)
}

// cors lets the blog's own pages post JSON to us.
func (s *Server) cors(w http.ResponseWriter, r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" || s.opt.SiteURL == "" {
		return false
	}
	u, err := url.Parse(s.opt.SiteURL)
	if err != nil || origin != u.Scheme+"://"+u.Host {
		return false
	}
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", origin)
	h.Add("Vary", "Origin")
	return true
}

func (s *Server) preflight(w http.ResponseWriter, r *http.Request) {
	if !s.cors(w, r) {
		w.WriteHeader(http.StatusForbidden)
		return
	}
	h := w.Header()
	h.Set("Access-Control-Allow-Methods", "POST, OPTIONS")
	h.Set("Access-Control-Allow-Headers", "Content-Type, Accept")
	h.Set("Access-Control-Max-Age", "86400")
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) checkEmail(w http.ResponseWriter, r *http.Request) {
	s.page(w, r, http.StatusOK, "check-email", map[string]any{
		"Title": "Check your email", "Action": "/subscribe/resend", "Resent": r.URL.Query().Get("resent") == "1",
	})
}

func (s *Server) resend(w http.ResponseWriter, r *http.Request) {
	vals, err := parseForm(w, r)
	if err != nil {
		s.error(w, r, err)
		return
	}
	if ok, retry := s.ipLim.allow(ClientIP(r).String()); !ok {
		s.error(w, r, &herald.Error{Code: herald.ERATELIMIT, Message: "Too many requests from your network. Please try again later.", RetryAfter: retry})
		return
	}
	if err := s.deps.Subscriptions.Resend(r.Context(), vals.Get("email")); err != nil {
		if herald.ErrorCode(err) == herald.EINVALID {
			s.page(w, r, http.StatusUnprocessableEntity, "check-email", map[string]any{
				"Title": "Check your email", "Action": "/subscribe/resend",
			})
			return
		}
		s.error(w, r, err)
		return
	}
	http.Redirect(w, r, "/subscribe/check-email?resent=1", http.StatusSeeOther)
}

// tokenError answers a bad link: 400 and a way to start again.
func (s *Server) tokenError(w http.ResponseWriter, r *http.Request, err error) {
	if herald.ErrorCode(err) != herald.EINVALID {
		s.error(w, r, err)
		return
	}
	s.page(w, r, http.StatusBadRequest, "error", map[string]any{
		"Title": "Link not valid", "Heading": "This link doesn't work", "Error": herald.ErrorMessage(err), "SubscribeURL": "/",
	})
}

// confirmPage changes nothing: mail scanners follow links. Its script
// posts the token back at once; the button does it without script.
func (s *Server) confirmPage(w http.ResponseWriter, r *http.Request) {
	tok := r.URL.Query().Get("token")
	if err := s.deps.Subscriptions.CheckConfirmToken(tok); err != nil {
		s.tokenError(w, r, err)
		return
	}
	s.page(w, r, http.StatusOK, "confirm", map[string]any{"Title": "Confirm", "Action": "/confirm", "Token": tok})
}

// formAndToken reads a form, and the link's token from it (or else from
// the query).
func formAndToken(w http.ResponseWriter, r *http.Request) (url.Values, string, error) {
	vals, err := parseForm(w, r)
	if err != nil {
		return nil, "", err
	}
	tok := vals.Get("token")
	if tok == "" {
		tok = r.URL.Query().Get("token")
	}
	return vals, tok, nil
}

func (s *Server) confirm(w http.ResponseWriter, r *http.Request) {
	_, tok, err := formAndToken(w, r)
	if err != nil {
		s.error(w, r, err)
		return
	}
	sub, err := s.deps.Subscriptions.Confirm(r.Context(), tok)
	if err != nil {
		s.tokenError(w, r, err)
		return
	}
	s.page(w, r, http.StatusOK, "confirmed", map[string]any{
		"Title": "Subscribed", "Email": sub.Email, "Frequency": string(sub.Frequency),
		"PrefsURL": "/preferences?token=" + s.deps.Subscriptions.ManageToken(sub.ID),
	})
}

func (s *Server) unsubscribePage(w http.ResponseWriter, r *http.Request) {
	tok := r.URL.Query().Get("token")
	sub, err := s.deps.Subscriptions.ForUnsubscribe(r.Context(), tok)
	if err != nil {
		s.tokenError(w, r, err)
		return
	}
	if sub.Status == herald.StatusUnsubscribed {
		s.page(w, r, http.StatusOK, "unsubscribed", map[string]any{"Title": "Unsubscribed", "Email": sub.Email, "SubscribeURL": "/"})
		return
	}
	s.page(w, r, http.StatusOK, "unsubscribe", map[string]any{
		"Title": "Unsubscribe", "Email": sub.Email,
		"Action":   "/unsubscribe?token=" + url.QueryEscape(tok),
		"PrefsURL": "/preferences?token=" + s.deps.Subscriptions.ManageToken(sub.ID),
	})
}

// unsubscribe is also the RFC 8058 one-click target: a POST with
// List-Unsubscribe=One-Click, no cookies, no redirect. The token may come in
// the query (one-click) or the form.
func (s *Server) unsubscribe(w http.ResponseWriter, r *http.Request) {
	vals, err := parseForm(w, r)
	if err != nil {
		s.error(w, r, err)
		return
	}
	tok := r.URL.Query().Get("token")
	if tok == "" {
		tok = vals.Get("token")
	}
	sub, err := s.deps.Subscriptions.Unsubscribe(r.Context(), tok)
	if err != nil {
		s.tokenError(w, r, err)
		return
	}
	s.page(w, r, http.StatusOK, "unsubscribed", map[string]any{"Title": "Unsubscribed", "Email": sub.Email, "SubscribeURL": "/"})
}

// prefsPage renders the preferences page for sub, with the form as it
// was sent (vals) when an error is shown.
func (s *Server) prefsPage(w http.ResponseWriter, r *http.Request, status int, sub *herald.Subscriber, tok string, vals url.Values, err error) {
	now := s.opt.Now()
	data := map[string]any{
		"Title": "Preferences", "Email": sub.Email, "Status": string(sub.Status),
		"Frequency": string(sub.Frequency), "Token": tok, "Action": "/preferences",
		"Saved":    r.URL.Query().Get("saved") == "1",
		"Topics":   s.topicBoxes(sub.Topics),
		"Timezone": sub.Timezone, "SiteZone": s.opt.Timezone, "LocalTime": s.opt.LocalTime,
		"Confirmed":  sub.Status == herald.StatusConfirmed,
		"PauseWeeks": herald.PauseWeeks,
	}
	if sub.Paused(now) {
		data["Paused"] = true
		data["Resumes"] = s.localTime(*sub.PausedUntil, sub.Timezone)
	}
	switch r.URL.Query().Get("done") {
	case "paused":
		data["Notice"] = "Paused."
	case "resumed":
		data["Notice"] = "Mail resumes now."
	}
	if err != nil {
		data["Error"], data["Field"] = herald.ErrorMessage(err), herald.ErrorField(err)
		data["Saved"], data["Notice"] = false, nil
		if vals != nil && vals.Get("action") == "save" {
			// What the reader sent, to put right.
			data["Frequency"], data["Topics"], data["Timezone"] = vals.Get("frequency"), s.topicBoxes(vals["topics"]), vals.Get("timezone")
		}
	}
	s.page(w, r, status, "preferences", data)
}

// localTime writes t in the reader's zone (or the site's).
func (s *Server) localTime(t time.Time, zone string) string {
	name := zone
	if name == "" {
		name = s.opt.Timezone
	}
	loc := time.UTC
	if _, l, err := herald.ParseTimezone(name); err == nil && l != nil {
		loc = l
	} else {
		name = "UTC"
	}
	return t.In(loc).Format("Monday 2 January 2006 at 15:04") + " (" + name + ")"
}

func (s *Server) preferencesPage(w http.ResponseWriter, r *http.Request) {
	tok := r.URL.Query().Get("token")
	sub, err := s.deps.Subscriptions.ForPreferences(r.Context(), tok)
	if err != nil {
		s.tokenError(w, r, err)
		return
	}
	s.prefsPage(w, r, http.StatusOK, sub, tok, nil, nil)
}

func (s *Server) preferences(w http.ResponseWriter, r *http.Request) {
	vals, tok, err := formAndToken(w, r)
	if err != nil {
		s.error(w, r, err)
		return
	}
	var done string
	switch vals.Get("action") {
	case "unsubscribe":
		sub, err := s.deps.Subscriptions.UnsubscribeFromPreferences(r.Context(), tok)
		if err != nil {
			s.tokenError(w, r, err)
			return
		}
		s.page(w, r, http.StatusOK, "unsubscribed", map[string]any{"Title": "Unsubscribed", "Email": sub.Email, "SubscribeURL": "/"})
		return
	case "save", "":
		_, err = s.deps.Subscriptions.SavePreferences(r.Context(), tok, herald.Preferences{
			Frequency: vals.Get("frequency"), Topics: vals["topics"], Timezone: vals.Get("timezone"),
		})
		done = "saved=1"
	case "pause":
		n, _ := strconv.Atoi(vals.Get("weeks")) // not a number: 0, which Pause refuses
		_, err = s.deps.Subscriptions.Pause(r.Context(), tok, n)
		done = "done=paused"
	case "resume":
		_, err = s.deps.Subscriptions.Resume(r.Context(), tok)
		done = "done=resumed"
	default:
		s.error(w, r, herald.Errorf(herald.EINVALID, "unknown action %q", vals.Get("action")).WithField("action"))
		return
	}
	if err != nil {
		if f := herald.ErrorField(err); herald.ErrorCode(err) == herald.EINVALID && f != "token" {
			// Bad input: the page again, with the message, nothing changed.
			cur, err2 := s.deps.Subscriptions.ForPreferences(r.Context(), tok)
			if err2 != nil {
				s.tokenError(w, r, err2)
				return
			}
			s.prefsPage(w, r, http.StatusUnprocessableEntity, cur, tok, vals, err)
			return
		}
		s.tokenError(w, r, err)
		return
	}
	http.Redirect(w, r, "/preferences?"+done+"&token="+url.QueryEscape(tok), http.StatusSeeOther)
}
