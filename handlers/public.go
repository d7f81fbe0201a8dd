package handlers

import (
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/herald-dev/herald"
	"github.com/herald-dev/herald/api"
	"github.com/herald-dev/herald/locale"
	"github.com/herald-dev/herald/templates"
)

func (s *Server) subscribePage(w http.ResponseWriter, r *http.Request) {
	freq := r.URL.Query().Get("frequency")
	if !herald.Frequency(freq).Valid() {
		freq = string(s.opt.DefaultFrequency)
	}
	s.page(w, r, http.StatusOK, "subscribe", map[string]any{
		"Title": "Subscribe", "Action": "/subscribe", "Frequency": freq, "Challenge": s.challenge(), "Topics": s.topicBoxes(nil),
	})
}

// challenge is a fresh challenge for the subscribe form while sign-ups
// are asked to solve one, else nil.
func (s *Server) challenge() *herald.Challenge {
	if s.deps.Challenges == nil || !s.deps.Challenges.Required() {
		return nil
	}
	c := s.deps.Challenges.Issue()
	return &c
}

// solved checks a sign-up's answer to the challenge. A form that brings
// none, or a wrong one, is not refused (a browser without script): the
// service has its confirmation wait behind the solved ones. A JSON
// sign-up is asked to solve one (429, with the challenge) while they
// are required; the error says so.
func (s *Server) solved(in SubscribeInput, asJSON bool) (bool, error) {
	if s.deps.Challenges == nil {
		return false, nil
	}
	var why error
	if in.Challenge != "" || in.Solution != "" {
		if why = s.deps.Challenges.Verify(in.Challenge, in.Solution); why == nil {
			return true, nil
		}
	}
	if !asJSON || !s.deps.Challenges.Required() {
		return false, nil
	}
	msg := "Too many sign-ups right now: solve the challenge and send it again (find a number n such that SHA-256(challenge + \":\" + n) starts with difficulty zero bits; send challenge and n as solution)."
	if why != nil {
		msg = herald.ErrorMessage(why) + "."
	}
	return false, &challengeAsked{msg: msg}
}

// challengeAsked: a JSON sign-up must solve a challenge first.
type challengeAsked struct{ msg string }

func (e *challengeAsked) Error() string { return e.msg }

func (s *Server) challengeScript(w http.ResponseWriter, r *http.Request) {
	b, ok := templates.Script("challenge.js")
	if !ok {
		s.notFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
	w.Header().Set("Cache-Control", "public, max-age=3600")
	if r.Method != http.MethodHead {
		_, _ = w.Write(b)
	}
}

// topicBoxes are the offered topics, those in chosen ticked.
func (s *Server) topicBoxes(chosen []string) []herald.TopicChoice {
	return herald.TopicChoices(s.opt.Topics, chosen)
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
				"Lang": s.formLang(r, in.Language), "Challenge": s.challenge(),
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
	solved, err := s.solved(in, asJSON)
	var asked *challengeAsked
	if errors.As(err, &asked) {
		w.Header().Set("Retry-After", "1")
		writeJSON(w, http.StatusTooManyRequests, api.ChallengeAsked{
			ErrorBody: api.ErrorBody{Error: asked.msg, Field: "solution"}, Challenge: s.deps.Challenges.Issue(),
		})
		return
	}
	if err := s.perVisitor(r, "Too many sign-ups from your network. Please try again later."); err != nil {
		fail(err, in)
		return
	}
	if strings.TrimSpace(in.Website) != "" {
		// A bot filled the hidden field: look like success, send nothing.
		s.log.Info("handlers: honeypot filled; ignoring sign-up", "ip", ClientIP(r).String())
		s.subscribed(w, r, asJSON, s.formLang(r, in.Language))
		return
	}
	// The reader's language: what the JSON says (checked by the
	// service), the form's page language, else the browser's.
	lang := in.Language
	if !asJSON || lang == "" {
		lang = s.formLang(r, in.Language)
	}
	_, err = s.deps.Subscriptions.Subscribe(r.Context(), herald.SubscribeRequest{
		Email: in.Email, Name: in.Name, Frequency: in.Frequency, Topics: in.Topics, Timezone: in.Timezone, Language: lang,
		Source: "form", Solved: solved,
	})
	if err != nil {
		fail(err, in)
		return
	}
	s.subscribed(w, r, asJSON, lang)
}

// formLang is the language a form was filled in: its hidden lang field
// when herald speaks it, else the page's (see lang).
func (s *Server) formLang(r *http.Request, field string) string {
	if code, err := s.deps.Templates.Catalog().Parse(field); err == nil && code != "" {
		return code
	}
	return s.lang(r, nil)
}

func (s *Server) subscribed(w http.ResponseWriter, r *http.Request, asJSON bool, lang string) {
	if asJSON {
		writeJSON(w, http.StatusAccepted, map[string]string{"status": "pending"})
		return
	}
	http.Redirect(w, r, "/subscribe/check-email?lang="+url.QueryEscape(lang), http.StatusSeeOther)
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

// sendLink is the one way a reader gets a lost link: "Resend" on the
// check-email page, and "email me my link" on the preferences page. The
// answer is the same whoever owns the address (the service picks the
// email), so it is a redirect to a page that says "if".
func (s *Server) sendLink(w http.ResponseWriter, r *http.Request, page, done string, data map[string]any) {
	vals, err := parseForm(w, r)
	if err != nil {
		s.error(w, r, err)
		return
	}
	if err := s.perVisitor(r, "Too many requests from your network. Please try again later."); err != nil {
		s.error(w, r, err)
		return
	}
	lang := s.formLang(r, vals.Get("lang"))
	if err := s.deps.Subscriptions.SendLink(r.Context(), vals.Get("email")); err != nil {
		if herald.ErrorCode(err) == herald.EINVALID {
			data["Error"], data["Email"], data["Lang"] = herald.ErrorMessage(err), vals.Get("email"), lang
			s.page(w, r, http.StatusUnprocessableEntity, page, data)
			return
		}
		s.error(w, r, err)
		return
	}
	http.Redirect(w, r, done+"&lang="+url.QueryEscape(lang), http.StatusSeeOther)
}

func (s *Server) resend(w http.ResponseWriter, r *http.Request) {
	s.sendLink(w, r, "check-email", "/subscribe/check-email?resent=1", map[string]any{
		"Title": "Check your email", "Action": "/subscribe/resend",
	})
}

// linkPage is "email me my link": /preferences without a token, and
// /preferences/link, where the form lands.
func (s *Server) linkPage(w http.ResponseWriter, r *http.Request) {
	s.page(w, r, http.StatusOK, "link", map[string]any{
		"Title": "Get your link", "Action": "/preferences/link", "Sent": r.URL.Query().Get("sent") == "1",
	})
}

func (s *Server) link(w http.ResponseWriter, r *http.Request) {
	s.sendLink(w, r, "link", "/preferences/link?sent=1", map[string]any{
		"Title": "Get your link", "Action": "/preferences/link",
	})
}

// tokenError answers a bad link: 400 and the ways on from there.
func (s *Server) tokenError(w http.ResponseWriter, r *http.Request, err error) {
	if herald.ErrorCode(err) != herald.EINVALID {
		s.error(w, r, err)
		return
	}
	s.page(w, r, http.StatusBadRequest, "error", map[string]any{
		"Title": "Link not valid", "Heading": "err_link_heading", "Error": herald.ErrorMessage(err),
		"Links": []pageLink{{"/", "link_subscribe_again"}, {"/preferences", "link_email_me_link"}},
	})
}

// pageLink is a way on from an error page; the first is the main one.
// Label is a message id (page translates it; {{.Site}} is the site's name).
type pageLink struct{ URL, Label string }

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

// confirm confirms, then sends the browser on to a page it may reload.
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
	tok = s.deps.Subscriptions.ManageToken(sub.ID)
	if navigation(r) {
		http.Redirect(w, r, "/subscribed?token="+url.QueryEscape(tok), http.StatusSeeOther)
		return
	}
	s.confirmed(w, r, sub, tok)
}

// navigation reports whether r is a browser's own navigation (a person
// pressed the button), which gets post/redirect/get so that a reload does not
// post again. Scripts and other programs get the answer page itself with 200,
// as these routes have always answered.
func navigation(r *http.Request) bool {
	return r.Header.Get("Sec-Fetch-Mode") == "navigate"
}

// confirmed is the "you're subscribed" page; tok is the reader's
// preferences token.
func (s *Server) confirmed(w http.ResponseWriter, r *http.Request, sub *herald.Subscriber, tok string) {
	s.page(w, r, http.StatusOK, "confirmed", map[string]any{
		"Title": "Subscribed", "Email": sub.Email, "Frequency": string(sub.Frequency), "Lang": sub.Language,
		"PrefsURL": "/preferences?token=" + url.QueryEscape(tok),
	})
}

// subscribedPage is where a confirmation lands: "you're subscribed" while
// that is so, the preferences page once it is not.
func (s *Server) subscribedPage(w http.ResponseWriter, r *http.Request) {
	tok := r.URL.Query().Get("token")
	sub, err := s.deps.Subscriptions.ForPreferences(r.Context(), tok)
	if err != nil {
		s.tokenError(w, r, err)
		return
	}
	if sub.Status != herald.StatusConfirmed {
		http.Redirect(w, r, "/preferences?token="+url.QueryEscape(tok), http.StatusSeeOther)
		return
	}
	s.confirmed(w, r, sub, tok)
}

func (s *Server) unsubscribePage(w http.ResponseWriter, r *http.Request) {
	tok := r.URL.Query().Get("token")
	sub, err := s.deps.Subscriptions.ForUnsubscribe(r.Context(), tok)
	if err != nil {
		s.tokenError(w, r, err)
		return
	}
	if sub.Status == herald.StatusUnsubscribed {
		s.unsubscribed(w, r, sub)
		return
	}
	s.page(w, r, http.StatusOK, "unsubscribe", map[string]any{
		"Title": "Unsubscribe", "Email": sub.Email, "Lang": sub.Language,
		"Action":   "/unsubscribe?token=" + url.QueryEscape(tok),
		"PrefsURL": "/preferences?token=" + s.deps.Subscriptions.ManageToken(sub.ID),
	})
}

// unsubscribed is the "you're unsubscribed" page, with the one press that
// undoes it (the preferences form, with the reader's own token).
func (s *Server) unsubscribed(w http.ResponseWriter, r *http.Request, sub *herald.Subscriber) {
	s.page(w, r, http.StatusOK, "unsubscribed", map[string]any{
		"Title": "Unsubscribed", "Email": sub.Email, "Frequency": string(sub.Frequency), "Lang": sub.Language,
		"Action": "/preferences", "Token": s.deps.Subscriptions.ManageToken(sub.ID),
	})
}

// unsubscribe is also the RFC 8058 one-click target: a POST with
// List-Unsubscribe=One-Click, no cookies, no redirect. The token may come in
// the query (one-click) or the form. A person's press in a browser is sent
// on to the unsubscribe page, which then says it is done (and may be
// reloaded); any other POST gets that page at once, with 200.
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
	if vals.Get("List-Unsubscribe") == "One-Click" || !navigation(r) {
		s.unsubscribed(w, r, sub)
		return
	}
	http.Redirect(w, r, "/unsubscribe?token="+url.QueryEscape(tok), http.StatusSeeOther)
}

// prefsDone is what the preferences page says after the form sent the
// browser back to it (the done parameter): a message id.
func prefsDone(done string) string {
	switch done {
	case "saved", "unchanged", "back", "left", "paused", "resumed":
		return "prefs_done_" + done
	}
	return ""
}

// prefsPage renders the preferences page for sub; after an error, with
// the message and the form as it was sent (vals), to put right.
func (s *Server) prefsPage(w http.ResponseWriter, r *http.Request, status int, sub *herald.Subscriber, tok string, vals url.Values, err error) {
	now := s.opt.Now()
	data := map[string]any{
		"Title": "Preferences", "Email": sub.Email, "Status": string(sub.Status),
		"Subscribed": sub.Status == herald.StatusConfirmed || sub.Status == herald.StatusPending,
		"Frequency":  string(sub.Frequency), "Token": tok, "Action": "/preferences",
		"Done":     prefsDone(r.URL.Query().Get("done")),
		"Topics":   s.topicBoxes(sub.Topics),
		"Timezone": sub.Timezone, "SiteZone": s.opt.Timezone, "LocalTime": s.opt.LocalTime,
		"Confirmed":  sub.Status == herald.StatusConfirmed,
		"PauseWeeks": herald.PauseWeeks, "Lang": sub.Language,
	}
	if sub.Paused(now) {
		data["Paused"] = true
		data["Resumes"] = s.localTime(s.deps.Templates.Lang(s.lang(r, data)), *sub.PausedUntil, sub.Timezone)
	}
	if err != nil {
		data["Error"], data["Field"], data["Done"] = herald.ErrorMessage(err), herald.ErrorField(err), ""
		if vals != nil && (vals.Get("action") == "save" || vals.Get("action") == "") {
			data["Frequency"], data["Topics"], data["Timezone"] = vals.Get("frequency"), s.topicBoxes(vals["topics"]), vals.Get("timezone")
		}
	}
	s.page(w, r, status, "preferences", data)
}

// localTime writes t in the reader's zone (or the site's) and language.
func (s *Server) localTime(l *locale.Lang, t time.Time, zone string) string {
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
	return l.DateTime(t.In(loc)) + " (" + name + ")"
}

func (s *Server) preferencesPage(w http.ResponseWriter, r *http.Request) {
	tok := r.URL.Query().Get("token")
	if tok == "" {
		s.linkPage(w, r)
		return
	}
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
		_, err = s.deps.Subscriptions.UnsubscribeFromPreferences(r.Context(), tok)
		done = "left"
	case "resubscribe":
		_, err = s.deps.Subscriptions.Resubscribe(r.Context(), tok, vals.Get("frequency"))
		done = "back"
	case "save", "":
		var changed bool
		_, changed, err = s.deps.Subscriptions.SavePreferences(r.Context(), tok, herald.Preferences{
			Frequency: vals.Get("frequency"), Topics: vals["topics"], Timezone: vals.Get("timezone"),
		})
		done = "saved"
		if !changed {
			done = "unchanged"
		}
	case "pause":
		n, _ := strconv.Atoi(vals.Get("weeks")) // not a number: 0, which Pause refuses
		_, err = s.deps.Subscriptions.Pause(r.Context(), tok, n)
		done = "paused"
	case "resume":
		_, err = s.deps.Subscriptions.Resume(r.Context(), tok)
		done = "resumed"
	default:
		s.error(w, r, herald.Errorf(herald.EINVALID, "unknown action %q", vals.Get("action")).WithField("action"))
		return
	}
	if err != nil {
		s.preferencesError(w, r, tok, vals, err)
		return
	}
	http.Redirect(w, r, "/preferences?done="+done+"&token="+url.QueryEscape(tok), http.StatusSeeOther)
}

// preferencesError shows the preferences page again with what was wrong
// with the choice, nothing changed; a bad token gets the bad-link page.
func (s *Server) preferencesError(w http.ResponseWriter, r *http.Request, tok string, vals url.Values, err error) {
	if f := herald.ErrorField(err); f == "" || f == "token" {
		s.tokenError(w, r, err)
		return
	}
	cur, err2 := s.deps.Subscriptions.ForPreferences(r.Context(), tok)
	if err2 != nil {
		s.tokenError(w, r, err2)
		return
	}
	s.prefsPage(w, r, statusFor(herald.ErrorCode(err)), cur, tok, vals, err)
}
