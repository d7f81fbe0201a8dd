package handlers_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/herald-dev/herald"
	"github.com/herald-dev/herald/api"
	"github.com/herald-dev/herald/internal/testenv"
)

var courtTopics = []string{"Prisons", "Courts", "Policing"}

// The form takes topics (one field per ticked box) and the zone its
// script filled in; bad ones come back as the form with the message,
// boxes still ticked, nothing stored.
func TestSubscribeFormTopicsAndZone(t *testing.T) {
	e := newEnv(t, testenv.Options{Topics: courtTopics})
	page := e.Get("/")
	for _, want := range []string{`name="topics" value="Courts"`, `name="timezone"`, `Intl.DateTimeFormat().resolvedOptions().timeZone`, "none ticked: every post"} {
		if !strings.Contains(page.Body, want) {
			t.Errorf("the form lacks %q", want)
		}
	}
	r := e.form("/subscribe", url.Values{"email": {"t@example.org"}, "topics": {"Courts", "policing"}, "timezone": {"America/New_York"}})
	if r.Status != http.StatusSeeOther {
		t.Fatalf("subscribe: %d %s", r.Status, r.Body)
	}
	if s := e.sub("t@example.org"); !slices.Equal(s.Topics, herald.TopicList{"Courts", "Policing"}) || s.Timezone != "America/New_York" {
		t.Errorf("stored %v %q", s.Topics, s.Timezone)
	}
	for _, c := range []struct {
		vals  url.Values
		field string
		shows []string
	}{
		{url.Values{"topics": {"Courts", "Sport"}}, "topics", []string{"Unknown topic", `value="Courts" checked`}},
		{url.Values{"topics": {"Courts", "Courts", "Courts", "Courts"}}, "topics", []string{"4 topics given"}},
		{url.Values{"timezone": {"Europe/Atlantis"}}, "timezone", []string{"Unknown time zone", `type="text" id="timezone" name="timezone" value="Europe/Atlantis"`}},
	} {
		c.vals.Set("email", "bad@example.org")
		r := e.form("/subscribe", c.vals)
		if r.Status != http.StatusUnprocessableEntity {
			t.Errorf("%v: %d", c.vals, r.Status)
			continue
		}
		for _, want := range c.shows {
			if !strings.Contains(r.Body, want) {
				t.Errorf("%v: the page lacks %q", c.vals, want)
			}
		}
	}
	// JSON: 422 naming the field.
	r = e.do(http.MethodPost, "/subscribe", "application/json", `{"email":"bad@example.org","topics":["Elections"]}`)
	var eb api.ErrorBody
	if r.Status != http.StatusUnprocessableEntity || json.Unmarshal([]byte(r.Body), &eb) != nil || eb.Field != "topics" {
		t.Errorf("JSON with an unknown topic: %d %s", r.Status, r.Body)
	}
	r = e.do(http.MethodPost, "/subscribe", "application/json", `{"email":"bad@example.org","timezone":"Moon/Base"}`)
	if r.Status != http.StatusUnprocessableEntity || !strings.Contains(r.Body, `"field":"timezone"`) {
		t.Errorf("JSON with a made-up zone: %d %s", r.Status, r.Body)
	}
	if _, err := e.DB.SubscriberByEmail(t.Context(), "bad@example.org"); herald.ErrorCode(err) != herald.ENOTFOUND {
		t.Errorf("bad input stored a reader: %v", err)
	}
	// Other fields still may not repeat.
	if r := e.form("/subscribe", url.Values{"email": {"a@example.org", "b@example.org"}}); r.Status != http.StatusBadRequest {
		t.Errorf("a repeated email field: %d", r.Status)
	}
}

func TestPreferencesTopicsZoneAndPause(t *testing.T) {
	e := newEnv(t, testenv.Options{Topics: courtTopics})
	sub := e.Confirmed("p@example.org", herald.Daily)
	tok := e.Subs.ManageToken(sub.ID)
	prefs := "/preferences?token=" + url.QueryEscape(tok)
	page := e.Get(prefs)
	for _, want := range []string{`name="topics" value="Prisons"`, `id="timezone"`, "Pause 1 week", "Pause 2 weeks", "Pause 4 weeks", "not sent afterwards"} {
		if !strings.Contains(page.Body, want) {
			t.Errorf("the page lacks %q", want)
		}
	}
	r := e.form("/preferences", url.Values{"token": {tok}, "action": {"save"}, "frequency": {"weekly"}, "topics": {"Prisons"}, "timezone": {"Asia/Kolkata"}})
	if r.Status != http.StatusSeeOther {
		t.Fatalf("save: %d %s", r.Status, r.Body)
	}
	s := e.sub("p@example.org")
	if s.Frequency != herald.Weekly || !slices.Equal(s.Topics, herald.TopicList{"Prisons"}) || s.Timezone != "Asia/Kolkata" {
		t.Fatalf("saved %+v", s)
	}
	if page := e.Get(r.Location()); !strings.Contains(page.Body, `value="Prisons" checked`) || !strings.Contains(page.Body, `value="Asia/Kolkata"`) || !strings.Contains(page.Body, "Saved.") {
		t.Errorf("the page after saving:\n%s", page.Body)
	}
	for _, vals := range []url.Values{
		{"action": {"save"}, "frequency": {"daily"}, "topics": {"Sport"}},
		{"action": {"save"}, "frequency": {"daily"}, "timezone": {"Asia/Nowhere"}},
		{"action": {"pause"}, "weeks": {"3"}},
		{"action": {"pause"}, "weeks": {"forever"}},
	} {
		vals.Set("token", tok)
		r := e.form("/preferences", vals)
		if r.Status != http.StatusUnprocessableEntity || strings.Contains(r.Body, "Saved.") {
			t.Errorf("%v: %d", vals, r.Status)
		}
	}
	if s := e.sub("p@example.org"); s.Frequency != herald.Weekly || s.Timezone != "Asia/Kolkata" || s.PausedUntil != nil {
		t.Errorf("bad input changed the reader: %+v", s)
	}
	// Pause for two weeks: the page says until when, and offers to resume.
	before := time.Now()
	r = e.form("/preferences", url.Values{"token": {tok}, "action": {"pause"}, "weeks": {"2"}})
	if r.Status != http.StatusSeeOther {
		t.Fatalf("pause: %d %s", r.Status, r.Body)
	}
	s = e.sub("p@example.org")
	if s.PausedUntil == nil || s.PausedUntil.Sub(before) < 14*24*time.Hour || s.PausedUntil.Sub(before) > 14*24*time.Hour+time.Minute {
		t.Fatalf("paused until %v", s.PausedUntil)
	}
	kolkata, _ := time.LoadLocation("Asia/Kolkata")
	page = e.Get(r.Location())
	for _, want := range []string{"Mail is paused", s.PausedUntil.In(kolkata).Format("2 January 2006 at 15:04") + " (Asia/Kolkata)", "Resume now", "not sent afterwards"} {
		if !strings.Contains(page.Body, want) {
			t.Errorf("the paused page lacks %q", want)
		}
	}
	if strings.Contains(page.Body, "Pause 1 week") {
		t.Error("a paused reader is offered to pause")
	}
	r = e.form("/preferences", url.Values{"token": {tok}, "action": {"resume"}})
	if r.Status != http.StatusSeeOther || e.sub("p@example.org").Paused(time.Now()) {
		t.Fatalf("resume: %d", r.Status)
	}
	if page := e.Get(r.Location()); strings.Contains(page.Body, "Mail is paused") || !strings.Contains(page.Body, "Mail resumes now.") {
		t.Errorf("after resuming:\n%s", page.Body)
	}
	// The data export has the choices.
	data := e.Get("/preferences/data?token=" + url.QueryEscape(tok))
	if !strings.Contains(data.Body, `"topics": [`) || !strings.Contains(data.Body, `"timezone": "Asia/Kolkata"`) {
		t.Errorf("data export:\n%s", data.Body)
	}
}

// PATCH /api/v1/subscribers/{email}: 200 with the reader; 422 naming a
// bad field; nothing changes on a bad request.
func TestAPIPatchSubscriber(t *testing.T) {
	e := newEnv(t, testenv.Options{AdminToken: adminToken, Topics: courtTopics})
	e.Confirmed("api@example.org", herald.Daily)
	until := time.Now().Add(3 * 24 * time.Hour).UTC().Truncate(time.Second)
	r := e.api(http.MethodPatch, "/api/v1/subscribers/api@example.org",
		`{"name":"Api","frequency":"weekly","topics":["courts"],"timezone":"Europe/London","paused_until":"`+until.Format(time.RFC3339)+`"}`)
	var got herald.Subscriber
	if r.Status != http.StatusOK || json.Unmarshal([]byte(r.Body), &got) != nil {
		t.Fatalf("patch: %d %s", r.Status, r.Body)
	}
	if got.Name != "Api" || got.Frequency != herald.Weekly || !slices.Equal(got.Topics, herald.TopicList{"Courts"}) || got.Timezone != "Europe/London" ||
		got.PausedUntil == nil || !got.PausedUntil.Equal(until) {
		t.Fatalf("patched %s", r.Body)
	}
	past := time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)
	for _, c := range []struct {
		body   string
		status int
		field  string
	}{
		{`{"topics":["Sport"]}`, 422, "topics"},
		{`{"topics":["Courts","Prisons","Policing","Courts"]}`, 422, "topics"},
		{`{"timezone":"Europe/Narnia"}`, 422, "timezone"},
		{`{"timezone":"Local"}`, 422, "timezone"},
		{`{"paused_until":"` + past + `"}`, 422, "paused_until"},
		{`{"paused_until":"tomorrow"}`, 422, "paused_until"},
		{`{"frequency":"hourly"}`, 422, "frequency"},
		{`{"topics":"Courts"}`, 400, ""},
		{`{"colour":"blue"}`, 400, ""},
		{`{"name":`, 400, ""},
	} {
		r := e.api(http.MethodPatch, "/api/v1/subscribers/api@example.org", c.body)
		var eb api.ErrorBody
		_ = json.Unmarshal([]byte(r.Body), &eb)
		if r.Status != c.status || eb.Field != c.field || eb.Error == "" {
			t.Errorf("%s: %d %s, want %d naming %q", c.body, r.Status, r.Body, c.status, c.field)
		}
	}
	if s := e.sub("api@example.org"); s.Timezone != "Europe/London" || len(s.Topics) != 1 || s.Frequency != herald.Weekly {
		t.Errorf("a refused patch changed the reader: %+v", s)
	}
	// null resumes; the pause is over, and the API shows none.
	r = e.api(http.MethodPatch, "/api/v1/subscribers/api@example.org", `{"paused_until":null}`)
	if r.Status != http.StatusOK || !strings.Contains(r.Body, `"paused_until":null`) {
		t.Errorf("resume: %d %s", r.Status, r.Body)
	}
	if r := e.api(http.MethodPatch, "/api/v1/subscribers/nobody@example.org", `{"name":"X"}`); r.Status != http.StatusNotFound {
		t.Errorf("unknown reader: %d", r.Status)
	}
	// The subscriber object carries the choices everywhere.
	r = e.api(http.MethodGet, "/api/v1/subscribers?q=api", "")
	if !strings.Contains(r.Body, `"topics":["Courts"]`) || !strings.Contains(r.Body, `"timezone":"Europe/London"`) {
		t.Errorf("list: %s", r.Body)
	}
	// A test email for a topic: an unknown one is refused.
	if r := e.api(http.MethodPost, "/api/v1/test-email", `{"to":"ed@example.org","topics":["Sport"]}`); r.Status != 422 || !strings.Contains(r.Body, `"field":"topics"`) {
		t.Errorf("test email for an unknown topic: %d %s", r.Status, r.Body)
	}
}

// GET /api/v1/schedule: the next time of each schedule.
func TestAPISchedule(t *testing.T) {
	e := newEnv(t, testenv.Options{AdminToken: adminToken})
	r := e.api(http.MethodGet, "/api/v1/schedule", "")
	var tt herald.Timetable
	if r.Status != http.StatusOK || json.Unmarshal([]byte(r.Body), &tt) != nil {
		t.Fatalf("schedule: %d %s", r.Status, r.Body)
	}
	// testenv sets no schedules.
	if tt.LocalTime || len(tt.Schedules) != 3 || tt.Schedules[1].Next != nil {
		t.Errorf("schedule %s", r.Body)
	}
}
