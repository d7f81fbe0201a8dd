package digest_test

import (
	"testing"
	"time"

	"github.com/herald-dev/herald"
	"github.com/herald-dev/herald/digest"
)

// A run records every post it carried and each subject line it used,
// across readers who had different posts waiting; instant emails each
// carry their post's title.
func TestRunRecordsPostsAndSubjects(t *testing.T) {
	f := setup(t, nil)
	f.reader("early@example.org", herald.Daily)
	f.post(1, false)
	f.reader("late@example.org", herald.Daily) // joins after post 1
	f.post(2, false)
	f.post(3, true) // silent: never carried
	r := f.runAndWait(f.dig, herald.Daily)
	if r.Sent != 2 {
		t.Fatalf("run %+v", r)
	}
	if len(r.Posts) != 2 || r.Posts[0].Title != "Post number 1" || r.Posts[1].Title != "Post number 2" {
		t.Fatalf("posts %+v", r.Posts)
	}
	want := map[string]bool{"Test Blog: 2 new posts": true, "Post number 2": true}
	if len(r.Subjects) != 2 || !want[r.Subjects[0]] || !want[r.Subjects[1]] {
		t.Fatalf("subjects %v", r.Subjects)
	}
	f.reader("i@example.org", herald.Instant)
	f.post(4, false)
	f.post(5, false)
	in := f.runAndWait(f.dig, herald.Instant)
	if len(in.Posts) != 2 || len(in.Subjects) != 2 || in.Subjects[0] == in.Subjects[1] {
		t.Fatalf("instant run: posts %+v subjects %v", in.Posts, in.Subjects)
	}
	// A run with nothing new for anyone carries nothing.
	f.runAndWait(f.dig, herald.Daily) // posts 4 and 5 for the daily readers
	if r := f.runAndWait(f.dig, herald.Daily); r.Sent != 0 || len(r.Posts) != 0 || !r.Empty() {
		t.Fatalf("empty run %+v", r)
	}
}

// Runs that mailed nobody are left out when asked, and the pages still
// reach every run that mailed someone.
func TestListRunsSkipEmpty(t *testing.T) {
	f := setup(t, nil)
	f.reader("a@example.org", herald.Daily)
	var real []uint64
	for i := range 3 {
		f.post(i+1, false)
		real = append(real, f.runAndWait(f.dig, herald.Daily).ID)
		f.runAndWait(f.dig, herald.Daily) // nothing new: empty
		dry, err := f.dig.StartRun(f.ctx, herald.Weekly, herald.TriggerAPI, true)
		if err != nil {
			t.Fatal(err)
		}
		f.waitRun(dry.ID)
	}
	all, next, err := f.dig.ListRuns(f.ctx, herald.RunFilter{})
	if err != nil || len(all) != 9 || next != 0 {
		t.Fatalf("every run: %d %d %v", len(all), next, err)
	}
	var got []uint64
	before := uint64(0)
	for range 10 {
		page, next, err := f.dig.ListRuns(f.ctx, herald.RunFilter{Limit: 2, Before: before, SkipEmpty: true})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range page {
			got = append(got, r.ID)
		}
		if next == 0 {
			break
		}
		before = next
	}
	if len(got) != 3 || got[0] != real[2] || got[1] != real[1] || got[2] != real[0] {
		t.Fatalf("runs that mailed someone: %v, want %v newest first", got, real)
	}
}

// The timetable reads the next time of each schedule the scheduler
// fires, in digest.timezone.
func TestTimetable(t *testing.T) {
	london, err := time.LoadLocation("Europe/London")
	if err != nil {
		t.Fatal(err) // time/tzdata is linked: every zone is there
	}
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC) // a Wednesday
	f := setup(t, nil)
	d := f.newService(func(o *digest.Options) {
		o.Location, o.Daily, o.Weekly = london, "30 6 * * *", "0 7 * * MON"
		o.Now = func() time.Time { return now }
	})
	tt, err := d.Timetable(f.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if tt.Timezone != "Europe/London" || len(tt.Schedules) != 3 {
		t.Fatalf("timetable %+v", tt)
	}
	in, daily, weekly := tt.Schedules[0], tt.Schedules[1], tt.Schedules[2]
	if in.Frequency != herald.Instant || in.Next != nil || in.Cron != "" {
		t.Fatalf("instant %+v", in)
	}
	if daily.Cron != "30 6 * * *" || daily.Next == nil || !daily.Next.Equal(time.Date(2026, 11, 26, 6, 30, 0, 0, london)) {
		t.Fatalf("daily %+v", daily)
	}
	if weekly.Next == nil || !weekly.Next.Equal(time.Date(2026, 11, 30, 7, 0, 0, 0, london)) || weekly.Next.Location().String() != "Europe/London" {
		t.Fatalf("weekly %+v", weekly)
	}
	// Summer time: 06:30 in London is 05:30 UTC.
	now = time.Date(2026, 7, 1, 12, 0, 0, 0, time.UTC)
	tt, _ = d.Timetable(f.ctx)
	if got := tt.Schedules[1].Next.UTC(); !got.Equal(time.Date(2026, 7, 2, 5, 30, 0, 0, time.UTC)) {
		t.Fatalf("daily in summer: %v", got)
	}
	// No weekly schedule: none in the timetable.
	d2 := f.newService(func(o *digest.Options) { o.Daily, o.Weekly = "0 7 * * *", "" })
	if tt, _ := d2.Timetable(f.ctx); tt.Schedules[2].Next != nil || tt.Schedules[2].Cron != "" || tt.Timezone != "UTC" {
		t.Fatalf("no weekly schedule: %+v", tt.Schedules[2])
	}
}
