package handlers_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/herald-dev/herald"
	"github.com/herald-dev/herald/internal/testenv"
	"github.com/herald-dev/herald/store"
	"github.com/herald-dev/herald/subscription"
)

func (e *env) importCSV(body string, confirmed bool) (testenv.Resp, herald.ImportReport) {
	e.T.Helper()
	path := "/api/v1/subscribers.csv"
	if confirmed {
		path += "?confirmed=true"
	}
	r := e.admin(http.MethodPost, path, "text/csv", body)
	var rep herald.ImportReport
	if r.Status == http.StatusOK {
		if err := json.Unmarshal([]byte(r.Body), &rep); err != nil {
			e.T.Fatalf("import report: %v\n%s", err, r.Body)
		}
	}
	return r, rep
}

// opsSeed creates n subscribers straight in the store, many at once so
// bbolt batches them.
func opsSeed(t testing.TB, db *store.DB, n int, fn func(i int, s *herald.Subscriber)) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	sem := make(chan struct{}, 64)
	for i := range n {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			var want herald.Subscriber
			fn(i, &want)
			_, err := db.MutateSubscriber(context.Background(), want.Email, func(cur *herald.Subscriber) (*herald.Subscriber, []*herald.OutboxMessage, error) {
				next := *cur
				next.Name, next.Status, next.Frequency, next.Source = want.Name, want.Status, want.Frequency, "test"
				if want.Status == herald.StatusConfirmed {
					now := time.Now()
					next.ConfirmedAt = &now
				}
				return &next, nil, nil
			})
			if err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

func opsReport(t *testing.T, rep herald.ImportReport, added, updated, skipped int, invalidLines ...int) {
	t.Helper()
	var lines []int
	for _, p := range rep.Invalid {
		lines = append(lines, p.Line)
	}
	if rep.Added != added || rep.Updated != updated || rep.Skipped != skipped || fmt.Sprint(lines) != fmt.Sprint(invalidLines) || rep.InvalidTotal != len(invalidLines) {
		t.Fatalf("report %+v; want added %d updated %d skipped %d invalid lines %v", rep, added, updated, skipped, invalidLines)
	}
}

func TestCSVExportAndRoundTrip(t *testing.T) {
	e := newEnv(t, testenv.Options{AdminToken: adminToken})
	if r := e.admin(http.MethodGet, "/api/v1/subscribers.csv", "", ""); r.Status != http.StatusOK || r.Body != "email,name,frequency,status,created_at,confirmed_at,topics,timezone,paused_until,language\n" {
		t.Fatalf("empty export: %d %q", r.Status, r.Body)
	}
	const n = 1200 // more than one page of the export
	names := []string{"Plain", "Doe, Jane", `Quote "Q" Person`, "=HYPERLINK(\"http://evil\")", "Zoë", ""}
	opsSeed(t, e.DB, n, func(i int, s *herald.Subscriber) {
		s.Email = fmt.Sprintf("reader%04d@example.org", i)
		s.Name = names[i%len(names)]
		s.Status = herald.Statuses[i%len(herald.Statuses)]
		s.Frequency = herald.Frequencies[i%len(herald.Frequencies)]
	})
	r := e.admin(http.MethodGet, "/api/v1/subscribers.csv", "", "")
	if r.Status != http.StatusOK || !strings.HasPrefix(r.Header.Get("Content-Type"), "text/csv") {
		t.Fatalf("export: %d %s", r.Status, r.Header.Get("Content-Type"))
	}
	if cd := r.Header.Get("Content-Disposition"); !regexp.MustCompile(`^attachment; filename="herald-subscribers-\d{8}-\d{6}\.csv"$`).MatchString(cd) {
		t.Errorf("Content-Disposition %q", cd)
	}
	recs, err := csv.NewReader(strings.NewReader(r.Body)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(recs[0], ","); got != "email,name,frequency,status,created_at,confirmed_at,topics,timezone,paused_until,language" {
		t.Fatalf("header %q", got)
	}
	if len(recs) != n+1 {
		t.Fatalf("%d rows, want %d", len(recs)-1, n)
	}
	statuses := map[string]int{}
	emails := map[string]bool{}
	for i, rec := range recs[1:] {
		if !strings.HasPrefix(rec[0], "reader") || emails[rec[0]] {
			t.Fatalf("row %d: email %q (missing or twice)", i, rec[0])
		}
		emails[rec[0]] = true
		statuses[rec[3]]++
		if _, err := time.Parse(time.RFC3339, rec[4]); err != nil {
			t.Fatalf("row %d: created_at %q", i, rec[4])
		}
		if (rec[3] == "confirmed") != (rec[5] != "") {
			t.Fatalf("row %d: status %s, confirmed_at %q", i, rec[3], rec[5])
		}
		if strings.HasPrefix(rec[1], "=") {
			t.Fatalf("row %d: a formula left as it is: %q", i, rec[1])
		}
	}
	for _, st := range herald.Statuses {
		if statuses[string(st)] != n/len(herald.Statuses) {
			t.Fatalf("statuses in the export: %v", statuses)
		}
	}

	// The export imports into a fresh herald as it was: statuses, names
	// (the formula guard undone), frequencies.
	e2 := newEnv(t, testenv.Options{AdminToken: adminToken})
	res, rep := e2.importCSV(r.Body, true)
	if res.Status != http.StatusOK {
		t.Fatalf("re-import: %d %s", res.Status, res.Body)
	}
	opsReport(t, rep, n, 0, 0)
	if rep.Confirmations != n/len(herald.Statuses) {
		t.Errorf("confirmations %d, want %d (the pending rows)", rep.Confirmations, n/len(herald.Statuses))
	}
	for i := range n {
		if i%97 != 0 && i%len(names) != 3 {
			continue
		}
		s := e2.sub(fmt.Sprintf("reader%04d@example.org", i))
		if s.Status != herald.Statuses[i%len(herald.Statuses)] || s.Frequency != herald.Frequencies[i%len(herald.Frequencies)] || s.Name != names[i%len(names)] {
			t.Fatalf("reader %d after the round trip: %+v", i, s)
		}
	}
}

func TestCSVImportFormats(t *testing.T) {
	e := newEnv(t, testenv.Options{AdminToken: adminToken})
	type want struct {
		status herald.Status
		name   string
		freq   herald.Frequency
	}
	cases := []struct {
		name                    string
		body                    string
		added, updated, skipped int
		invalid                 []int
		subs                    map[string]want
	}{
		{
			name:  "BOM, CRLF and quoted commas",
			body:  "\ufeffEmail,Name,Frequency,Status\r\nbom@example.org,\"Doe, Jane\",weekly,confirmed\r\nquote@example.org,\"Say \"\"hi\"\", ok\",instant,\r\n",
			added: 2,
			subs: map[string]want{
				"bom@example.org":   {herald.StatusConfirmed, "Doe, Jane", herald.Weekly},
				"quote@example.org": {herald.StatusConfirmed, `Say "hi", ok`, herald.Instant},
			},
		},
		{
			name:  "extra and missing columns, any order",
			body:  "id,NAME,notes,EMAIL\n1,Extra,\"a, b\",extra@example.org\n2,Short,x\n3,,,nofreq@example.org\n",
			added: 2, invalid: []int{3},
			subs: map[string]want{
				"extra@example.org":  {herald.StatusConfirmed, "Extra", herald.Daily},
				"nofreq@example.org": {herald.StatusConfirmed, "", herald.Daily},
			},
		},
		{
			name:  "semicolons",
			body:  "email;name\nsemi@example.org;Semi Colon\n",
			added: 1,
			subs:  map[string]want{"semi@example.org": {herald.StatusConfirmed, "Semi Colon", herald.Daily}},
		},
		{
			name:    "duplicates: the first row wins",
			body:    "email,name\ndup@Example.ORG,First\ndup@example.org,Second\n\n,,\ndup@example.org,Third\n",
			added:   1,
			skipped: 2,
			subs:    map[string]want{"dup@example.org": {herald.StatusConfirmed, "First", herald.Daily}},
		},
		{
			name:  "invalid rows never stop good ones",
			body:  "email,name,frequency,status\nnot-an-address,A,,\ngood1@example.org,B,,\nx@nodot,C,,\n\"two@example.org, three@example.org\",D,,\ngood2@example.org,E,hourly,\ngood3@example.org,F,,vip\nbare\"quote@example.org,G,,\ngood4@example.org,\"Bad\x01Name\",,\ngood5@example.org,H,,\n",
			added: 2, invalid: []int{2, 4, 5, 6, 7, 8, 9},
			subs: map[string]want{
				"good1@example.org": {herald.StatusConfirmed, "B", herald.Daily},
				"good5@example.org": {herald.StatusConfirmed, "H", herald.Daily},
			},
		},
		{
			name: "Mailchimp export",
			body: "\"Email Address\",\"First Name\",\"Last Name\",MEMBER_RATING,OPTIN_TIME,OPTIN_IP,CONFIRM_TIME,CONFIRM_IP,LATITUDE,LONGITUDE,GMTOFF,DSTOFF,TIMEZONE,CC,REGION,LAST_CHANGED,LEID,EUID,NOTES,TAGS\n" +
				"mc1@example.org,Ada,Lovelace,2,\"2019-03-04 10:11:12\",,\"2019-03-04 10:15:00\",1.2.3.4,,,,,,,,\"2020-01-01 00:00:00\",123,abc,,\"\"\"tag, one\"\"\"\n" +
				"mc2@example.org,Grace,,2,,,,,,,,,,,,,124,abd,,\n",
			added: 2,
			subs: map[string]want{
				"mc1@example.org": {herald.StatusConfirmed, "Ada Lovelace", herald.Daily},
				"mc2@example.org": {herald.StatusConfirmed, "Grace", herald.Daily},
			},
		},
		{
			name:  "Mailchimp unsubscribed and cleaned exports",
			body:  "Email Address,First Name,Last Name,UNSUB_TIME,UNSUB_CAMPAIGN_TITLE,CLEAN_TIME\nmcu@example.org,Un,Sub,\"2021-05-06 07:08:09\",Weekly,\nmcc@example.org,Cle,Aned,,,\"2021-05-06 07:08:09\"\n",
			added: 2,
			subs: map[string]want{
				"mcu@example.org": {herald.StatusUnsubscribed, "Un Sub", herald.Daily},
				"mcc@example.org": {herald.StatusBounced, "Cle Aned", herald.Daily},
			},
		},
		{
			name: "listmonk export",
			body: "uuid,email,name,attributes,status,created_at,updated_at\n" +
				"6f0c1e9a-1111-4c4b-9b61-000000000001,lm1@example.org,Listmonk One,\"{\"\"city\"\": \"\"Bengaluru, KA\"\"}\",enabled,2020-07-07 10:00:00.123456 +0000 UTC,2020-07-08 10:00:00 +0000 UTC\n" +
				"6f0c1e9a-1111-4c4b-9b61-000000000002,lm2@example.org,Listmonk Two,{},blocklisted,2020-07-07 10:00:00 +0000 UTC,2020-07-08 10:00:00 +0000 UTC\n",
			added: 2,
			subs: map[string]want{
				"lm1@example.org": {herald.StatusConfirmed, "Listmonk One", herald.Daily},
				"lm2@example.org": {herald.StatusUnsubscribed, "Listmonk Two", herald.Daily},
			},
		},
		{
			name: "header only",
			body: "email,name,frequency,status\r\n",
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r, rep := e.importCSV(c.body, true)
			if r.Status != http.StatusOK {
				t.Fatalf("import: %d %s", r.Status, r.Body)
			}
			opsReport(t, rep, c.added, c.updated, c.skipped, c.invalid...)
			for _, p := range rep.Invalid {
				if p.Error == "" {
					t.Fatalf("invalid row without a message: %+v", p)
				}
			}
			for email, w := range c.subs {
				s := e.sub(email)
				if s.Status != w.status || s.Name != w.name || s.Frequency != w.freq || s.Source != "import" {
					t.Fatalf("%s: %s %q %s (source %q); want %s %q %s", email, s.Status, s.Name, s.Frequency, s.Source, w.status, w.name, w.freq)
				}
			}
		})
	}
	if s := e.sub("mc1@example.org"); !s.CreatedAt.Equal(time.Date(2019, 3, 4, 10, 11, 12, 0, time.UTC)) ||
		s.ConfirmedAt == nil || !s.ConfirmedAt.Equal(time.Date(2019, 3, 4, 10, 15, 0, 0, time.UTC)) {
		t.Errorf("Mailchimp times not kept: created %v confirmed %v", s.CreatedAt, s.ConfirmedAt)
	}
	if s := e.sub("lm1@example.org"); !s.CreatedAt.Equal(time.Date(2020, 7, 7, 10, 0, 0, 123456000, time.UTC)) {
		t.Errorf("listmonk created_at not kept: %v", s.CreatedAt)
	}
	// Everything was confirmed=true: no confirmation went out.
	if n, _ := e.DB.OutboxDepth(context.Background()); n != 0 || e.SMTP.Count() != 0 {
		t.Errorf("confirmed import queued mail: outbox %d, smtp %d", n, e.SMTP.Count())
	}
}

func TestCSVImportBadFiles(t *testing.T) {
	e := newEnv(t, testenv.Options{AdminToken: adminToken})
	cases := []struct {
		name, ct, query, body string
		status                int
		msg                   string
	}{
		{"no email column", "text/csv", "", "name,frequency\nAnn,daily\n", 422, "no email column"},
		{"no header", "text/csv", "", "ann@example.org,Ann,daily\n", 422, "no email column"},
		{"empty", "text/csv", "", "", 422, "empty"},
		{"blank", "text/csv", "", "\r\n\r\n  \n", 422, "empty"},
		{"two email columns", "text/csv", "", "email,Email Address\na@example.org,a@example.org\n", 422, "two email columns"},
		{"UTF-16", "text/csv", "", "\xff\xfee\x00m\x00", 400, "UTF-16"},
		{"JSON body", "application/json", "", `{"email":"a@example.org"}`, 400, "text/csv"},
		{"multipart", "multipart/form-data; boundary=x", "", "--x--", 400, "text/csv"},
		{"bad confirmed", "text/csv", "?confirmed=maybe", "email\na@example.org\n", 422, "confirmed must be"},
		{"broken header quote", "text/csv", "", "\"email,name\n", 400, "header line"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := e.admin(http.MethodPost, "/api/v1/subscribers.csv"+c.query, c.ct, c.body)
			if r.Status != c.status || !strings.Contains(r.Body, c.msg) {
				t.Fatalf("%d %s; want %d with %q", r.Status, r.Body, c.status, c.msg)
			}
		})
	}
	if tot, _ := e.DB.CountSubscribers(context.Background()); total(tot) != 0 {
		t.Fatalf("a refused file imported something: %v", tot)
	}

	// A row longer than 1 MiB (an unclosed quote) stops the import with
	// 413; the rows before it are in.
	var b strings.Builder
	b.WriteString("email,name\nbefore@example.org,B\nafter@example.org,\"")
	b.WriteString(strings.Repeat("x", 2<<20))
	r := e.admin(http.MethodPost, "/api/v1/subscribers.csv?confirmed=true", "text/csv", b.String())
	if r.Status != http.StatusRequestEntityTooLarge || !strings.Contains(r.Body, `"added":1`) || !strings.Contains(r.Body, "longer than") {
		t.Fatalf("long row: %d %s", r.Status, r.Body)
	}
	if st := e.status("before@example.org"); st != herald.StatusConfirmed {
		t.Fatalf("row before the long one: %s", st)
	}
}

func TestCSVImportOptIn(t *testing.T) {
	e := newEnv(t, testenv.Options{AdminToken: adminToken})
	body := "email,name,frequency,status\nopt1@example.org,One,weekly,\nopt2@example.org,Two,,confirmed\nopt3@example.org,Three,,pending\n"
	r, rep := e.importCSV(body, false)
	if r.Status != http.StatusOK {
		t.Fatalf("import: %d %s", r.Status, r.Body)
	}
	opsReport(t, rep, 3, 0, 0)
	if rep.Confirmations != 3 {
		t.Fatalf("confirmations %d", rep.Confirmations)
	}
	msgs := e.SMTP.WaitFor(t, 3, 10*time.Second)
	got := map[string]bool{}
	for _, m := range msgs {
		got[m.To[0]] = true
		if !bytes.Contains(m.Data, []byte("/confirm?token=")) {
			t.Errorf("not a confirmation: %s", m.Data)
		}
		if bytes.Contains(m.Data, []byte("Three")) {
			t.Errorf("the name was echoed in the confirmation email")
		}
	}
	for _, a := range []string{"opt1@example.org", "opt2@example.org", "opt3@example.org"} {
		if !got[a] || e.status(a) != herald.StatusPending {
			t.Fatalf("%s: mailed %v, status %s", a, got[a], e.status(a))
		}
	}
	if s := e.sub("opt1@example.org"); s.Frequency != herald.Weekly || s.Name != "One" || s.Source != "import" {
		t.Fatalf("opt1: %+v", s)
	}

	// confirmed=true: new rows are confirmed, no email; a "pending" row
	// still goes through the opt-in.
	r, rep = e.importCSV("email,status\nconf1@example.org,\nconf2@example.org,confirmed\nconf3@example.org,pending\n", true)
	if r.Status != http.StatusOK {
		t.Fatalf("import: %d %s", r.Status, r.Body)
	}
	opsReport(t, rep, 3, 0, 0)
	if rep.Confirmations != 1 {
		t.Fatalf("confirmations %d", rep.Confirmations)
	}
	e.OutboxSent()
	if n := e.SMTP.Count(); n != 4 {
		t.Fatalf("%d emails, want 4 (one more confirmation)", n)
	}
	for a, st := range map[string]herald.Status{"conf1@example.org": herald.StatusConfirmed, "conf2@example.org": herald.StatusConfirmed, "conf3@example.org": herald.StatusPending} {
		if got := e.status(a); got != st {
			t.Fatalf("%s: %s, want %s", a, got, st)
		}
	}
}

func TestCSVImportNeverRevives(t *testing.T) {
	e := newEnv(t, testenv.Options{AdminToken: adminToken})
	opsSeed(t, e.DB, 4, func(i int, s *herald.Subscriber) {
		s.Email = []string{"unsub@example.org", "bounced@example.org", "pending@example.org", "conf@example.org"}[i]
		s.Status = []herald.Status{herald.StatusUnsubscribed, herald.StatusBounced, herald.StatusPending, herald.StatusConfirmed}[i]
		s.Name, s.Frequency = "Old", herald.Daily
	})
	for _, confirmed := range []bool{false, true} {
		r, rep := e.importCSV("email,name,frequency,status\nunsub@example.org,Old,daily,confirmed\nbounced@example.org,Old,daily,\npending@example.org,Old,,confirmed\nconf@example.org,Old,daily,pending\n", confirmed)
		if r.Status != http.StatusOK {
			t.Fatalf("import: %d %s", r.Status, r.Body)
		}
		opsReport(t, rep, 0, 0, 4)
	}
	// Names and frequencies may change (updated); statuses stay.
	r, rep := e.importCSV("email,name,frequency,status\nunsub@example.org,New,weekly,confirmed\nbounced@example.org,New,,\npending@example.org,,instant,confirmed\n", true)
	if r.Status != http.StatusOK {
		t.Fatalf("import: %d %s", r.Status, r.Body)
	}
	opsReport(t, rep, 0, 3, 0)
	for a, st := range map[string]herald.Status{"unsub@example.org": herald.StatusUnsubscribed, "bounced@example.org": herald.StatusBounced, "pending@example.org": herald.StatusPending, "conf@example.org": herald.StatusConfirmed} {
		if got := e.status(a); got != st {
			t.Fatalf("%s: %s, want %s", a, got, st)
		}
	}
	if s := e.sub("unsub@example.org"); s.Name != "New" || s.Frequency != herald.Weekly {
		t.Fatalf("unsub not updated: %+v", s)
	}
	if s := e.sub("pending@example.org"); s.Name != "Old" || s.Frequency != herald.Instant {
		t.Fatalf("pending: an empty name erased the old one, or frequency not updated: %+v", s)
	}
	// An unsubscribe in the file is honoured; an unknown unsubscribed
	// address is kept as unsubscribed, silently.
	r, rep = e.importCSV("email,status\nconf@example.org,unsubscribed\ngone@example.org,unsubscribed\nbad@example.org,bounced\n", false)
	if r.Status != http.StatusOK {
		t.Fatalf("import: %d %s", r.Status, r.Body)
	}
	opsReport(t, rep, 2, 1, 0)
	for a, st := range map[string]herald.Status{"conf@example.org": herald.StatusUnsubscribed, "gone@example.org": herald.StatusUnsubscribed, "bad@example.org": herald.StatusBounced} {
		if got := e.status(a); got != st {
			t.Fatalf("%s: %s, want %s", a, got, st)
		}
	}
	if s := e.sub("conf@example.org"); s.UnsubscribedAt == nil {
		t.Fatalf("no unsubscribe time")
	}
	if n, _ := e.DB.OutboxDepth(context.Background()); n != 0 || e.SMTP.Count() != 0 {
		t.Fatalf("mail was queued: outbox %d, smtp %d", n, e.SMTP.Count())
	}
}

func TestCSVImportHourlyCap(t *testing.T) {
	e := newEnv(t, testenv.Options{AdminToken: adminToken, Subscription: func(o *subscription.Options) { o.GlobalPerHour = 2 }})
	r, rep := e.importCSV("email\ncap1@example.org\ncap2@example.org\ncap3@example.org\ncap4@example.org\n", false)
	if r.Status != http.StatusOK {
		t.Fatalf("import: %d %s", r.Status, r.Body)
	}
	if rep.Added != 2 || rep.InvalidTotal != 2 || !strings.Contains(rep.Invalid[0].Error, "confirmations_per_hour") {
		t.Fatalf("report %+v", rep)
	}
	// Confirmed imports do not count against the cap.
	again := "email\n"
	for _, p := range rep.Invalid {
		again += fmt.Sprintf("cap%d@example.org\n", p.Line-1)
	}
	if _, rep := e.importCSV(again, true); rep.Added != 2 {
		t.Fatalf("confirmed import under the cap: %+v", rep)
	}
}

func TestStats(t *testing.T) {
	e := newEnv(t, testenv.Options{AdminToken: adminToken})
	ctx := context.Background()
	opsSeed(t, e.DB, 10, func(i int, s *herald.Subscriber) {
		s.Email = fmt.Sprintf("s%d@example.org", i)
		s.Status = []herald.Status{herald.StatusConfirmed, herald.StatusConfirmed, herald.StatusConfirmed, herald.StatusConfirmed, herald.StatusConfirmed, herald.StatusConfirmed, herald.StatusUnsubscribed, herald.StatusBounced, herald.StatusConfirmed, herald.StatusUnsubscribed}[i]
		s.Frequency = []herald.Frequency{herald.Daily, herald.Daily, herald.Weekly, herald.Instant, herald.Daily, herald.Weekly, herald.Daily, herald.Daily, herald.Daily, herald.Weekly}[i]
	})
	// Two pending readers whose confirmations go out through SMTP.
	for _, a := range []string{"p1@example.org", "p2@example.org"} {
		if _, err := e.Subs.Subscribe(ctx, herald.SubscribeRequest{Email: a}); err != nil {
			t.Fatal(err)
		}
	}
	e.SMTP.WaitFor(t, 2, 10*time.Second)
	for i := range 3 {
		if _, err := e.DB.UpsertPost(ctx, &herald.Post{GUID: fmt.Sprint("g", i), URL: fmt.Sprintf("https://blog.example.org/%d", i), Title: "T", Feed: "api"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.DB.CreateRun(ctx, &herald.Run{Frequency: herald.Daily, Trigger: herald.TriggerAPI, State: herald.RunDone}); err != nil {
		t.Fatal(err)
	}
	var st herald.Stats
	deadline := time.Now().Add(10 * time.Second)
	for {
		r := e.admin(http.MethodGet, "/api/v1/stats", "", "")
		if r.Status != http.StatusOK {
			t.Fatalf("stats: %d %s", r.Status, r.Body)
		}
		st = herald.Stats{}
		if err := json.Unmarshal([]byte(r.Body), &st); err != nil {
			t.Fatal(err)
		}
		if (st.Emails.Sent == 2 && st.Outbox == 0) || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	s := st.Subscribers
	if s.Total != 12 || s.ByStatus[herald.StatusConfirmed] != 7 || s.ByStatus[herald.StatusPending] != 2 ||
		s.ByStatus[herald.StatusUnsubscribed] != 2 || s.ByStatus[herald.StatusBounced] != 1 {
		t.Fatalf("subscribers %+v", s)
	}
	if s.ConfirmedByFrequency[herald.Daily] != 4 || s.ConfirmedByFrequency[herald.Weekly] != 2 || s.ConfirmedByFrequency[herald.Instant] != 1 {
		t.Fatalf("confirmed by frequency %v", s.ConfirmedByFrequency)
	}
	if s.ByFrequency[herald.Daily] != 6+2 || s.ByFrequency[herald.Weekly] != 3 || s.ByFrequency[herald.Instant] != 1 {
		t.Fatalf("by frequency %v", s.ByFrequency)
	}
	if s.ByStatusAndFrequency[herald.StatusUnsubscribed][herald.Weekly] != 1 {
		t.Fatalf("matrix %v", s.ByStatusAndFrequency)
	}
	if st.Posts != 3 || st.Runs != 1 || st.Emails.Sent != 2 || st.Emails.Failed != 0 || st.Outbox != 0 {
		t.Fatalf("posts %d runs %d emails %+v outbox %d", st.Posts, st.Runs, st.Emails, st.Outbox)
	}
}

// opsCountBolt opens a backup file with bbolt itself, checks it, and
// returns the subscriber ids in it.
func opsCountBolt(t *testing.T, path string) map[uint64]bool {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		t.Fatalf("backup does not open as bbolt: %v", err)
	}
	defer db.Close()
	ids := map[uint64]bool{}
	err = db.View(func(tx *bolt.Tx) error {
		for err := range tx.Check() {
			return err
		}
		b := tx.Bucket([]byte("subscribers"))
		if b == nil {
			return errors.New("no subscribers bucket")
		}
		// Keys are big-endian ids; the records are the store's own encoding.
		return b.ForEach(func(k, v []byte) error {
			if len(k) != 8 || len(v) == 0 {
				return fmt.Errorf("subscriber record %x: %d bytes", k, len(v))
			}
			ids[binary.BigEndian.Uint64(k)] = true
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

func TestBackupWhileWriting(t *testing.T) {
	e := newEnv(t, testenv.Options{AdminToken: adminToken})
	ctx, cancel := context.WithCancel(context.Background())
	var written sync.Map // id → true, once the write returned
	var n atomic.Int64
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := 0; ctx.Err() == nil; i++ {
				s, err := e.DB.MutateSubscriber(context.Background(), fmt.Sprintf("w%d-%d@example.org", w, i), func(cur *herald.Subscriber) (*herald.Subscriber, []*herald.OutboxMessage, error) {
					next := *cur
					next.Status, next.Frequency = herald.StatusConfirmed, herald.Daily
					return &next, nil, nil
				})
				if err != nil {
					t.Error(err)
					return
				}
				written.Store(s.ID, true)
				n.Add(1)
			}
		})
	}
	dir := t.TempDir()
	for round := range 3 {
		testenv.Eventually(t, time.Minute, "the writers to write", func() bool { return n.Load() >= int64(200*(round+1)) })
		var before []uint64
		written.Range(func(k, _ any) bool { before = append(before, k.(uint64)); return true })
		req, _ := http.NewRequest(http.MethodGet, e.URL+"/api/v1/backup", nil)
		req.Header.Set("Authorization", "Bearer "+adminToken)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		if res.StatusCode != http.StatusOK || res.Header.Get("Content-Type") != "application/octet-stream" ||
			!regexp.MustCompile(`^attachment; filename="herald-\d{8}-\d{6}\.db"$`).MatchString(res.Header.Get("Content-Disposition")) {
			t.Fatalf("backup: %d %v", res.StatusCode, res.Header)
		}
		path := filepath.Join(dir, fmt.Sprintf("backup%d.db", round))
		f, _ := os.Create(path)
		if _, err := io.Copy(f, res.Body); err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		f.Close()
		ids := opsCountBolt(t, path)
		for _, id := range before {
			if !ids[id] {
				t.Fatalf("round %d: subscriber %d was written before the backup began and is missing from it", round, id)
			}
		}
		if len(ids) < len(before) {
			t.Fatalf("round %d: %d subscribers in the backup, %d written before", round, len(ids), len(before))
		}
	}
	cancel()
	wg.Wait()

	// Restore: with writes stopped, a backup holds every subscriber, and
	// herald opens it as its database (stop, replace the file, start).
	r := e.admin(http.MethodGet, "/api/v1/backup", "", "")
	path := filepath.Join(dir, "herald.db")
	if err := os.WriteFile(path, []byte(r.Body), 0o600); err != nil {
		t.Fatal(err)
	}
	if ids := opsCountBolt(t, path); len(ids) != int(n.Load()) {
		t.Fatalf("final backup: %d subscribers, %d written", len(ids), n.Load())
	}
	restored, err := store.Open(context.Background(), path, store.Options{})
	if err != nil {
		t.Fatalf("herald can't open the restored file: %v", err)
	}
	defer restored.Close()
	counts, err := restored.CountSubscribers(context.Background())
	if err != nil || total(counts) != int(n.Load()) || counts[herald.StatusConfirmed][herald.Daily] != int(n.Load()) {
		t.Fatalf("restored counts %v (%v), want %d", counts, err, n.Load())
	}
	if _, err := restored.SubscriberByEmail(context.Background(), "w0-0@example.org"); err != nil {
		t.Fatal(err)
	}
}

func TestMetricsEndpoint(t *testing.T) {
	e := newEnv(t, testenv.Options{AdminToken: adminToken})
	opsSeed(t, e.DB, 3, func(i int, s *herald.Subscriber) {
		s.Email, s.Status, s.Frequency = fmt.Sprintf("m%d@example.org", i), herald.StatusConfirmed, herald.Weekly
	})
	if r := e.do(http.MethodGet, "/metrics", "", ""); r.Status != http.StatusUnauthorized || r.Header.Get("WWW-Authenticate") == "" {
		t.Fatalf("no token: %d", r.Status)
	}
	if r := e.do(http.MethodGet, "/metrics", "", "", "Authorization", "Bearer wrong"); r.Status != http.StatusUnauthorized {
		t.Fatalf("wrong token: %d", r.Status)
	}
	e.admin(http.MethodGet, "/api/v1/stats", "", "")
	e.admin(http.MethodGet, "/api/v1/subscribers/m0%40example.org", "", "")
	e.admin(http.MethodGet, "/api/v1/subscribers/nobody%40example.org", "", "")
	e.do(http.MethodGet, "/no/such/page", "", "")
	if _, err := e.Subs.Subscribe(context.Background(), herald.SubscribeRequest{Email: "mx@example.org"}); err != nil {
		t.Fatal(err)
	}
	e.SMTP.WaitFor(t, 1, 10*time.Second)
	var body string
	deadline := time.Now().Add(10 * time.Second)
	for {
		r := e.admin(http.MethodGet, "/metrics", "", "")
		if r.Status != http.StatusOK || !strings.HasPrefix(r.Header.Get("Content-Type"), "text/plain") {
			t.Fatalf("metrics: %d %s\n%s", r.Status, r.Header.Get("Content-Type"), r.Body)
		}
		body = r.Body
		if strings.Contains(body, `herald_emails_total{result="sent"} 1`) || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, want := range []string{
		`herald_subscribers{frequency="weekly",status="confirmed"} 3`,
		`herald_subscribers{frequency="daily",status="pending"} 1`,
		`herald_subscribers{frequency="instant",status="bounced"} 0`,
		`herald_outbox_depth 0`,
		`herald_emails_total{result="sent"} 1`,
		`herald_emails_total{result="failed"} 0`,
		`herald_posts_total 0`,
		`herald_emails_sent_total{kind="confirm"} 1`,
		`herald_emails_failed_total{kind="digest"} 0`,
		`herald_http_requests_total{code="200",route="/api/v1/stats"} 1`,
		`herald_http_requests_total{code="200",route="/api/v1/subscribers/{email}"} 1`,
		`herald_http_requests_total{code="404",route="/api/v1/subscribers/{email}"} 1`,
		`herald_http_requests_total{code="404",route="unmatched"} 1`,
		`herald_http_requests_total{code="401",route="/metrics"} 2`,
		`herald_http_request_duration_seconds_count{route="/api/v1/stats"} 1`,
		`herald_runs_total{frequency="daily",state="done"} 0`,
		`go_goroutines`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if strings.Contains(body, "nobody") || strings.Contains(body, "m0%40") {
		t.Errorf("a path leaked into a label")
	}
	// The hooks the sender, poller and digest call.
	e.Metrics.FeedPoll("ok")
	e.Metrics.RunFinished(&herald.Run{Frequency: herald.Weekly, State: herald.RunFailed}, 3*time.Second)
	e.Metrics.EmailResult(herald.KindDigest, &herald.SendError{Temporary: true, Code: 451})
	e.Metrics.EmailResult(herald.KindDigest, &herald.SendError{Code: 550})
	body = e.admin(http.MethodGet, "/metrics", "", "").Body
	for _, want := range []string{
		`herald_feed_polls_total{result="ok"} 1`,
		`herald_runs_total{frequency="weekly",state="failed"} 1`,
		`herald_run_duration_seconds_sum{frequency="weekly"} 3`,
		`herald_email_retries_total{kind="digest"} 1`,
		`herald_emails_failed_total{kind="digest"} 1`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

func TestOpsRoutesNeedTheAdminToken(t *testing.T) {
	on := newEnv(t, testenv.Options{AdminToken: adminToken})
	off := newEnv(t, testenv.Options{})
	routes := []struct{ method, path, ct, body string }{
		{http.MethodGet, "/api/v1/subscribers.csv", "", ""},
		{http.MethodPost, "/api/v1/subscribers.csv?confirmed=true", "text/csv", "email\nsneaky@example.org\n"},
		{http.MethodGet, "/api/v1/stats", "", ""},
		{http.MethodGet, "/api/v1/backup", "", ""},
		{http.MethodGet, "/metrics", "", ""},
	}
	for _, rt := range routes {
		if r := on.do(rt.method, rt.path, rt.ct, rt.body); r.Status != http.StatusUnauthorized || !strings.Contains(r.Body, `"error"`) {
			t.Errorf("%s %s without a token: %d %s", rt.method, rt.path, r.Status, r.Body)
		}
		if r := on.do(rt.method, rt.path, rt.ct, rt.body, "Authorization", "Bearer "+adminToken+"x"); r.Status != http.StatusUnauthorized {
			t.Errorf("%s %s with a wrong token: %d", rt.method, rt.path, r.Status)
		}
		if r := off.do(rt.method, rt.path, rt.ct, rt.body, "Authorization", "Bearer "+adminToken); r.Status != http.StatusForbidden || !strings.Contains(r.Body, "admin.token") {
			t.Errorf("%s %s with admin disabled: %d %s", rt.method, rt.path, r.Status, r.Body)
		}
	}
	for _, e := range []*env{on, off} {
		if _, err := e.DB.SubscriberByEmail(context.Background(), "sneaky@example.org"); herald.ErrorCode(err) != herald.ENOTFOUND {
			t.Fatalf("an unauthenticated import went through: %v", err)
		}
	}
}

// csvRows streams a generated file of n confirmed readers without
// holding it in memory.
func csvRows(n int) io.Reader {
	pr, pw := io.Pipe()
	go func() {
		bw := bufio.NewWriter(pw)
		_, _ = bw.WriteString("email,name,frequency,status\n")
		for i := range n {
			_, _ = bw.WriteString("reader")
			_, _ = bw.WriteString(strconv.Itoa(i))
			_, _ = bw.WriteString("@example.org,Reader ")
			_, _ = bw.WriteString(strconv.Itoa(i))
			_, _ = bw.WriteString(",weekly,confirmed\n")
		}
		_ = bw.Flush()
		_ = pw.Close()
	}()
	return pr
}

// importRows POSTs n generated rows with confirmed=true and returns the
// time it took.
func importRows(tb testing.TB, e *env, n int) time.Duration {
	tb.Helper()
	req, _ := http.NewRequest(http.MethodPost, e.URL+"/api/v1/subscribers.csv?confirmed=true", csvRows(n))
	req.Header.Set("Authorization", "Bearer "+adminToken)
	req.Header.Set("Content-Type", "text/csv")
	start := time.Now()
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	defer res.Body.Close()
	var rep herald.ImportReport
	if err := json.NewDecoder(res.Body).Decode(&rep); err != nil || res.StatusCode != http.StatusOK || rep.Added != n {
		tb.Fatalf("import: %d %+v %v", res.StatusCode, rep, err)
	}
	return time.Since(start)
}

// BenchmarkImportCSV imports generated rows with confirmed=true through
// the HTTP API, one import per iteration, and reports the rate and the
// peak heap in use (sampled every 100ms). HERALD_IMPORT_ROWS sets the
// rows (default 100k):
//
//	go test -run '^$' -bench ImportCSV -benchtime 1x ./handlers/
//	HERALD_IMPORT_ROWS=1000000 go test -run '^$' -bench ImportCSV -benchtime 1x ./handlers/
func BenchmarkImportCSV(b *testing.B) {
	n, _ := strconv.Atoi(os.Getenv("HERALD_IMPORT_ROWS"))
	if n <= 0 {
		n = 100_000
	}
	var peak atomic.Uint64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		var ms runtime.MemStats
		for {
			select {
			case <-stop:
				return
			case <-t.C:
			}
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > peak.Load() {
				peak.Store(ms.HeapInuse)
			}
		}
	})
	var total time.Duration
	for range b.N {
		b.StopTimer()
		e := newEnv(b, testenv.Options{AdminToken: adminToken})
		b.StartTimer()
		total += importRows(b, e, n)
	}
	close(stop)
	wg.Wait()
	b.ReportMetric(float64(n*b.N)/total.Seconds(), "rows/s")
	b.ReportMetric(float64(peak.Load())/(1<<20), "peak-heap-MiB")
}
