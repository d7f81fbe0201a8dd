package adminui

import (
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/herald-dev/herald"
	"github.com/herald-dev/herald/api"
)

// Growth chart settings.
const (
	chartDays     = 90
	chartMaxRows  = 100_000
	chartPageSize = 1000
)

// chart is a cumulative line of confirmed readers per day, laid out for
// an inline SVG; the template only draws what is computed here.
type chart struct {
	W, H     int
	Left     float64
	Right    float64
	Top      float64
	Bottom   float64
	Line     string // SVG path data
	Area     string
	YTicks   []tick
	XTicks   []tick
	DotX     float64
	DotY     float64
	YLabX    float64 // where the value labels end
	XLabY    float64 // the baseline of the date labels
	Total    int     // confirmed readers counted
	Gained   int     // of them, confirmed within the window
	Days     int
	From, To string
	Capped   bool // stopped reading at chartMaxRows
	Summary  string
}

type tick struct {
	Pos    float64
	Label  string
	LabelY float64 // value labels sit just above their grid line
	Class  string  // "first" and "last" date labels align to the edges
}

// buildChart lays out the cumulative count of readers confirmed by the end
// of each of the last days days, ending today (in now's location).
func buildChart(confirmed []time.Time, now time.Time, days int, capped bool) *chart {
	loc := now.Location()
	y, m, d := now.Date()
	today := time.Date(y, m, d, 0, 0, 0, 0, loc)
	start := today.AddDate(0, 0, -(days - 1))
	perDay := make([]int, days)
	base := 0
	for _, t := range confirmed {
		t = t.In(loc)
		if t.Before(start) {
			base++
			continue
		}
		ty, tm, td := t.Date()
		day := time.Date(ty, tm, td, 0, 0, 0, 0, loc)
		i := int(day.Sub(start).Hours()/24 + 0.5)
		if i >= days {
			i = days - 1 // a clock a little ahead: count it today
		}
		if i < 0 {
			i = 0
		}
		perDay[i]++
	}
	cum := make([]int, days)
	run := base
	for i, n := range perDay {
		run += n
		cum[i] = run
	}
	c := &chart{W: 720, H: 220, Left: 6, Right: 710, Top: 30, Bottom: 190, Days: days, Capped: capped,
		Total: run, Gained: run - base, From: start.Format("2 Jan 2006"), To: today.Format("2 Jan 2006")}
	c.YLabX, c.XLabY = c.Left+2, c.Bottom+24
	maxV := niceCeil(run)
	plotW, plotH := c.Right-c.Left, c.Bottom-c.Top
	xAt := func(i int) float64 {
		if days == 1 {
			return c.Left
		}
		return c.Left + float64(i)*plotW/float64(days-1)
	}
	yAt := func(v int) float64 { return c.Bottom - float64(v)/float64(maxV)*plotH }
	var line strings.Builder
	for i, v := range cum {
		cmd := "L"
		if i == 0 {
			cmd = "M"
		}
		fmt.Fprintf(&line, "%s%.1f %.1f ", cmd, xAt(i), yAt(v))
	}
	c.Line = strings.TrimSpace(line.String())
	c.Area = fmt.Sprintf("%s L%.1f %.1f L%.1f %.1f Z", c.Line, xAt(days-1), c.Bottom, xAt(0), c.Bottom)
	c.DotX, c.DotY = xAt(days-1), yAt(cum[days-1])
	for _, v := range []int{0, maxV / 2, maxV} {
		t := tick{Pos: yAt(v), LabelY: yAt(v) - 6}
		if v > 0 {
			t.Label = thousands(int64(v))
		}
		c.YTicks = append(c.YTicks, t)
	}
	for i := 0; i < days; i += 30 {
		c.XTicks = append(c.XTicks, tick{Pos: xAt(i), Label: start.AddDate(0, 0, i).Format("2 Jan")})
	}
	if last := days - 1; last%30 >= 10 || last < 10 {
		c.XTicks = append(c.XTicks, tick{Pos: xAt(last), Label: today.Format("2 Jan"), Class: "last"})
	}
	c.XTicks[0].Class = "first"
	if len(c.XTicks) == 1 {
		c.XTicks[0].Class = "last"
	}
	c.Summary = fmt.Sprintf("%s confirmed readers, %s of them joined between %s and %s", thousands(int64(c.Total)), thousands(int64(c.Gained)), c.From, c.To)
	return c
}

// niceCeil rounds n up to a round, even number (so the half-way tick is
// a whole number): 4, 6, 8, 10, 20, 50, 100, 200, ...
func niceCeil(n int) int {
	if n <= 4 {
		return 4
	}
	if n <= 10 {
		return n + n%2
	}
	p := 1
	for p*10 < n {
		p *= 10
	}
	for _, m := range []int{2, 5, 10} {
		if m*p >= n {
			return m * p
		}
	}
	return 10 * p
}

// growthChart pages through the confirmed readers through the API.
func (u *UI) growthChart(r *http.Request) (*chart, error) {
	now := u.now()
	if c := u.chart.get(now); c != nil {
		return c, nil
	}
	var times []time.Time
	after := ""
	capped := false
	for {
		page, err := u.api.ListSubscribers(ctx(r), api.SubscriberQuery{Status: herald.StatusConfirmed, Limit: chartPageSize, After: after})
		if err != nil {
			return nil, err
		}
		for _, s := range page.Subscribers {
			t := s.CreatedAt
			if s.ConfirmedAt != nil {
				t = *s.ConfirmedAt
			}
			times = append(times, t)
		}
		if page.Next == "" || page.Next == after {
			break
		}
		if len(times) >= chartMaxRows {
			capped = true
			break
		}
		after = page.Next
	}
	c := buildChart(times, now, chartDays, capped)
	u.chart.put(now, c)
	return c, nil
}
