package handlers_test

import (
	"context"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/herald-dev/herald"
	"github.com/herald-dev/herald/handlers"
	"github.com/herald-dev/herald/internal/testenv"
)

func (e *env) confirmedReader(email string) *herald.Subscriber {
	e.T.Helper()
	s, err := e.Subs.Subscribe(context.Background(), herald.SubscribeRequest{Email: email, Frequency: "daily", Confirmed: true, Source: "import"})
	if err != nil {
		e.T.Fatal(err)
	}
	return s
}

func TestBounceWebhook(t *testing.T) {
	e := newEnv(t, testenv.Options{AdminToken: adminToken, SiteName: "Test Blög", Archive: true})
	e.confirmedReader("r@example.org")
	e.confirmedReader("c@example.org")

	var got struct {
		Email   string `json:"email"`
		Status  string `json:"status"`
		Bounces int    `json:"bounces"`
	}
	for i := 1; i <= 3; i++ {
		r := e.api(http.MethodPost, "/api/v1/bounces", `{"email":"r@example.org","kind":"hard"}`)
		if r.Status != http.StatusOK {
			t.Fatalf("hard bounce %d: %d %s", i, r.Status, r.Body)
		}
		_ = json.Unmarshal([]byte(r.Body), &got)
		if got.Bounces != i {
			t.Fatalf("bounce %d answered %+v", i, got)
		}
	}
	if got.Status != "bounced" || e.status("r@example.org") != herald.StatusBounced {
		t.Fatalf("after 3 hard bounces: %+v", got)
	}
	// Soft: counted, nothing changes.
	if r := e.api(http.MethodPost, "/api/v1/bounces", `{"email":"c@example.org","kind":"soft"}`); r.Status != http.StatusOK || e.status("c@example.org") != herald.StatusConfirmed {
		t.Fatalf("soft: %d %s", r.Status, r.Body)
	}
	// Complaint: unsubscribed at once.
	if r := e.api(http.MethodPost, "/api/v1/bounces", `{"email":"c@example.org","kind":"complaint"}`); r.Status != http.StatusOK || e.status("c@example.org") != herald.StatusUnsubscribed {
		t.Fatalf("complaint: %d %s", r.Status, r.Body)
	}
	for _, c := range []struct {
		body string
		want int
	}{
		{`{"email":"nobody@example.org","kind":"hard"}`, http.StatusNotFound},
		{`{"email":"r@example.org","kind":"sideways"}`, http.StatusUnprocessableEntity},
		{`{"email":"r@example.org"}`, http.StatusUnprocessableEntity},
		{`{"email":"not-an-address","kind":"hard"}`, http.StatusUnprocessableEntity},
		{`{"email":"r@example.org","kind":"hard","extra":1}`, http.StatusBadRequest},
		{`{"email":`, http.StatusBadRequest},
		{``, http.StatusBadRequest},
	} {
		r := e.api(http.MethodPost, "/api/v1/bounces", c.body)
		if r.Status != c.want || !strings.Contains(r.Body, `"error"`) {
			t.Errorf("%s: %d %s, want %d", c.body, r.Status, r.Body, c.want)
		}
	}
	// Admin only.
	if r := e.do(http.MethodPost, "/api/v1/bounces", "application/json", `{"email":"c@example.org","kind":"complaint"}`); r.Status != http.StatusUnauthorized {
		t.Errorf("without the token: %d", r.Status)
	}

	// Reactivate: bounced → confirmed with bounces reset; 409 otherwise.
	r := e.api(http.MethodPost, "/api/v1/subscribers/r@example.org/reactivate", "")
	if r.Status != http.StatusOK || !strings.Contains(r.Body, `"status":"confirmed"`) {
		t.Fatalf("reactivate: %d %s", r.Status, r.Body)
	}
	if s, _ := e.DB.SubscriberByEmail(context.Background(), "r@example.org"); s.Bounces != 0 || s.Status != herald.StatusConfirmed {
		t.Fatalf("after reactivate: %+v", s)
	}
	for path, want := range map[string]int{
		"/api/v1/subscribers/r@example.org/reactivate":      http.StatusConflict,
		"/api/v1/subscribers/c@example.org/reactivate":      http.StatusConflict,
		"/api/v1/subscribers/nobody@example.org/reactivate": http.StatusNotFound,
		"/api/v1/subscribers/bad%20address/reactivate":      http.StatusUnprocessableEntity,
	} {
		if r := e.api(http.MethodPost, path, ""); r.Status != want {
			t.Errorf("%s: %d %s, want %d", path, r.Status, r.Body, want)
		}
	}
}

func TestArchiveRoutes(t *testing.T) {
	e := newEnv(t, testenv.Options{AdminToken: adminToken, SiteName: "Test Blög", Archive: true})
	ctx := context.Background()

	// Empty archive: a page that says so, and an empty feed.
	if r := e.do(http.MethodGet, "/archive", "", ""); r.Status != http.StatusOK || !strings.Contains(r.Body, "No digests yet") {
		t.Fatalf("empty /archive: %d %s", r.Status, r.Body)
	}
	day := time.Date(2026, 3, 1, 7, 0, 0, 0, time.UTC)
	for id := uint64(1); id <= 25; id++ {
		err := e.DB.PutArchive(ctx, &herald.ArchiveEntry{
			ID: id, Frequency: herald.Daily, Date: day.AddDate(0, 0, int(id)), Cutoff: id,
			Subject: fmt.Sprintf("Digest <%d> & co", id), Posts: 1, Titles: []string{"Post ünïcode " + fmt.Sprint(id)},
			HTML: `<!doctype html><html><head><title>t</title></head><body style="margin:0"><table><tr><td><a href="https://blog.example.org/p">Post ` + fmt.Sprint(id) + `</a></td></tr></table></body></html>`,
			Text: "Post",
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	r := e.do(http.MethodGet, "/archive", "", "")
	if r.Status != http.StatusOK || !strings.Contains(r.Body, `href="/archive/25"`) || !strings.Contains(r.Body, "Digest &lt;25&gt; &amp; co") ||
		strings.Contains(r.Body, `href="/archive/5"`) || !strings.Contains(r.Body, `href="/archive?before=6"`) || !strings.Contains(r.Body, "Post ünïcode 25") {
		t.Fatalf("/archive page 1: %d\n%s", r.Status, r.Body)
	}
	r = e.do(http.MethodGet, "/archive?before=6", "", "")
	if r.Status != http.StatusOK || !strings.Contains(r.Body, `href="/archive/5"`) || strings.Contains(r.Body, `href="/archive/6"`) || strings.Contains(r.Body, "before=") {
		t.Fatalf("/archive page 2: %d\n%s", r.Status, r.Body)
	}
	for _, q := range []string{"abc", "-1", "0", "99999999999999999999999"} {
		if r := e.do(http.MethodGet, "/archive?before="+url.QueryEscape(q), "", ""); r.Status != http.StatusUnprocessableEntity {
			t.Errorf("before=%s: %d", q, r.Status)
		}
	}

	r = e.do(http.MethodGet, "/archive/7", "", "")
	csp := r.Header.Get("Content-Security-Policy")
	if r.Status != http.StatusOK || !strings.Contains(r.Body, "Post 7") || !strings.Contains(r.Body, `href="/archive"`) ||
		!strings.Contains(csp, "style-src 'unsafe-inline'") || strings.Contains(csp, "script-src") || !strings.Contains(csp, "default-src 'none'") {
		t.Fatalf("/archive/7: %d csp %q\n%s", r.Status, csp, r.Body)
	}
	if i, j := strings.Index(r.Body, `<body style="margin:0">`), strings.Index(r.Body, "All digests"); i < 0 || j < i {
		t.Errorf("the bar is not inside the body:\n%s", r.Body)
	}
	// The page says what it is: the subject as its heading, and the date.
	if !strings.Contains(r.Body, `>Digest &lt;7&gt; &amp; co</h1>`) || !strings.Contains(r.Body, `<time datetime="2026-03-08T07:00:00Z">8 March 2026</time> · Daily digest · 1 post`) {
		t.Errorf("/archive/7 has no heading or date:\n%s", r.Body)
	}
	for _, p := range []string{"/archive/99", "/archive/abc", "/archive/0", "/archive/-3"} {
		if r := e.do(http.MethodGet, p, "", ""); r.Status != http.StatusNotFound {
			t.Errorf("%s: %d", p, r.Status)
		}
	}
	if r := e.do(http.MethodPost, "/archive", "application/x-www-form-urlencoded", ""); r.Status != http.StatusMethodNotAllowed {
		t.Errorf("POST /archive: %d", r.Status)
	}

	r = e.do(http.MethodGet, "/archive.xml", "", "")
	if r.Status != http.StatusOK || !strings.HasPrefix(r.Header.Get("Content-Type"), "application/rss+xml") {
		t.Fatalf("/archive.xml: %d %s", r.Status, r.Header.Get("Content-Type"))
	}
	var rss struct {
		Version string `xml:"version,attr"`
		Channel struct {
			Title string `xml:"title"`
			Link  string `xml:"link"`
			Items []struct {
				Title   string `xml:"title"`
				Link    string `xml:"link"`
				GUID    string `xml:"guid"`
				PubDate string `xml:"pubDate"`
				Content string `xml:"http://purl.org/rss/1.0/modules/content/ encoded"`
			} `xml:"item"`
		} `xml:"channel"`
	}
	if err := xml.Unmarshal([]byte(r.Body), &rss); err != nil {
		t.Fatalf("feed does not parse: %v\n%s", err, r.Body)
	}
	items := rss.Channel.Items
	if rss.Version != "2.0" || rss.Channel.Link != "http://herald.test/archive" || len(items) != 20 ||
		items[0].Title != "Digest <25> & co" || items[0].Link != "http://herald.test/archive/25" || items[0].GUID != items[0].Link ||
		!strings.Contains(items[0].PubDate, "2026") || !strings.Contains(items[0].Content, "Post 25") || strings.Contains(items[0].Content, "<body") {
		t.Fatalf("feed: %+v", rss)
	}
	if _, err := time.Parse(time.RFC1123Z, items[0].PubDate); err != nil {
		if _, err2 := time.Parse(time.RFC1123, items[0].PubDate); err2 != nil {
			t.Errorf("pubDate %q: %v", items[0].PubDate, err)
		}
	}
}

func TestArchiveDisabled(t *testing.T) {
	e := newEnv(t, testenv.Options{AdminToken: adminToken, SiteName: "Test Blög"})
	_ = e.DB.PutArchive(context.Background(), &herald.ArchiveEntry{ID: 1, Frequency: herald.Daily, Subject: "s", HTML: "<p>x</p>"})
	for _, p := range []string{"/archive", "/archive/1", "/archive.xml"} {
		if r := e.do(http.MethodGet, p, "", ""); r.Status != http.StatusNotFound {
			t.Errorf("%s with the archive off: %d", p, r.Status)
		}
	}
}

func TestPreferencesDataDownload(t *testing.T) {
	e := newEnv(t, testenv.Options{AdminToken: adminToken, SiteName: "Test Blög", Archive: true})
	sub := e.confirmedReader("data@example.org")
	tok := e.Subs.ManageToken(sub.ID)

	page := e.do(http.MethodGet, "/preferences?token="+url.QueryEscape(tok), "", "")
	if page.Status != http.StatusOK || !strings.Contains(page.Body, `href="/preferences/data?token=`) {
		t.Fatalf("preferences page lacks the download link: %d\n%s", page.Status, page.Body)
	}
	r := e.do(http.MethodGet, "/preferences/data?token="+url.QueryEscape(tok), "", "")
	if r.Status != http.StatusOK || !strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") ||
		!strings.HasPrefix(r.Header.Get("Content-Disposition"), "attachment;") || r.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("data: %d %v\n%s", r.Status, r.Header, r.Body)
	}
	var got handlers.DataExport
	if err := json.Unmarshal([]byte(r.Body), &got); err != nil {
		t.Fatal(err)
	}
	if got.Subscriber.Email != "data@example.org" || got.Subscriber.Status != herald.StatusConfirmed || got.Subscriber.Source != "import" ||
		got.Subscriber.ConfirmedAt == nil || len(got.Kept) == 0 || !strings.Contains(strings.Join(got.Kept, " "), "no copy of the emails") {
		t.Fatalf("export %+v", got)
	}
	if strings.Contains(r.Body, "nonce") {
		t.Error("the export carries the internal nonce")
	}
	// Wrong or missing token: 400 page, nothing leaked.
	unsubTok := e.Subs.UnsubscribeToken(sub.ID)
	for _, q := range []string{"", "?token=garbage", "?token=" + url.QueryEscape(unsubTok)} {
		if r := e.do(http.MethodGet, "/preferences/data"+q, "", ""); r.Status != http.StatusBadRequest || strings.Contains(r.Body, "data@example.org") {
			t.Errorf("data%s: %d", q, r.Status)
		}
	}
}
