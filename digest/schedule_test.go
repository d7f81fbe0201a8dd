package digest_test

import (
	"context"
	"testing"
	"time"
	_ "time/tzdata" // as in cmd/herald: the zones do not depend on the machine

	"github.com/herald-dev/herald"
	"github.com/herald-dev/herald/digest"
)

func TestScheduleAcrossDST(t *testing.T) {
	london, err := time.LoadLocation("Europe/London")
	if err != nil {
		t.Fatal(err) // time/tzdata is linked in: every machine has the zones
	}
	// 01:30 does not exist in London on 2026-03-29 (clocks jump 01:00→02:00)
	// and happens twice on 2026-10-25. A daily digest must still go out
	// once on each of those days, never twice.
	sch, err := digest.ParseSchedule("30 1 * * *")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, from, to string }{
		{"spring forward", "2026-03-27T12:00:00Z", "2026-04-01T00:00:00Z"},
		{"fall back", "2026-10-23T12:00:00Z", "2026-10-28T00:00:00Z"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			from, _ := time.Parse(time.RFC3339, tc.from)
			to, _ := time.Parse(time.RFC3339, tc.to)
			perDay := map[string]int{}
			for t0 := sch.Next(from.In(london)); t0.Before(to); t0 = sch.Next(t0) {
				perDay[t0.In(london).Format("2006-01-02")]++
			}
			days := int(to.Sub(from).Hours() / 24) // every day from the one after from
			if len(perDay) != days {
				t.Errorf("fired on %d days, want %d: %v", len(perDay), days, perDay)
			}
			for d, n := range perDay {
				if n != 1 {
					t.Errorf("%s: fired %d times", d, n)
				}
			}
		})
	}
	// The time zone is honoured: 07:00 in London is 07:00 UTC in winter
	// and 06:00 UTC in summer.
	seven, _ := digest.ParseSchedule("0 7 * * *")
	w := seven.Next(time.Date(2026, 1, 10, 0, 0, 0, 0, london))
	s := seven.Next(time.Date(2026, 7, 10, 0, 0, 0, 0, london))
	if w.UTC().Hour() != 7 || s.UTC().Hour() != 6 {
		t.Errorf("07:00 London = %v (winter), %v (summer)", w.UTC(), s.UTC())
	}
}

func TestMissed(t *testing.T) {
	sch, _ := digest.ParseSchedule("0 7 * * *")
	last := time.Date(2026, 11, 23, 7, 0, 0, 0, time.UTC)
	if m := digest.Missed(sch, last, time.Date(2026, 11, 24, 6, 59, 0, 0, time.UTC), time.UTC); !m.IsZero() {
		t.Errorf("nothing was due yet, got %v", m)
	}
	// Down for two days: one catch-up, due at the first missed time.
	if m := digest.Missed(sch, last, time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC), time.UTC); !m.Equal(time.Date(2026, 11, 24, 7, 0, 0, 0, time.UTC)) {
		t.Errorf("missed = %v", m)
	}
	for _, bad := range []string{"0 25 * * *", "nope", "* * * *", "0 7 * * XYZ"} {
		if _, err := digest.ParseSchedule(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}

// A schedule that came due while herald was down runs once at start; the
// first start ever runs nothing.
func TestMissedRunRunsOnceAtStart(t *testing.T) {
	f := setup(t, nil)
	f.reader("d@example.org", herald.Daily)
	f.post(1, false)
	start := func() {
		ready := make(chan struct{})
		d := f.newService(func(o *digest.Options) { o.Daily = "0 7 * * *"; o.Ready = func() { close(ready) } })
		ctx, cancel := context.WithCancel(f.ctx)
		done := make(chan struct{})
		go func() { defer close(done); _ = d.Run(ctx) }()
		select { // caught up: a missed run is under way
		case <-ready:
		case <-time.After(time.Minute):
			t.Fatal("the service did not start")
		}
		d.Wait()
		cancel()
		<-done
	}
	start() // first start: records the time, runs nothing
	if runs, _ := f.db.ListRuns(f.ctx, 10, 0); len(runs) != 0 {
		t.Fatalf("first start ran %d runs", len(runs))
	}
	// Pretend the last check was three days ago.
	if err := f.db.PutSetting(f.ctx, "schedule:daily:last", []byte(time.Now().Add(-72*time.Hour).UTC().Format(time.RFC3339Nano))); err != nil {
		t.Fatal(err)
	}
	start()
	runs, _ := f.db.ListRuns(f.ctx, 10, 0)
	if len(runs) != 1 || runs[0].Trigger != "missed" {
		t.Fatalf("runs after a missed schedule: %+v", runs)
	}
	f.waitRun(runs[0].ID)
	start() // and only once
	if runs, _ := f.db.ListRuns(f.ctx, 10, 0); len(runs) != 1 {
		t.Fatalf("the missed run ran again: %d runs", len(runs))
	}
	if f.smtp.Count() != 1 {
		t.Fatalf("%d emails", f.smtp.Count())
	}
}
