package digest

import (
	"fmt"
	"slices"
	"testing"
	"time"
	_ "time/tzdata"
)

func testZones(t *testing.T, names ...string) []zone {
	t.Helper()
	var zs []zone
	for _, n := range names {
		loc, err := time.LoadLocation(n)
		if err != nil {
			t.Fatal(err)
		}
		zs = append(zs, zone{name: n, loc: loc, readers: 1})
	}
	return zs
}

// Looking every 15 minutes (as the scheduler at least does) across the
// clock changes of two zones, "0 7 * * *" comes due once a local day in
// each zone, at 07:00 there: none skipped, none twice.
func TestDueSlotsAcrossDST(t *testing.T) {
	sch, err := ParseSchedule("0 7 * * *")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name     string
		from, to time.Time
	}{
		// Europe and the US both fell back on 29 October 2006.
		{"London and New York fall back", time.Date(2006, 10, 26, 0, 0, 0, 0, time.UTC), time.Date(2006, 11, 2, 0, 0, 0, 0, time.UTC)},
		// London springs forward on 30 March 2025, Auckland falls back on 6 April.
		{"London springs forward, Auckland falls back", time.Date(2025, 3, 27, 0, 0, 0, 0, time.UTC), time.Date(2025, 4, 9, 0, 0, 0, 0, time.UTC)},
	} {
		t.Run(c.name, func(t *testing.T) {
			zs := testZones(t, "Europe/London", "America/New_York", "Asia/Kolkata", "Pacific/Auckland")
			served := map[string][]string{} // zone → local date and time of each slot
			last := c.from
			for now := c.from.Add(15 * time.Minute); !now.After(c.to); now = now.Add(15 * time.Minute) {
				for _, s := range dueSlots(sch, zs, last, now) {
					if s.at.After(now) || !s.at.After(last) {
						t.Fatalf("slot %v outside (%v, %v]", s.at, last, now)
					}
					for _, name := range s.zones {
						loc, _ := time.LoadLocation(name)
						served[name] = append(served[name], s.at.In(loc).Format("2006-01-02 15:04"))
					}
				}
				last = now
			}
			for _, z := range zs {
				var want []string
				for d := c.from.In(z.loc); ; d = d.AddDate(0, 0, 1) {
					seven := time.Date(d.Year(), d.Month(), d.Day(), 7, 0, 0, 0, z.loc)
					if seven.After(c.to) {
						break
					}
					if seven.After(c.from) {
						want = append(want, seven.Format("2006-01-02 15:04"))
					}
				}
				if !slices.Equal(served[z.name], want) {
					t.Errorf("%s: served at %v\nwant %v", z.name, served[z.name], want)
				}
			}
		})
	}
}

// Zones whose morning comes at the same instant share a slot; a zone
// whose mornings were missed (herald down for days) gets one slot, the
// latest.
func TestDueSlotsGroupsAndCatchesUpOnce(t *testing.T) {
	sch, _ := ParseSchedule("0 7 * * *")
	zs := testZones(t, "Europe/London", "Europe/Lisbon", "Asia/Kolkata", "Asia/Colombo")
	last := time.Date(2025, 1, 10, 12, 0, 0, 0, time.UTC)
	now := time.Date(2025, 1, 13, 9, 0, 0, 0, time.UTC) // three mornings later
	got := dueSlots(sch, zs, last, now)
	want := []slot{
		{time.Date(2025, 1, 13, 1, 30, 0, 0, time.UTC), []string{"Asia/Colombo", "Asia/Kolkata"}},
		{time.Date(2025, 1, 13, 7, 0, 0, 0, time.UTC), []string{"Europe/Lisbon", "Europe/London"}},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("due slots %v\nwant %v", got, want)
	}
	if got := dueSlots(sch, zs, now, now.Add(time.Hour)); len(got) != 0 {
		t.Errorf("nothing is due in the next hour, got %v", got)
	}
}
