package digest

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/herald-dev/herald"
)

// Local time (digest.local_time): a schedule like "0 7 * * *" means 07:00
// in each reader's own time zone. The morning comes to the zones at
// different times; each time it comes to some zones with readers is a
// slot, and each slot is a run of its own: durable, resumable, with its
// zones fixed when it is created (Run.Slot, Run.Zones), owing mail to
// the readers in those zones.
//
// Every few minutes, and whenever the next slot is due, the scheduler
// looks at which zones have readers (the counts the store keeps) and
// starts a run for each slot that came due since it last looked; at
// start, the slots missed while herald was down run once each. A reader
// is served a local time once (Subscriber.LastSlot): one who changes zone
// mid-day gets that day's digest once, and a clock going back never
// serves a morning twice.

// recheck bounds the wait between two looks at the readers' zones, so a
// zone that gets its first reader is seen in time.
const recheck = 15 * time.Minute

// maxCatchUp is how far back the slots missed while herald was down are
// looked for: far enough for a weekly schedule.
const maxCatchUp = 8 * 24 * time.Hour

// slots is one schedule kept in every reader's time zone.
type slots struct {
	s    *Service
	item schedule
}

func localLastKey(f herald.Frequency) string { return "schedule:" + string(f) + ":local:last" }

// zone is a time zone with readers of a frequency.
type zone struct {
	name    string
	loc     *time.Location
	readers int
}

// zones are the time zones with confirmed readers of f; the site's zone
// counts the readers who chose none.
func (s *Service) zonesOf(ctx context.Context, f herald.Frequency) ([]zone, error) {
	counts, err := s.store.CountZones(ctx, f)
	if err != nil {
		return nil, fmt.Errorf("digest: zones: %w", err)
	}
	all, err := s.store.CountSubscribers(ctx)
	if err != nil {
		return nil, fmt.Errorf("digest: zones: %w", err)
	}
	site := all[herald.StatusConfirmed][f]
	for _, n := range counts {
		site -= n
	}
	if site > 0 {
		counts[s.opt.Location.String()] += site
	}
	out := make([]zone, 0, len(counts))
	for name, n := range counts {
		if loc := s.location(name); loc != nil && n > 0 {
			out = append(out, zone{name, loc, n})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out, nil
}

// next is the first time after t the schedule comes due in a zone with
// readers, or recheck after t, whichever is sooner.
func (sl *slots) next(t time.Time) time.Time {
	n := t.Add(recheck)
	zs, err := sl.s.zonesOf(context.Background(), sl.item.freq)
	if err != nil {
		sl.s.log.Error("local-time schedule: cannot read the readers' zones", "frequency", sl.item.freq, "err", err)
		return n
	}
	for _, z := range zs {
		if m := sl.item.sch.Next(t.In(z.loc)); !m.IsZero() && m.Before(n) {
			n = m
		}
	}
	return n
}

// tick is the cron job: start the slots that came due.
func (sl *slots) tick(ctx context.Context, trigger herald.Trigger) {
	if err := sl.due(ctx, trigger); err != nil && ctx.Err() == nil {
		sl.s.log.Error("local-time schedule", "frequency", sl.item.freq, "err", err)
	}
}

// slot is one time the schedule came due, and the zones it came due in.
type slot struct {
	at    time.Time
	zones []string
}

// dueSlots returns the slots of sch that came due in (last, now] in the
// zones, oldest first: for each zone only the latest time it came due
// (a zone whose mornings were missed gets one digest, not one for each).
func dueSlots(sch interface{ Next(time.Time) time.Time }, zones []zone, last, now time.Time) []slot {
	byAt := map[time.Time][]string{}
	for _, z := range zones {
		t := sch.Next(last.In(z.loc))
		if t.IsZero() || t.After(now) {
			continue
		}
		for {
			n := sch.Next(t)
			if n.IsZero() || n.After(now) {
				break
			}
			t = n
		}
		at := t.UTC()
		byAt[at] = append(byAt[at], z.name)
	}
	out := make([]slot, 0, len(byAt))
	for at, zs := range byAt {
		slices.Sort(zs)
		out = append(out, slot{at, zs})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].at.Before(out[j].at) })
	return out
}

// due starts a run for each slot that came due since the last look, and
// records the look. The runs are created before the look is recorded: a
// crash between the two creates a slot's run again at the next start,
// and the readers the first one served are not served again.
func (sl *slots) due(ctx context.Context, trigger herald.Trigger) error {
	s := sl.s
	now := s.opt.Now()
	key := localLastKey(sl.item.freq)
	last, err := s.getTime(ctx, key)
	if err != nil {
		return fmt.Errorf("digest: schedule %s: %w", sl.item.freq, err)
	}
	if last.IsZero() {
		// The first start: nothing was missed yet.
		return s.putTime(ctx, key, now)
	}
	if !now.After(last) {
		return nil
	}
	last = later(last, now.Add(-maxCatchUp))
	zs, err := s.zonesOf(ctx, sl.item.freq)
	if err != nil {
		return err
	}
	for _, d := range dueSlots(sl.item.sch, zs, last, now) {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		run, err := s.createSlotRun(ctx, sl.item.freq, trigger, d)
		if err != nil {
			return err
		}
		if trigger == herald.TriggerMissed {
			s.log.Info("a local-time slot came due while herald was down; running it now", "run", run.ID, "frequency", sl.item.freq, "was_due", d.at, "zones", d.zones)
		}
		s.enqueue(ctx, run)
	}
	return s.putTime(ctx, key, now)
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// createSlotRun stores a queued local-time run for one slot.
func (s *Service) createSlotRun(ctx context.Context, f herald.Frequency, trigger herald.Trigger, d slot) (*herald.Run, error) {
	cutoff, err := s.store.LastPostID(ctx)
	if err != nil {
		return nil, fmt.Errorf("digest: %w", err)
	}
	at := d.at
	run := &herald.Run{
		Frequency: f, Trigger: trigger, State: herald.RunQueued, Cutoff: cutoff, CreatedAt: s.opt.Now().UTC(),
		Slot: &at, Zones: slices.Clone(d.zones),
	}
	if err := s.store.CreateRun(ctx, run); err != nil {
		return nil, fmt.Errorf("digest: create run: %w", err)
	}
	s.log.Info("run created", "run", run.ID, "frequency", f, "trigger", trigger, "slot", at, "zones", d.zones, "cutoff", cutoff)
	return run, nil
}

// maxSlots bounds the slots Timetable lists per frequency.
const maxSlots = 50

// Timetable is the next time of each frequency's schedule: the schedules
// the scheduler fires, read in the same zones. With local time, each
// schedule lists its slots: one per time it comes due in zones with
// readers, soonest first.
func (s *Service) Timetable(ctx context.Context) (*herald.Timetable, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	now := s.opt.Now()
	tt := &herald.Timetable{Timezone: s.opt.Location.String(), LocalTime: s.opt.LocalTime}
	for _, f := range herald.Frequencies {
		sc := herald.Schedule{Frequency: f}
		for _, it := range s.schedules {
			if it.freq != f {
				continue
			}
			sc.Cron = it.expr
			if err := s.timetable(ctx, it, now, &sc); err != nil {
				return nil, err
			}
		}
		tt.Schedules = append(tt.Schedules, sc)
	}
	return tt, nil
}

// timetable fills in sc's next time, and with local time its slots.
func (s *Service) timetable(ctx context.Context, it schedule, now time.Time, sc *herald.Schedule) error {
	site := func() {
		if next := it.sch.Next(now.In(s.opt.Location)); !next.IsZero() {
			sc.Next = &next
		}
	}
	if !s.opt.LocalTime {
		site()
		return nil
	}
	zs, err := s.zonesOf(ctx, it.freq)
	if err != nil {
		return err
	}
	byAt := map[time.Time]*herald.Slot{}
	for _, z := range zs {
		at := it.sch.Next(now.In(z.loc))
		if at.IsZero() {
			continue
		}
		at = at.UTC()
		sl := byAt[at]
		if sl == nil {
			sl = &herald.Slot{At: at}
			byAt[at] = sl
		}
		sl.Zones = append(sl.Zones, z.name)
		sl.Readers += z.readers
	}
	for _, sl := range byAt {
		sc.Slots = append(sc.Slots, *sl)
	}
	sort.Slice(sc.Slots, func(i, j int) bool { return sc.Slots[i].At.Before(sc.Slots[j].At) })
	if len(sc.Slots) > maxSlots {
		sc.Slots = sc.Slots[:maxSlots]
	}
	if len(sc.Slots) > 0 {
		next := sc.Slots[0].At.In(s.opt.Location)
		sc.Next = &next
	} else {
		site() // no reader yet: the site's zone's time
	}
	return nil
}
