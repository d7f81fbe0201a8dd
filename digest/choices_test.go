package digest_test

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/herald-dev/herald"
	"github.com/herald-dev/herald/digest"
	"github.com/herald-dev/herald/internal/smtptest"
	"github.com/herald-dev/herald/internal/testenv"
	"github.com/herald-dev/herald/internal/testmail"
)

var postNumber = regexp.MustCompile(`Post number (\d+)`)

// postsIn lists the post numbers an email carries, in order of number
// (a digest lists the newest first).
func postsIn(t *testing.T, m smtptest.Message) []int {
	t.Helper()
	var out []int
	for _, g := range postNumber.FindAllStringSubmatch(testmail.MustParse(t, m.Data).Text, -1) {
		n, _ := strconv.Atoi(g[1])
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out
}

// mailOf lists, per recipient, the post numbers of each email.
func mailOf(t *testing.T, msgs []smtptest.Message) map[string][][]int {
	t.Helper()
	out := map[string][][]int{}
	for _, m := range msgs {
		out[m.To[0]] = append(out[m.To[0]], postsIn(t, m))
	}
	return out
}

// choose sets a reader's choices as the subscription service would.
func (f *fx) choose(email string, fn func(s *herald.Subscriber)) {
	f.t.Helper()
	_, err := f.db.MutateSubscriber(f.ctx, email, func(cur *herald.Subscriber) (*herald.Subscriber, []*herald.OutboxMessage, error) {
		next := *cur
		fn(&next)
		return &next, nil, nil
	})
	if err != nil {
		f.t.Fatal(err)
	}
}

// postIn stores a post with categories, found at found.
func (f *fx) postIn(n int, found time.Time, cats ...string) *herald.Post {
	f.t.Helper()
	p := &herald.Post{
		GUID: fmt.Sprintf("guid-%d", n), URL: fmt.Sprintf("https://blog.example.org/p/%d", n),
		Title: fmt.Sprintf("Post number %d", n), Categories: cats, Summary: "<p>A summary.</p>",
		PublishedAt: found, FoundAt: found, Feed: "https://blog.example.org/feed/",
	}
	if _, err := f.db.UpsertPost(f.ctx, p); err != nil {
		f.t.Fatal(err)
	}
	return p
}

// A daily run with topics: each reader gets exactly the posts of their
// topics and the posts of no offered topic; a reader with nothing of
// theirs gets no email, and their cursor still moves past it all; the
// digest is rendered once per distinct set of posts.
func TestRunSendsEachReaderTheirTopics(t *testing.T) {
	topics := offered(t, "Prisons", "Courts", "Policing")
	f := setup(t, func(o *digest.Options) { o.Topics = topics; o.MaxPosts = 20 })
	for _, r := range []struct {
		email  string
		topics herald.TopicList
	}{
		{"all@example.org", nil},
		{"courts@example.org", herald.TopicList{"Courts"}},
		{"courts2@example.org", herald.TopicList{"Courts"}},
		{"prisons-policing@example.org", herald.TopicList{"Prisons", "Policing"}},
		{"policing@example.org", herald.TopicList{"Policing"}},
	} {
		f.reader(r.email, herald.Daily)
		f.choose(r.email, func(s *herald.Subscriber) { s.Topics = r.topics })
	}
	now := time.Now()
	f.postIn(1, now, "courts")
	f.postIn(2, now, "Prisons", "Elections") // Elections is not offered
	f.postIn(3, now, "Sport")                // no offered topic: everyone
	f.postIn(4, now, "COURTS")
	run := f.runAndWait(f.dig, herald.Daily)
	got := mailOf(t, f.smtp.WaitFor(t, 4, 10*time.Second))
	want := map[string][][]int{
		"all@example.org":              {{1, 2, 3, 4}},
		"courts@example.org":           {{1, 3, 4}},
		"courts2@example.org":          {{1, 3, 4}},
		"prisons-policing@example.org": {{2, 3}},
		"policing@example.org":         {{3}},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("mail %v\nwant %v", got, want)
	}
	// Four distinct sets for five readers.
	if run.Sent != 5 || run.PostSets != 4 {
		t.Errorf("run %+v", run)
	}
	// A post for Courts alone: the Policing reader gets nothing, but moves past it.
	f.smtp.Reset()
	p5 := f.postIn(5, now, "Courts")
	run = f.runAndWait(f.dig, herald.Daily)
	got = mailOf(t, f.smtp.WaitFor(t, 3, 10*time.Second))
	if len(got["policing@example.org"]) != 0 || len(got["prisons-policing@example.org"]) != 0 || len(got) != 3 {
		t.Errorf("mail %v", got)
	}
	if run.Sent != 3 || run.Skipped != 2 {
		t.Errorf("run %+v", run)
	}
	for _, e := range []string{"policing@example.org", "prisons-policing@example.org"} {
		if s, _ := f.db.SubscriberByEmail(f.ctx, e); s.Cursor != p5.ID {
			t.Errorf("%s's cursor is %d, want %d", e, s.Cursor, p5.ID)
		}
	}
	// Then a Policing post comes to them, and only it.
	f.smtp.Reset()
	f.postIn(6, now, "policing")
	f.runAndWait(f.dig, herald.Daily)
	got = mailOf(t, f.smtp.WaitFor(t, 3, 10*time.Second))
	if fmt.Sprint(got["policing@example.org"]) != "[[6]]" || fmt.Sprint(got["prisons-policing@example.org"]) != "[[6]]" || len(got["courts@example.org"]) != 0 {
		t.Errorf("mail %v", got)
	}
}

// Instant readers get each post of their topics on its own; the posts
// after their last one that they did not want are passed by too.
func TestInstantRunHonoursTopics(t *testing.T) {
	topics := offered(t, "Prisons", "Courts")
	f := setup(t, func(o *digest.Options) { o.Topics = topics })
	f.reader("i@example.org", herald.Instant)
	f.choose("i@example.org", func(s *herald.Subscriber) { s.Topics = herald.TopicList{"Courts"} })
	now := time.Now()
	f.postIn(1, now, "Courts")
	f.postIn(2, now, "Prisons")
	f.postIn(3, now, "Courts")
	last := f.postIn(4, now, "Prisons")
	f.runAndWait(f.dig, herald.Instant)
	got := mailOf(t, f.smtp.WaitFor(t, 2, 10*time.Second))
	if fmt.Sprint(got["i@example.org"]) != "[[1] [3]]" {
		t.Errorf("mail %v", got)
	}
	if s, _ := f.db.SubscriberByEmail(f.ctx, "i@example.org"); s.Cursor != last.ID {
		t.Errorf("cursor %d, want %d", s.Cursor, last.ID)
	}
}

// settable is a clock the test moves.
type settable struct {
	mu sync.Mutex
	t  time.Time
}

func (c *settable) Now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *settable) set(t time.Time) { c.mu.Lock(); c.t = t; c.mu.Unlock() }

// A paused reader gets nothing while paused; afterwards, the posts that
// arrived before the pause come, those that arrived during it never do.
// Preview says the same.
func TestPauseHoldsMailAndSkipsItsPosts(t *testing.T) {
	clock := &settable{t: time.Date(2025, 5, 1, 8, 0, 0, 0, time.UTC)}
	f := setup(t, func(o *digest.Options) { o.Now = clock.Now })
	f.reader("p@example.org", herald.Daily)
	f.reader("q@example.org", herald.Daily)
	t0 := clock.Now()
	f.postIn(1, t0.Add(time.Hour)) // before the pause: still theirs
	clock.set(t0.Add(2 * time.Hour))
	f.choose("p@example.org", func(s *herald.Subscriber) { s.Pause(clock.Now(), clock.Now().Add(7*24*time.Hour)) })
	f.postIn(2, t0.Add(3*time.Hour)) // during the pause
	clock.set(t0.Add(24 * time.Hour))
	if _, ok, err := f.dig.Preview(f.ctx, "p@example.org"); ok || err != nil {
		t.Errorf("preview of a paused reader: %v %v", ok, err)
	}
	run := f.runAndWait(f.dig, herald.Daily)
	got := mailOf(t, f.smtp.WaitFor(t, 1, 10*time.Second))
	if len(got["p@example.org"]) != 0 || fmt.Sprint(got["q@example.org"]) != "[[1 2]]" || run.Sent != 1 {
		t.Fatalf("while paused: mail %v, run %+v", got, run)
	}
	f.postIn(3, t0.Add(6*24*time.Hour)) // during the pause
	clock.set(t0.Add(8 * 24 * time.Hour))
	f.postIn(4, clock.Now()) // after it
	html, ok, err := f.dig.Preview(f.ctx, "p@example.org")
	if !ok || err != nil || !postNumber.MatchString(html) {
		t.Fatalf("preview after the pause: %v %v", ok, err)
	}
	for _, n := range []string{"Post number 2", "Post number 3"} {
		if regexp.MustCompile(n + `\b`).MatchString(html) {
			t.Errorf("preview after the pause shows %s, which arrived during it", n)
		}
	}
	f.smtp.Reset()
	f.runAndWait(f.dig, herald.Daily)
	got = mailOf(t, f.smtp.WaitFor(t, 2, 10*time.Second))
	if fmt.Sprint(got["p@example.org"]) != "[[1 4]]" || fmt.Sprint(got["q@example.org"]) != "[[3 4]]" {
		t.Fatalf("after the pause: mail %v", got)
	}
	if s, _ := f.db.SubscriberByEmail(f.ctx, "p@example.org"); !s.PausedAt.IsZero() {
		t.Errorf("the pause is not over after the digest that passed it: %v", s.PausedAt)
	}
}

// With local time, a reader who moves to a zone whose morning is still to
// come that day gets no second digest that day; one who moves to a zone
// where the next day has begun gets that day's. Each slot is a run of its
// own, for the zones whose morning it is. The test moves the clock past
// each morning in turn and waits for its run.
func TestLocalTimeServesEachMorningOnce(t *testing.T) {
	f := setup(t, nil)
	for _, r := range []struct{ email, zone string }{
		{"a@example.org", "Pacific/Auckland"}, // 07:00 NZDT = 18:00 UTC the day before
		{"b@example.org", "Europe/London"},    // 07:00 GMT = 07:00 UTC
		{"c@example.org", "Asia/Kolkata"},     // 07:00 IST = 01:30 UTC
	} {
		f.reader(r.email, herald.Daily)
		f.choose(r.email, func(s *herald.Subscriber) { s.Timezone = r.zone })
	}
	f.post(1, false)
	clock := &settable{t: time.Date(2025, 3, 1, 16, 0, 0, 0, time.UTC)}
	ready := make(chan struct{})
	d := f.newService(func(o *digest.Options) {
		o.LocalTime, o.Daily, o.Location = true, "0 7 * * *", time.UTC
		o.Clock = digest.SteppedClock{Read: clock.Now, Poll: 5 * time.Millisecond}
		o.Ready = func() { close(ready) }
	})
	f.serve(d)
	<-ready // its first look at the time is done: now the clock moves
	// to moves the clock and waits until the slots up to then (n in all)
	// have each had their run, and it is done.
	to := func(at time.Time, n int) {
		t.Helper()
		clock.set(at)
		testenv.Eventually(t, time.Minute, fmt.Sprintf("%d slot runs by %v", n, at), func() bool {
			runs, err := f.db.ListRuns(f.ctx, 100, 0)
			if err != nil || len(runs) < n {
				return false
			}
			for _, r := range runs {
				if r.State != herald.RunDone {
					return false
				}
			}
			return true
		})
	}
	// Auckland's 2 March: a gets post 1. Then a moves to London (where 2
	// March's morning is still to come) and b to Auckland (where 3 March's
	// comes next).
	to(time.Date(2025, 3, 1, 18, 30, 0, 0, time.UTC), 1)
	if m := mailOf(t, f.smtp.Messages()); fmt.Sprint(m) != "map[a@example.org:[[1]]]" {
		t.Fatalf("Auckland's morning: %v", m)
	}
	f.choose("a@example.org", func(s *herald.Subscriber) { s.Timezone = "Europe/London" })
	f.choose("b@example.org", func(s *herald.Subscriber) { s.Timezone = "Pacific/Auckland" })
	f.post(2, false)
	// Kolkata's 2 March (c: 1, 2); London's (nobody: a had 2 March's
	// already); Auckland's 3 March (b: 1, 2).
	to(time.Date(2025, 3, 2, 2, 0, 0, 0, time.UTC), 2)
	to(time.Date(2025, 3, 2, 7, 30, 0, 0, time.UTC), 3)
	to(time.Date(2025, 3, 2, 18, 30, 0, 0, time.UTC), 4)
	f.post(3, false)
	// Kolkata's 3 March (c: 3), London's (a: 2, 3).
	to(time.Date(2025, 3, 3, 2, 0, 0, 0, time.UTC), 5)
	to(time.Date(2025, 3, 3, 9, 0, 0, 0, time.UTC), 6)
	d.Wait()
	got := mailOf(t, f.smtp.Messages())
	want := map[string][][]int{
		"a@example.org": {{1}, {2, 3}},
		"b@example.org": {{1, 2}},
		"c@example.org": {{1, 2}, {3}},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("mail %v\nwant %v", got, want)
	}
	runs, err := f.db.ListRuns(f.ctx, 100, 0)
	if err != nil {
		t.Fatal(err)
	}
	var slots []string
	for _, r := range slices.Backward(runs) {
		if r.Slot == nil || r.Trigger != herald.TriggerSchedule || r.State != herald.RunDone {
			t.Errorf("run %+v", r)
			continue
		}
		slots = append(slots, fmt.Sprintf("%s %v sent %d", r.Slot.Format("02 15:04"), r.Zones, r.Sent))
	}
	wantSlots := []string{
		"01 18:00 [Pacific/Auckland] sent 1",
		"02 01:30 [Asia/Kolkata] sent 1",
		"02 07:00 [Europe/London] sent 0",
		"02 18:00 [Pacific/Auckland] sent 1",
		"03 01:30 [Asia/Kolkata] sent 1",
		"03 07:00 [Europe/London] sent 1",
	}
	if !slices.Equal(slots, wantSlots) {
		t.Errorf("runs\n%v\nwant\n%v", slots, wantSlots)
	}
}

// Timetable lists the next time of each schedule; with local time, one
// slot per time the morning comes to zones with readers, with how many.
func TestTimetableListsSlots(t *testing.T) {
	f := setup(t, nil)
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC) // a Saturday
	for i, z := range []string{"Europe/London", "Europe/Lisbon", "Asia/Kolkata", "", ""} {
		e := fmt.Sprintf("r%d@example.org", i)
		f.reader(e, herald.Daily)
		f.choose(e, func(s *herald.Subscriber) { s.Timezone = z })
	}
	f.reader("w@example.org", herald.Weekly)
	f.choose("w@example.org", func(s *herald.Subscriber) { s.Timezone = "America/New_York" })
	tokyo, _ := time.LoadLocation("Asia/Tokyo")
	local := f.newService(func(o *digest.Options) {
		o.LocalTime, o.Daily, o.Weekly, o.Now, o.Location = true, "0 7 * * *", "0 7 * * MON", func() time.Time { return now }, tokyo
	})
	tt, err := local.Timetable(f.ctx)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, sc := range tt.Schedules {
		got = append(got, fmt.Sprintf("%s %q", sc.Frequency, sc.Cron))
		for _, sl := range sc.Slots {
			got = append(got, fmt.Sprintf("  %s %v %d", sl.At.Format("Mon 15:04"), sl.Zones, sl.Readers))
		}
	}
	want := []string{
		`instant ""`,
		`daily "0 7 * * *"`,
		"  Sat 22:00 [Asia/Tokyo] 2",                  // 07:00 Sunday in Tokyo, the site's zone
		"  Sun 01:30 [Asia/Kolkata] 1",                // 07:00 in Kolkata
		"  Sun 07:00 [Europe/Lisbon Europe/London] 2", // 07:00 in both
		`weekly "0 7 * * MON"`,
		"  Mon 12:00 [America/New_York] 1",
	}
	if !tt.LocalTime || tt.Timezone != "Asia/Tokyo" || !slices.Equal(got, want) {
		t.Errorf("timetable %v\n%v\nwant %v", tt.LocalTime, strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if d := tt.Schedules[1]; d.Next == nil || !d.Next.Equal(time.Date(2025, 3, 1, 22, 0, 0, 0, time.UTC)) {
		t.Errorf("daily's next %v", d.Next)
	}
	global := f.newService(func(o *digest.Options) {
		o.Daily, o.Weekly, o.Now, o.Location = "0 7 * * *", "0 7 * * MON", func() time.Time { return now }, time.UTC
	})
	if tt, err = global.Timetable(f.ctx); err != nil || tt.LocalTime || len(tt.Schedules) != 3 || tt.Schedules[0].Next != nil ||
		!tt.Schedules[1].Next.Equal(time.Date(2025, 3, 2, 7, 0, 0, 0, time.UTC)) || len(tt.Schedules[1].Slots) != 0 ||
		!tt.Schedules[2].Next.Equal(time.Date(2025, 3, 3, 7, 0, 0, 0, time.UTC)) {
		t.Errorf("global timetable %+v %v", tt, err)
	}
}
