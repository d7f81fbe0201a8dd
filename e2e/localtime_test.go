package e2e

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/herald-dev/herald"
	"github.com/herald-dev/herald/internal/smtptest"
	"github.com/herald-dev/herald/internal/testenv"
	"github.com/herald-dev/herald/mailer"
)

// Local time (digest.local_time) on a test clock: herald's test build
// reads its time from the file HERALD_TEST_CLOCK names, and the clock
// stands still until the test writes another time. The test moves it past
// each morning in turn and waits for that morning's run: days of
// mornings, DST changes included, pass as fast as herald sends them, and
// nothing depends on how fast this machine is.
type fileClock struct {
	t    *testing.T
	path string
	now  time.Time
}

func newFileClock(t *testing.T, start time.Time) *fileClock {
	c := &fileClock{t: t, path: filepath.Join(t.TempDir(), "clock")}
	c.set(start)
	return c
}

func (c *fileClock) env() string { return "HERALD_TEST_CLOCK=" + c.path }

// set moves herald's clock to at (a new file renamed over the old one, so
// herald never reads half a time).
func (c *fileClock) set(at time.Time) {
	c.t.Helper()
	tmp := c.path + ".new"
	if err := os.WriteFile(tmp, []byte(at.UTC().Format(time.RFC3339Nano)), 0o600); err != nil {
		c.t.Fatal(err)
	}
	if err := os.Rename(tmp, c.path); err != nil {
		c.t.Fatal(err)
	}
	c.now = at
}

// waitSchedules waits until herald's schedules run (its first look at the
// time is done: a slot due before that is one missed while it was down).
func waitSchedules(t *testing.T, p *proc, n int) {
	t.Helper()
	testenv.Eventually(t, time.Minute, "herald's schedules to start", func() bool {
		return strings.Count(p.Output(), "schedules started") >= n
	})
}

// waitSlots waits until herald has created n local-time runs (or more)
// and every daily run is done.
func (in *instance) waitSlots(n int, what string) []*herald.Run {
	in.t.Helper()
	var runs []*herald.Run
	testenv.Eventually(in.t, 2*time.Minute, what, func() bool {
		runs = in.dailyRuns()
		if len(runs) < n {
			return false
		}
		for _, r := range runs {
			if r.State != herald.RunDone {
				return false
			}
		}
		return true
	})
	return runs
}

func localTimeConfig(smtpPort int) string {
	return robustConfig(smtpPort, "info", "[digest]\ndaily = \"0 7 * * *\"\nweekly = \"\"\nlocal_time = true\ntimezone = \"UTC\"\nmax_posts = 100")
}

// addReadersIn adds confirmed readers in a time zone through the CSV import.
func (in *instance) addReadersIn(zone string, emails ...string) {
	in.t.Helper()
	var csv strings.Builder
	csv.WriteString("email,frequency,status,timezone\n")
	for _, e := range emails {
		fmt.Fprintf(&csv, "%s,daily,confirmed,%s\n", e, zone)
	}
	r := in.do("POST", "/api/v1/subscribers.csv?confirmed=true", "text/csv", csv.String(), "Authorization", "Bearer "+adminToken)
	var rep struct{ Added int }
	if r.Status != 200 || json.Unmarshal([]byte(r.Body), &rep) != nil || rep.Added != len(emails) {
		in.t.Fatalf("import readers in %s: %d %s", zone, r.Status, r.Body)
	}
}

// dailyRuns reads the daily runs through the API (the instant runs that
// new posts start, for nobody here, aside), oldest first.
func (in *instance) dailyRuns() []*herald.Run {
	in.t.Helper()
	r := in.api("GET", "/api/v1/runs?limit=1000", "")
	var l struct{ Runs []*herald.Run }
	if r.Status != 200 || json.Unmarshal([]byte(r.Body), &l) != nil {
		in.t.Fatalf("runs: %d %s", r.Status, r.Body)
	}
	var out []*herald.Run
	for _, r := range slices.Backward(l.Runs) {
		if r.Frequency == herald.Daily {
			out = append(out, r)
		}
	}
	return out
}

// idOf reads a subscriber's id through the API.
func (in *instance) idOf(email string) uint64 {
	in.t.Helper()
	return uint64(in.subscriber(email)["id"].(float64))
}

var e2ePostTitle = regexp.MustCompile(`Post (\d+)\b`)

// postsOf lists the post numbers in a message's text part.
func postsOf(m smtptest.Message) []int {
	var out []int
	for _, g := range e2ePostTitle.FindAllStringSubmatch(string(m.Data), -1) {
		n, _ := strconv.Atoi(g[1])
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out
}

// Readers in London, New York, Kolkata and Auckland each get their daily
// digest at 07:00 their time, over two days across 29 October 2006, when
// both London and New York went back an hour: London's 07:00 is 06:00 UTC
// on the 28th and 07:00 UTC on the 29th, New York's 11:00 and 12:00. A
// post arrives every hour; each reaches each reader once. The test moves
// herald's clock an hour at a time and waits for the mornings it passed.
func TestLocalTimeMorningsAcrossDST(t *testing.T) {
	sm := smtptest.Start(t)
	start := time.Date(2006, 10, 27, 17, 0, 0, 0, time.UTC)
	clock := newFileClock(t, start)
	in := newInstance(t, localTimeConfig(sm.Port()), clock.env())
	zones := map[string]string{
		"london@example.org":   "Europe/London",
		"newyork@example.org":  "America/New_York",
		"kolkata@example.org":  "Asia/Kolkata",
		"auckland@example.org": "Pacific/Auckland",
	}
	p := in.start()
	waitSchedules(t, p, 1)
	for e, z := range zones {
		in.addReadersIn(z, e)
	}
	// The mornings, in UTC: the test's own count of them, to know what
	// to wait for at each hour (what herald did is checked below).
	mornings := []time.Time{
		time.Date(2006, 10, 27, 18, 0, 0, 0, time.UTC), // Auckland, 28th
		time.Date(2006, 10, 28, 1, 30, 0, 0, time.UTC), // Kolkata
		time.Date(2006, 10, 28, 6, 0, 0, 0, time.UTC),  // London, BST
		time.Date(2006, 10, 28, 11, 0, 0, 0, time.UTC), // New York, EDT
		time.Date(2006, 10, 28, 18, 0, 0, 0, time.UTC), // Auckland, 29th
		time.Date(2006, 10, 29, 1, 30, 0, 0, time.UTC), // Kolkata
		time.Date(2006, 10, 29, 7, 0, 0, 0, time.UTC),  // London, GMT
		time.Date(2006, 10, 29, 12, 0, 0, 0, time.UTC), // New York, EST
	}
	end := time.Date(2006, 10, 29, 13, 0, 0, 0, time.UTC)
	published := 0
	for at := start.Add(time.Hour); !at.After(end); at = at.Add(time.Hour) {
		published++
		in.addPost(fmt.Sprintf("p%d", published), fmt.Sprintf("Post %d", published))
		clock.set(at)
		due := 0
		for _, m := range mornings {
			if !m.After(at) {
				due++
			}
		}
		in.waitSlots(due, fmt.Sprintf("the %d mornings up to %v", due, at))
	}
	runs := in.dailyRuns()
	ids := map[string]uint64{}
	for e := range zones {
		ids[e] = in.idOf(e)
	}
	p.stop()
	settled(t, sm)
	if len(runs) != len(mornings) {
		t.Errorf("%d local-time runs, want one per morning (%d)", len(runs), len(mornings))
	}

	// Which run and reader each email is: its Message-ID is derived from
	// the two.
	type key struct{ run, sub uint64 }
	owner := map[string]key{}
	for e := range zones {
		for _, r := range runs {
			owner[mailer.NewMessageID("digest@example.org", "run", strconv.FormatUint(r.ID, 10), "sub", strconv.FormatUint(ids[e], 10))] = key{r.ID, ids[e]}
		}
	}
	byID := map[uint64]*herald.Run{}
	for _, r := range runs {
		byID[r.ID] = r
		if r.Slot == nil || r.Trigger != herald.TriggerSchedule {
			t.Errorf("run %d is not a local-time slot run: %+v", r.ID, r)
		}
	}
	gotAt := map[string][]string{}
	got := map[string]map[int]int{}
	for _, m := range sm.Messages() {
		to := m.To[0]
		k, ok := owner[headerValue(m.Data, "Message-Id")]
		if !ok {
			t.Errorf("an email to %s from no daily run (Message-ID %s)", to, headerValue(m.Data, "Message-Id"))
			continue
		}
		if k.sub != ids[to] {
			t.Fatalf("an email to %s is from a run to someone else (Message-ID %s)", to, headerValue(m.Data, "Message-Id"))
		}
		r := byID[k.run]
		if !slices.Contains(r.Zones, zones[to]) {
			t.Errorf("run %d (zones %v) mailed %s in %s", r.ID, r.Zones, to, zones[to])
		}
		loc, _ := time.LoadLocation(zones[to])
		gotAt[to] = append(gotAt[to], r.Slot.In(loc).Format("2006-01-02 15:04 MST")+" = "+r.Slot.UTC().Format("15:04Z"))
		if got[to] == nil {
			got[to] = map[int]int{}
		}
		for _, n := range postsOf(m) {
			got[to][n]++
		}
	}
	want := map[string][]string{
		"auckland@example.org": {"2006-10-28 07:00 NZDT = 18:00Z", "2006-10-29 07:00 NZDT = 18:00Z"},
		"kolkata@example.org":  {"2006-10-28 07:00 IST = 01:30Z", "2006-10-29 07:00 IST = 01:30Z"},
		"london@example.org":   {"2006-10-28 07:00 BST = 06:00Z", "2006-10-29 07:00 GMT = 07:00Z"},
		"newyork@example.org":  {"2006-10-28 07:00 EDT = 11:00Z", "2006-10-29 07:00 EST = 12:00Z"},
	}
	for e, w := range want {
		slices.Sort(gotAt[e])
		if !slices.Equal(gotAt[e], w) {
			t.Errorf("%s got digests at\n  %v\nwant\n  %v", e, gotAt[e], w)
		}
	}
	// Each post once: every post that arrived before the reader's last
	// morning (post n arrived in the hour before start+n hours), none
	// twice, none after.
	lastMorning := map[string]time.Time{
		"auckland@example.org": mornings[4], "kolkata@example.org": mornings[5],
		"london@example.org": mornings[6], "newyork@example.org": mornings[7],
	}
	for e := range zones {
		last := int(math.Ceil(lastMorning[e].Sub(start).Hours()))
		for n := 1; n <= published; n++ {
			wantN := 0
			if n <= last {
				wantN = 1
			}
			if got[e][n] != wantN {
				t.Errorf("%s got post %d %d times, want %d (last cut-off %d)", e, n, got[e][n], wantN, last)
			}
		}
	}
	if t.Failed() {
		t.Logf("published %d posts; runs:", published)
		for _, r := range runs {
			t.Logf("  run %d slot %v zones %v cutoff %d sent %d", r.ID, r.Slot, r.Zones, r.Cutoff, r.Sent)
		}
	}
}

// A SIGKILL in the middle of a local-time slot: when herald starts again
// the slot's run resumes, and every reader of it gets their digest once
// (a resend keeps its Message-ID); the slot that came due while herald was
// down runs once, at the start; readers whose morning has not come get
// nothing.
func TestLocalTimeSlotSurvivesSIGKILL(t *testing.T) {
	sm := smtptest.Start(t)
	clock := newFileClock(t, time.Date(2025, 6, 2, 0, 35, 0, 0, time.UTC))
	in := newInstance(t, localTimeConfig(sm.Port()), clock.env())
	p := in.start()
	waitSchedules(t, p, 1)
	readers := func(prefix string, n int) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = fmt.Sprintf("%s%03d@example.org", prefix, i)
		}
		return out
	}
	dhaka := readers("dhaka", scale(120, 400)) // 07:00 at 01:00 UTC
	nepal := readers("nepal", 20)              // 07:00 at 01:15 UTC (+05:45)
	london := readers("london", 5)             // 07:00 at 06:00 UTC in June
	in.addReadersIn("Asia/Dhaka", dhaka...)
	in.addReadersIn("Asia/Kathmandu", nepal...)
	in.addReadersIn("Europe/London", london...)
	in.addPost("kill-1", "Post 1")
	sm.SetDelay(15 * time.Millisecond)
	clock.set(time.Date(2025, 6, 2, 1, 5, 0, 0, time.UTC)) // Dhaka's morning
	killAt := len(dhaka) / 3
	testenv.Eventually(t, 2*time.Minute, fmt.Sprintf("%d emails of Dhaka's morning", killAt), func() bool { return sm.Count() >= killAt })
	p.kill()
	settled(t, sm)
	atKill := sm.Count()
	if atKill >= len(dhaka) {
		t.Fatalf("the run was over (%d emails) before the kill", atKill)
	}
	// Down past Kathmandu's morning.
	clock.set(time.Date(2025, 6, 2, 1, 20, 0, 0, time.UTC))
	sm.SetDelay(0)
	p = in.start()
	waitSchedules(t, p, 1)
	runs := in.waitSlots(2, "both mornings to be sent")
	if len(runs) != 2 {
		t.Fatalf("%d daily runs, want Dhaka's and Kathmandu's: %+v", len(runs), runs)
	}
	a, b := runs[0], runs[1]
	p.stop() // every email it sent is in: it closed its connections
	settled(t, sm)
	if a.Trigger != herald.TriggerSchedule || !slices.Equal(a.Zones, []string{"Asia/Dhaka"}) || a.Sent != len(dhaka) || a.Failed != 0 ||
		!a.Slot.Equal(time.Date(2025, 6, 2, 1, 0, 0, 0, time.UTC)) {
		t.Errorf("Dhaka's run: %+v", a)
	}
	if b.Trigger != herald.TriggerMissed || !slices.Equal(b.Zones, []string{"Asia/Kathmandu"}) || b.Sent != len(nepal) ||
		!b.Slot.Equal(time.Date(2025, 6, 2, 1, 15, 0, 0, time.UTC)) {
		t.Errorf("Kathmandu's run: %+v", b)
	}
	got := digestIDs(t, sm.Messages())
	resends := 0
	for _, e := range append(slices.Clone(dhaka), nepal...) {
		if len(got[e]) != 1 {
			t.Errorf("%s got %d distinct digests, want 1: %v", e, len(got[e]), got[e])
		}
		for _, n := range got[e] {
			resends += n - 1
		}
	}
	for _, e := range london {
		if len(got[e]) != 0 {
			t.Errorf("%s got mail before their morning", e)
		}
	}
	// Only what was in flight at the kill may go twice: far fewer than
	// the emails sent before it.
	if resends > atKill/2 {
		t.Errorf("%d resends after a kill at %d emails", resends, atKill)
	}
	t.Logf("killed at %d of %d emails of Dhaka's morning; %d resent with their Message-ID", atKill, len(dhaka), resends)
}
