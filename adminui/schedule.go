package adminui

import (
	"fmt"
	"net/http"
	"time"

	"github.com/herald-dev/herald"
)

// timetable is GET /api/v1/schedule for the templates: each frequency's
// next run, and how far off it is; with local time, each slot's.
type timetable struct {
	Timezone  string
	LocalTime bool
	Rows      []scheduleRow
}

type scheduleRow struct {
	herald.Schedule
	In    string // "in 18 hours"
	Slots []slotRow
}

type slotRow struct {
	herald.Slot
	In string
}

func (u *UI) timetable(r *http.Request) (*timetable, box) {
	tt, err := u.api.Schedule(ctx(r))
	if err != nil {
		return nil, boxFor(err)
	}
	out := &timetable{Timezone: tt.Timezone, LocalTime: tt.LocalTime}
	now := u.now()
	for _, s := range tt.Schedules {
		row := scheduleRow{Schedule: s}
		if s.Next != nil {
			row.In = until(s.Next.Sub(now))
		}
		for _, sl := range s.Slots {
			row.Slots = append(row.Slots, slotRow{Slot: sl, In: until(sl.At.Sub(now))})
		}
		out.Rows = append(out.Rows, row)
	}
	return out, box{}
}

// until says how far off d is, roughly: "in 5 minutes", "in 18 hours",
// "in 3 days".
func until(d time.Duration) string {
	switch {
	case d < time.Minute:
		return "in less than a minute"
	case d < 2*time.Hour:
		return plural(int(d/time.Minute), "minute")
	case d < 48*time.Hour:
		return plural(int(d/time.Hour), "hour")
	}
	return plural(int(d/(24*time.Hour)), "day")
}

func plural(n int, unit string) string {
	if n == 1 {
		return "in 1 " + unit
	}
	return fmt.Sprintf("in %d %ss", n, unit)
}
