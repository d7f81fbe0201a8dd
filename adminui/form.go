package adminui

import (
	"html"
	"net/http"
	"net/url"
	"strings"

	"github.com/herald-dev/herald"
)

// formData is the page with the sign-up form to paste into the blog.
type formData struct {
	Action  string // base_url + "/subscribe"
	Base    string
	SiteURL string
	Local   bool // base_url points at this machine: the form works only here
	HTML    string
	Script  string
}

// formSnippet is the form to paste into the blog: plain HTML that posts
// to herald and works without script, with the honeypot field; a
// checkbox per offered topic (digest.topics), and one line of script that
// sends the reader's time zone (without it, the site's).
func formSnippet(action string, topics []string) string {
	var boxes strings.Builder
	if len(topics) > 0 {
		boxes.WriteString("  <fieldset>\n    <legend>Which topics? (none ticked: every post)</legend>\n")
		for _, t := range topics {
			boxes.WriteString(`    <label><input type="checkbox" name="topics" value="` + html.EscapeString(t) + `"> ` + html.EscapeString(t) + "</label>\n")
		}
		boxes.WriteString("  </fieldset>\n")
	}
	return `<form method="post" action="` + action + `">
  <label for="herald-email">Email</label>
  <input type="email" id="herald-email" name="email" required maxlength="254" autocomplete="email">
  <label for="herald-name">Name (optional)</label>
  <input type="text" id="herald-name" name="name" maxlength="100" autocomplete="name">
  <label for="herald-frequency">How often</label>
  <select id="herald-frequency" name="frequency">
    <option value="instant">Every post</option>
    <option value="daily" selected>Daily digest</option>
    <option value="weekly">Weekly digest</option>
  </select>
` + boxes.String() + `  <input type="hidden" id="herald-timezone" name="timezone">
  <script>try{document.getElementById("herald-timezone").value=Intl.DateTimeFormat().resolvedOptions().timeZone}catch(e){}</script>
  <!-- people never see this field; bots fill it and get nothing -->
  <input type="text" name="website" tabindex="-1" autocomplete="off"
         style="position:absolute;left:-9999px" aria-hidden="true">
  <button type="submit">Subscribe</button>
</form>`
}

// scriptSnippet posts the same form as JSON, to stay on the blog's page.
// Under a flood herald answers JSON with a challenge to solve (429 and
// "challenge"), so the snippet solves it with herald's own solver and
// posts again: without that a blog's readers would be turned away.
func scriptSnippet(base, action string) string {
	return `<script src="` + base + `/subscribe/challenge.js"></script>

const post = (body) => fetch("` + action + `", {
  method: "POST",
  headers: {"Content-Type": "application/json"},
  body: JSON.stringify(body),
});
const body = {email, name, frequency: "weekly", topics: [], // topics: any of digest.topics; none: every post
  timezone: Intl.DateTimeFormat().resolvedOptions().timeZone};
let res = await post(body);
if (res.status === 429) {
  const c = (await res.json()).challenge; // under a flood: solve, post again
  if (c) res = await post({...body, challenge: c.challenge, solution: await heraldSolve(c.challenge, c.difficulty)});
}
// 202 {"status":"pending"}            → "Check your inbox to confirm."
// 422 {"error":"…","field":"email"}  → show the message by that field
// 429 with Retry-After                → "Too many sign-ups, try later."`
}

func (u *UI) formPage(w http.ResponseWriter, r *http.Request) {
	base := u.opt.BaseURL
	if base == "" {
		base = "http://" + r.Host
	}
	action := base + "/subscribe"
	d := formData{Action: action, Base: base, SiteURL: u.opt.SiteURL, HTML: formSnippet(action, u.opt.Topics), Script: scriptSnippet(base, action), Local: localBase(base)}
	u.render(w, r, http.StatusOK, "form", &view{Title: "Form for your blog", Active: "form", Data: d})
}

// localBase says whether base_url names this machine: a form pasted into
// a public blog could not reach it.
func localBase(base string) bool {
	u, err := url.Parse(base)
	return err != nil || herald.LocalHost(u.Hostname())
}
