package digest_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/herald-dev/herald"
	"github.com/herald-dev/herald/digest"
	"github.com/herald-dev/herald/internal/smtptest"
	"github.com/herald-dev/herald/internal/testenv"
	"github.com/herald-dev/herald/internal/testmail"
	"github.com/herald-dev/herald/store"
	"github.com/herald-dev/herald/subscription"
	"github.com/herald-dev/herald/templates"
)

type fx struct {
	t    *testing.T
	ctx  context.Context
	db   *store.DB
	smtp *smtptest.Server
	tr   herald.Transport
	subs *subscription.Service
	dig  *digest.Service
	tpl  *templates.Set
	path string
}

// setup is a whole herald (internal/testenv) and a digest service of its
// own on it, f.dig, with options for these tests (mod changes them), its
// loop running.
func setup(t *testing.T, mod func(*digest.Options)) *fx {
	t.Helper()
	app := testenv.New(t, testenv.Options{})
	f := &fx{t: t, ctx: context.Background(), db: app.DB, smtp: app.SMTP, tr: app.Transport, subs: app.Subs, tpl: app.Templates, path: app.DB.Path()}
	f.dig = f.served(mod)
	return f
}

func (f *fx) newService(mod func(*digest.Options)) *digest.Service {
	opt := digest.Options{
		SiteName: "Test Blog", SiteURL: "https://blog.example.org", BaseURL: "https://news.example.org",
		From: "Test Blog <digest@example.org>", MaxPosts: 5, Workers: 4, BounceLimit: 2,
		RetryBackoff: 20 * time.Millisecond, MaxRetryBackoff: 200 * time.Millisecond,
	}
	if mod != nil {
		mod(&opt)
	}
	d, err := digest.New(f.db, f.tr, f.subs, f.tpl, opt)
	if err != nil {
		f.t.Fatal(err)
	}
	return d
}

// served is newService with its loop running until the test ends.
func (f *fx) served(mod func(*digest.Options)) *digest.Service {
	d := f.newService(mod)
	f.serve(d)
	return d
}

// serve runs d's loop (schedules, instant runs, and the runs StartRun
// queues) until the test ends.
func (f *fx) serve(d *digest.Service) {
	ctx, cancel := context.WithCancel(f.ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = d.Run(ctx) }()
	f.t.Cleanup(func() { cancel(); <-done })
}

func (f *fx) reader(email string, freq herald.Frequency) *herald.Subscriber {
	f.t.Helper()
	s, err := f.subs.Subscribe(f.ctx, herald.SubscribeRequest{Email: email, Frequency: string(freq), Confirmed: true, Source: "import"})
	if err != nil {
		f.t.Fatal(err)
	}
	return s
}

func (f *fx) post(n int, silent bool) *herald.Post {
	f.t.Helper()
	p := &herald.Post{
		GUID: fmt.Sprintf("guid-%d", n), URL: fmt.Sprintf("https://blog.example.org/p/%d", n),
		Title: fmt.Sprintf("Post number %d", n), Author: "Ann Author", Categories: []string{"go"},
		Summary: fmt.Sprintf("<p>Summary of post %d &amp; more.</p>", n), PublishedAt: time.Date(2026, 11, 20, 9, 0, 0, 0, time.UTC).Add(time.Duration(n) * time.Hour),
		Feed: "https://blog.example.org/feed/", FoundAt: time.Now(), Silent: silent,
	}
	if _, err := f.db.UpsertPost(f.ctx, p); err != nil {
		f.t.Fatal(err)
	}
	return p
}

// runAndWait starts a run and waits until it is done or failed.
func (f *fx) runAndWait(d *digest.Service, freq herald.Frequency) *herald.Run {
	f.t.Helper()
	run, err := d.StartRun(f.ctx, freq, herald.TriggerAPI, false)
	if err != nil {
		f.t.Fatal(err)
	}
	return f.waitRun(run.ID)
}

func (f *fx) waitRun(id uint64) *herald.Run {
	f.t.Helper()
	var r *herald.Run
	testenv.Eventually(f.t, time.Minute, fmt.Sprintf("run %d to finish", id), func() bool {
		var err error
		if r, err = f.db.Run(f.ctx, id); err != nil {
			f.t.Fatal(err)
		}
		return r.State == herald.RunDone || r.State == herald.RunFailed
	})
	return r
}

// finishedRuns waits until there are n runs, all of them done or failed,
// and returns them newest first.
func (f *fx) finishedRuns(n int) []*herald.Run {
	f.t.Helper()
	var runs []*herald.Run
	testenv.Eventually(f.t, time.Minute, fmt.Sprintf("%d finished runs", n), func() bool {
		var err error
		if runs, err = f.db.ListRuns(f.ctx, 100, 0); err != nil {
			f.t.Fatal(err)
		}
		if len(runs) < n {
			return false
		}
		for _, r := range runs {
			if r.State != herald.RunDone && r.State != herald.RunFailed {
				return false
			}
		}
		return true
	})
	return runs
}

// byRecipient groups what the SMTP server got.
func byRecipient(msgs []smtptest.Message) map[string][]smtptest.Message {
	out := map[string][]smtptest.Message{}
	for _, m := range msgs {
		out[m.To[0]] = append(out[m.To[0]], m)
	}
	return out
}

func TestDigestGoesToTheRightReadersWithTheRightPosts(t *testing.T) {
	f := setup(t, nil)
	f.post(1, true) // a feed's backlog: recorded, never mailed
	daily := f.reader("daily@example.org", herald.Daily)
	f.reader("weekly@example.org", herald.Weekly)
	gone := f.reader("gone@example.org", herald.Daily)
	f.post(2, false)
	f.post(3, false)
	if _, err := f.subs.UnsubscribeID(f.ctx, gone.ID); err != nil {
		t.Fatal(err)
	}
	run := f.runAndWait(f.dig, herald.Daily)
	if run.State != herald.RunDone || run.Sent != 1 || run.Failed != 0 {
		t.Fatalf("run %+v", run)
	}
	msgs := f.smtp.Messages()
	if len(msgs) != 1 || msgs[0].To[0] != "daily@example.org" {
		t.Fatalf("mail went to %v", byRecipient(msgs))
	}
	p := testmail.MustParse(t, msgs[0].Data)
	if p.Subject != "Test Blog: 2 new posts" {
		t.Errorf("subject %q", p.Subject)
	}
	for _, want := range []string{"Post number 2", "Post number 3", "https://blog.example.org/p/2", "Ann Author", "Summary of post 3 & more."} {
		if !strings.Contains(p.Text, want) {
			t.Errorf("text part lacks %q:\n%s", want, p.Text)
		}
	}
	if strings.Contains(p.Text+p.HTML, "Post number 1") {
		t.Error("a backlog post was mailed")
	}
	if !strings.Contains(p.HTML, `<a href="https://blog.example.org/p/3"`) || !strings.Contains(p.HTML, "style=") {
		t.Errorf("HTML part: titles not linked or CSS not inlined:\n%s", p.HTML)
	}
	if strings.Contains(p.Text, "<p>") || strings.Contains(p.Text, "&amp;") {
		t.Errorf("text part has markup:\n%s", p.Text)
	}
	unsub := f.subs.UnsubscribeURL(daily.ID)
	h := p.Header
	if h.Get("List-Unsubscribe") != "<"+unsub+">" || h.Get("List-Unsubscribe-Post") != "List-Unsubscribe=One-Click" ||
		h.Get("Precedence") != "bulk" || !strings.Contains(h.Get("List-Id"), "<test-blog.example.org>") {
		t.Errorf("headers %v", h)
	}
	if !strings.Contains(p.Text, unsub) || !strings.Contains(p.Text, f.subs.PreferencesURL(daily.ID)) || !strings.Contains(p.HTML, "Unsubscribe</a>") {
		t.Error("footer lacks the reader's unsubscribe and preferences links")
	}
	if strings.Contains(p.HTML+p.Text, "HERALDPLACEHOLDER") {
		t.Error("a placeholder was left in the email")
	}

	// Nothing new: no email.
	run2 := f.runAndWait(f.dig, herald.Daily)
	if run2.Sent != 0 || f.smtp.Count() != 1 {
		t.Fatalf("second run sent %d (smtp %d)", run2.Sent, f.smtp.Count())
	}
	// One new post: exactly that one, subject = its title.
	f.post(4, false)
	run3 := f.runAndWait(f.dig, herald.Daily)
	msgs = f.smtp.WaitFor(t, 2, 10*time.Second)
	p = testmail.MustParse(t, msgs[1].Data)
	if run3.Sent != 1 || p.Subject != "Post number 4" || strings.Contains(p.Text, "Post number 3") {
		t.Fatalf("third run: %+v subject %q\n%s", run3, p.Subject, p.Text)
	}
	// The weekly reader gets all three when their run comes.
	wk := f.runAndWait(f.dig, herald.Weekly)
	msgs = f.smtp.WaitFor(t, 3, 10*time.Second)
	p = testmail.MustParse(t, msgs[2].Data)
	if wk.Sent != 1 || msgs[2].To[0] != "weekly@example.org" || p.Subject != "Test Blog: 3 new posts" {
		t.Fatalf("weekly: %+v to %v %q", wk, msgs[2].To, p.Subject)
	}
	ids := map[string]bool{}
	for _, m := range msgs {
		id := testmail.MustParse(t, m.Data).Header.Get("Message-Id")
		if ids[id] || !strings.HasSuffix(id, "@example.org>") {
			t.Fatalf("Message-ID %q repeated or not on the From domain", id)
		}
		ids[id] = true
	}
}

func TestNewReaderGetsOnlyPostsAfterConfirming(t *testing.T) {
	f := setup(t, nil)
	f.post(1, false)
	f.post(2, false)
	f.reader("new@example.org", herald.Daily)
	if r := f.runAndWait(f.dig, herald.Daily); r.Sent != 0 || f.smtp.Count() != 0 {
		t.Fatalf("a new reader got old posts: %+v", r)
	}
	f.post(3, false)
	f.runAndWait(f.dig, herald.Daily)
	p := testmail.MustParse(t, f.smtp.WaitFor(t, 1, 10*time.Second)[0].Data)
	if p.Subject != "Post number 3" {
		t.Fatalf("subject %q", p.Subject)
	}
}

func TestMaxPostsLinksTheRest(t *testing.T) {
	f := setup(t, nil) // MaxPosts 5
	f.reader("many@example.org", herald.Daily)
	for i := 1; i <= 8; i++ {
		f.post(i, false)
	}
	f.runAndWait(f.dig, herald.Daily)
	p := testmail.MustParse(t, f.smtp.WaitFor(t, 1, 10*time.Second)[0].Data)
	if p.Subject != "Test Blog: 8 new posts" {
		t.Errorf("subject %q", p.Subject)
	}
	for i := 4; i <= 8; i++ {
		if !strings.Contains(p.Text, fmt.Sprintf("Post number %d\n", i)) {
			t.Errorf("newest post %d missing", i)
		}
	}
	for i := 1; i <= 3; i++ {
		if strings.Contains(p.Text, fmt.Sprintf("Post number %d\n", i)) {
			t.Errorf("post %d shown beyond max_posts", i)
		}
	}
	if !strings.Contains(p.Text, "3 more posts: https://blog.example.org") {
		t.Errorf("no link to the rest:\n%s", p.Text)
	}
	// And they are not lost: the cursor is past them, they were linked.
	s, _ := f.db.SubscriberByEmail(f.ctx, "many@example.org")
	if s.Cursor != 8 {
		t.Errorf("cursor %d", s.Cursor)
	}
}

func TestInstantReadersGetEachPostOnItsOwn(t *testing.T) {
	f := setup(t, func(o *digest.Options) { o.InstantDelay = 10 * time.Millisecond })
	f.reader("instant@example.org", herald.Instant)
	f.reader("daily@example.org", herald.Daily)
	f.post(1, false)
	f.post(2, false)
	f.dig.NewPosts()
	if runs := f.finishedRuns(1); runs[0].Frequency != herald.Instant || runs[0].Trigger != herald.TriggerPoll || runs[0].Sent != 2 {
		t.Fatalf("instant run %+v", runs[0])
	}
	msgs := f.smtp.Messages() // the run is done: the server took every email
	if len(msgs) != 2 {
		t.Fatalf("%d emails, want 2", len(msgs))
	}
	got := map[string]bool{}
	for _, m := range msgs {
		if m.To[0] != "instant@example.org" {
			t.Fatalf("mail to %v", m.To)
		}
		got[testmail.MustParse(t, m.Data).Subject] = true
	}
	if !got["Post number 1"] || !got["Post number 2"] {
		t.Fatalf("subjects %v", got)
	}
	// Nothing twice: the next instant run has nothing to send.
	f.dig.NewPosts()
	if again := f.finishedRuns(2)[0]; again.Sent != 0 || f.smtp.Count() != 2 {
		t.Fatalf("a second instant run sent %d more: %+v", f.smtp.Count()-2, again)
	}
}

func TestTemporaryFailuresAreRetried(t *testing.T) {
	f := setup(t, nil)
	for i := 0; i < 30; i++ {
		f.reader(fmt.Sprintf("r%02d@example.org", i), herald.Daily)
	}
	f.post(1, false)
	f.smtp.FailNext(8, 451, "4.3.0 try again later")
	f.smtp.DropAfterData(3)
	run := f.runAndWait(f.dig, herald.Daily)
	if run.State != herald.RunDone || run.Sent != 30 || run.Failed != 0 || run.Retries == 0 {
		t.Fatalf("run %+v", run)
	}
	got := byRecipient(f.smtp.Messages())
	if len(got) != 30 {
		t.Fatalf("%d readers got mail, want 30", len(got))
	}
	for to, ms := range got {
		ids := map[string]bool{}
		for _, m := range ms {
			ids[testmail.MustParse(t, m.Data).Header.Get("Message-Id")] = true
		}
		// A dropped connection after DATA may mean the server kept it:
		// then the resend carries the same id.
		if len(ids) != 1 {
			t.Fatalf("%s got %d distinct digests for one run", to, len(ids))
		}
	}
}

func TestPermanentFailuresCountAsBounces(t *testing.T) {
	f := setup(t, nil) // BounceLimit 2
	f.reader("good@example.org", herald.Daily)
	f.reader("bad@example.org", herald.Daily)
	f.smtp.RejectRecipient(func(addr string) (int, string, bool) {
		if strings.HasPrefix(addr, "bad@") {
			return 550, "5.1.1 no such user", true
		}
		return 0, "", false
	})
	f.post(1, false)
	run := f.runAndWait(f.dig, herald.Daily)
	if run.Sent != 1 || run.Failed != 1 || len(run.Failures) != 1 || !strings.Contains(run.Failures[0].Error, "550") {
		t.Fatalf("run %+v", run)
	}
	if s, _ := f.db.SubscriberByEmail(f.ctx, "bad@example.org"); s.Status != herald.StatusConfirmed || s.Bounces != 1 || s.Cursor != 0 {
		t.Fatalf("after one bounce: %+v", s)
	}
	f.post(2, false)
	f.runAndWait(f.dig, herald.Daily)
	if s, _ := f.db.SubscriberByEmail(f.ctx, "bad@example.org"); s.Status != herald.StatusBounced {
		t.Fatalf("after two bounces: %s", s.Status)
	}
	f.post(3, false)
	r3 := f.runAndWait(f.dig, herald.Daily)
	if r3.Failed != 0 || r3.Sent != 1 {
		t.Fatalf("a bounced reader was tried again: %+v", r3)
	}
}

// TestInterruptedRunResumes cuts a run off mid-way (as a shutdown does),
// then a new Service on the same database finishes it: every reader ends
// with exactly one distinct Message-ID for the run.
func TestInterruptedRunResumes(t *testing.T) {
	f := setup(t, nil)
	const n = 200
	for i := 0; i < n; i++ {
		f.reader(fmt.Sprintf("r%03d@example.org", i), herald.Weekly)
	}
	f.post(1, false)
	f.post(2, false)
	f.smtp.SetDelay(5 * time.Millisecond)
	ctx, cancel := context.WithCancel(f.ctx)
	d1 := f.newService(nil)
	done := make(chan struct{})
	go func() { defer close(done); _ = d1.Run(ctx) }()
	run, err := d1.StartRun(ctx, herald.Weekly, herald.TriggerAPI, false)
	if err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, time.Minute, "a third of the emails", func() bool { return f.smtp.Count() >= n/3 })
	cancel()
	<-done
	mid, _ := f.db.Run(f.ctx, run.ID)
	if mid.State != herald.RunRunning || mid.Sent == 0 || mid.Sent >= n {
		t.Fatalf("after the cut: %+v", mid)
	}
	f.smtp.SetDelay(0)
	ctx2, cancel2 := context.WithCancel(f.ctx)
	defer cancel2()
	d2 := f.newService(nil)
	var wg sync.WaitGroup
	wg.Go(func() { _ = d2.Run(ctx2) })
	final := f.waitRun(run.ID)
	cancel2()
	wg.Wait()
	if final.State != herald.RunDone || final.Sent != n {
		t.Fatalf("resumed run %+v", final)
	}
	// What the run carried is on record from the first process on.
	if len(mid.Posts) != 2 || len(final.Posts) != 2 || final.Posts[0].Title != "Post number 1" || len(final.Subjects) != 1 || final.Subjects[0] != "Test Blog: 2 new posts" {
		t.Fatalf("posts and subjects: cut %+v %v, final %+v %v", mid.Posts, mid.Subjects, final.Posts, final.Subjects)
	}
	got := byRecipient(f.smtp.Messages())
	if len(got) != n {
		t.Fatalf("%d readers got mail, want %d", len(got), n)
	}
	resent := 0
	for to, ms := range got {
		ids := map[string]bool{}
		for _, m := range ms {
			ids[testmail.MustParse(t, m.Data).Header.Get("Message-Id")] = true
		}
		if len(ids) != 1 {
			t.Fatalf("%s got %d different digests", to, len(ids))
		}
		resent += len(ms) - 1
	}
	t.Logf("interrupted after %d of %d; resent %d", mid.Sent, n, resent)
}

func TestDryRunSendsNothing(t *testing.T) {
	f := setup(t, nil)
	f.reader("a@example.org", herald.Daily)
	f.reader("b@example.org", herald.Daily)
	f.post(1, false)
	run, err := f.dig.StartRun(f.ctx, herald.Daily, herald.TriggerAPI, true)
	if err != nil {
		t.Fatal(err)
	}
	r := f.waitRun(run.ID)
	if !r.DryRun || r.Total != 2 || r.Sent != 0 || f.smtp.Count() != 0 {
		t.Fatalf("dry run %+v, smtp %d", r, f.smtp.Count())
	}
	// It says what would go, under which subject.
	if len(r.Posts) != 1 || r.Posts[0].Title != "Post number 1" || r.Posts[0].URL != "https://blog.example.org/p/1" || len(r.Subjects) != 1 || r.Subjects[0] != "Post number 1" {
		t.Fatalf("dry run's posts %+v subjects %v", r.Posts, r.Subjects)
	}
	// The real run afterwards still has everything to send.
	if r := f.runAndWait(f.dig, herald.Daily); r.Sent != 2 {
		t.Fatalf("real run after dry run %+v", r)
	}
}

func TestOneRunPerFrequencyAtATime(t *testing.T) {
	f := setup(t, nil)
	for i := 0; i < 20; i++ {
		f.reader(fmt.Sprintf("r%d@example.org", i), herald.Daily)
	}
	f.post(1, false)
	f.smtp.Hold() // the daily run is sending until Release
	run, err := f.dig.StartRun(f.ctx, herald.Daily, herald.TriggerAPI, false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.dig.StartRun(f.ctx, herald.Daily, herald.TriggerAPI, false); herald.ErrorCode(err) != herald.ECONFLICT {
		t.Fatalf("second daily run while one runs: %v", err)
	}
	if _, err := f.dig.StartRun(f.ctx, herald.Weekly, herald.TriggerAPI, false); err != nil {
		t.Fatalf("a weekly run must not wait for the daily one: %v", err)
	}
	f.smtp.Release()
	f.waitRun(run.ID)
	f.dig.Wait()
}

func TestPreviewAndTestEmail(t *testing.T) {
	f := setup(t, nil)
	s := f.reader("p@example.org", herald.Daily)
	if _, ok, err := f.dig.Preview(f.ctx, "p@example.org"); err != nil || ok {
		t.Fatalf("preview with nothing new: %v %v", ok, err)
	}
	if err := f.dig.SendTest(f.ctx, "admin@example.org", nil); herald.ErrorCode(err) != herald.ECONFLICT {
		t.Fatalf("test email without posts: %v", err)
	}
	f.post(1, false)
	html, ok, err := f.dig.Preview(f.ctx, "p@example.org")
	if err != nil || !ok || !strings.Contains(html, "Post number 1") || !strings.Contains(html, f.subs.UnsubscribeURL(s.ID)) {
		t.Fatalf("preview: %v %v\n%s", ok, err, html)
	}
	if _, _, err := f.dig.Preview(f.ctx, "nobody@example.org"); herald.ErrorCode(err) != herald.ENOTFOUND {
		t.Fatalf("preview of an unknown reader: %v", err)
	}
	if err := f.dig.SendTest(f.ctx, "not an address", nil); herald.ErrorCode(err) != herald.EINVALID {
		t.Fatalf("test email to a bad address: %v", err)
	}
	if err := f.dig.SendTest(f.ctx, "admin@example.org", nil); err != nil {
		t.Fatal(err)
	}
	msgs, _ := f.db.DueMessages(f.ctx, time.Now().Add(time.Minute), 10)
	if len(msgs) != 1 || msgs[0].Kind != herald.KindTest || !strings.HasPrefix(testmail.MustParse(t, msgs[0].Raw).Subject, "[Test] ") {
		t.Fatalf("test email %+v", msgs)
	}
	if s2, _ := f.db.SubscriberByEmail(f.ctx, "p@example.org"); s2.Cursor != s.Cursor {
		t.Fatal("preview or test moved a reader's cursor")
	}
}
