package digest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/herald-dev/herald"
)

// CronParser parses the schedules: five fields or a descriptor (@daily).
var cronParser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// ParseSchedule reads a cron expression the way the scheduler does: five
// fields or a descriptor (@daily), in the one time zone of all schedules
// (Options.Location), so a CRON_TZ= or TZ= prefix is refused. When clocks
// go back, a time like 01:30 happens twice; robfig/cron fires at both, so
// the schedule skips a firing that repeats the last one's local date and
// wall-clock minute. When clocks go forward, 01:30 does not happen at
// all, and robfig/cron skips that day; the schedule fires when the jump
// lands instead. One digest a day, DST or not.
func ParseSchedule(expr string) (cron.Schedule, error) {
	if strings.Contains(expr, "TZ=") {
		return nil, errors.New("the time zone is set once for every schedule, not in the expression")
	}
	sch, err := cronParser.Parse(expr)
	if err != nil {
		return nil, err
	}
	return onceSchedule{sch}, nil
}

type onceSchedule struct{ inner cron.Schedule }

func (o onceSchedule) Next(t time.Time) time.Time {
	n := o.inner.Next(t)
	const wall = "2006-01-02 15:04"
	if !n.IsZero() && n.In(t.Location()).Format(wall) == t.Format(wall) {
		n = o.inner.Next(n)
	}
	if g := o.inGap(t); !g.IsZero() && (n.IsZero() || g.Before(n)) {
		return g
	}
	return n
}

// inGap is the next firing after t that robfig/cron would skip because
// the clocks jump over it, moved to where the jump lands (time.Date's
// reading of a local time that does not exist); zero if there is none.
// It is the next firing as if t's zone kept t's offset, when that local
// time does not exist in the zone.
func (o onceSchedule) inGap(t time.Time) time.Time {
	_, off := t.Zone()
	naive := o.inner.Next(t.In(time.FixedZone("", off)))
	if naive.IsZero() {
		return naive
	}
	d := time.Date(naive.Year(), naive.Month(), naive.Day(), naive.Hour(), naive.Minute(), 0, 0, t.Location())
	if d.Day() == naive.Day() && d.Hour() == naive.Hour() && d.Minute() == naive.Minute() || !d.After(t) {
		return time.Time{} // the time exists: robfig/cron finds it
	}
	return d
}

type schedule struct {
	freq herald.Frequency
	expr string
	sch  cron.Schedule
}

type scheduler struct {
	s     *Service
	cron  *cron.Cron
	items []schedule
}

func lastKey(f herald.Frequency) string { return "schedule:" + string(f) + ":last" }

// parseSchedules reads the daily and weekly cron expressions ("" = no
// schedule), once, at New: the scheduler fires them and Timetable reads
// their next times from the same values.
func parseSchedules(opt Options) ([]schedule, error) {
	var out []schedule
	for _, it := range []struct {
		f    herald.Frequency
		expr string
	}{{herald.Daily, opt.Daily}, {herald.Weekly, opt.Weekly}} {
		if it.expr == "" {
			continue
		}
		sch, err := ParseSchedule(it.expr)
		if err != nil {
			return nil, fmt.Errorf("digest: schedule %s %q: %w", it.f, it.expr, err)
		}
		out = append(out, schedule{freq: it.f, expr: it.expr, sch: sch})
	}
	return out, nil
}

// newScheduler makes the cron schedules; their runs start under ctx (Run's).
func newScheduler(ctx context.Context, s *Service) (*scheduler, error) {
	sc := &scheduler{s: s, items: s.schedules}
	// robfig/cron recovers no panics and allows overlap unless told.
	logger := cronLogger{s}
	sc.cron = cron.New(
		cron.WithLocation(s.opt.Location),
		cron.WithParser(cronParser),
		cron.WithChain(cron.Recover(logger), cron.SkipIfStillRunning(logger)),
		cron.WithLogger(logger),
	)
	for _, it := range sc.items {
		if s.opt.LocalTime {
			sl := &slots{s: s, item: it}
			sc.cron.Schedule(clockSchedule{s.opt.Clock, sl.next}, cron.FuncJob(func() { sl.tick(ctx, herald.TriggerSchedule) }))
			continue
		}
		next := func(t time.Time) time.Time { return it.sch.Next(t.In(s.opt.Location)) }
		sc.cron.Schedule(clockSchedule{s.opt.Clock, next}, cron.FuncJob(func() { sc.fire(ctx, it) }))
	}
	return sc, nil
}

// clockSchedule is a schedule kept on a Clock: robfig/cron waits on the
// real clock, so the time of the next firing is turned into the real
// time it comes. A firing may come a hair early (the two clocks are
// read at different moments); the jobs run only what is due by then,
// and the schedule is asked again.
type clockSchedule struct {
	clock Clock
	next  func(after time.Time) time.Time
}

func (c clockSchedule) Next(real time.Time) time.Time {
	n := c.next(c.clock.Now())
	if n.IsZero() {
		return n
	}
	return real.Add(c.clock.Until(n))
}

func (sc *scheduler) start() { sc.cron.Start() }

func (sc *scheduler) stop() { <-sc.cron.Stop().Done() }

// fire runs a scheduled digest and waits for it, so SkipIfStillRunning
// means something; then it records the time, for the missed-run check.
// A firing with nothing due (a hair early) does nothing.
func (sc *scheduler) fire(ctx context.Context, it schedule) {
	s := sc.s
	now := s.opt.Now()
	if last, err := sc.last(ctx, it.freq); err == nil && !last.IsZero() && Missed(it.sch, last, now, s.opt.Location).IsZero() {
		return
	}
	run, err := s.StartRun(ctx, it.freq, herald.TriggerSchedule, false)
	if herald.ErrorCode(err) == herald.ECONFLICT {
		s.log.Warn("scheduled run skipped: one is still in progress", "frequency", it.freq)
		sc.setLast(ctx, it.freq, now)
		return
	} else if err != nil {
		s.log.Error("scheduled run failed to start", "frequency", it.freq, "err", err)
		return
	}
	sc.setLast(ctx, it.freq, now)
	s.wait(ctx, run.ID)
}

func (sc *scheduler) setLast(ctx context.Context, f herald.Frequency, t time.Time) {
	if err := sc.s.putTime(ctx, lastKey(f), t); err != nil {
		sc.s.log.Error("cannot record schedule time", "frequency", f, "err", err)
	}
}

func (sc *scheduler) last(ctx context.Context, f herald.Frequency) (time.Time, error) {
	return sc.s.getTime(ctx, lastKey(f))
}

// putTime and getTime keep a time in the settings.
func (s *Service) putTime(ctx context.Context, key string, t time.Time) error {
	return s.store.PutSetting(context.WithoutCancel(ctx), key, []byte(t.UTC().Format(time.RFC3339Nano)))
}

func (s *Service) getTime(ctx context.Context, key string) (time.Time, error) {
	b, err := s.store.Setting(ctx, key)
	if err != nil || len(b) == 0 {
		return time.Time{}, err
	}
	return time.Parse(time.RFC3339Nano, string(b))
}

// catchUp runs once each schedule that came due while herald was down.
// The first start only records the time: nothing was missed yet.
func (sc *scheduler) catchUp(ctx context.Context) error {
	s := sc.s
	now := s.opt.Now()
	for _, it := range sc.items {
		if s.opt.LocalTime {
			sl := &slots{s: s, item: it}
			if err := sl.due(ctx, herald.TriggerMissed); err != nil {
				return err
			}
			continue
		}
		last, err := sc.last(ctx, it.freq)
		if err != nil {
			return fmt.Errorf("digest: schedule %s: %w", it.freq, err)
		}
		if last.IsZero() {
			sc.setLast(ctx, it.freq, now)
			continue
		}
		due := Missed(it.sch, last, now, s.opt.Location)
		if due.IsZero() {
			continue
		}
		s.log.Info("a scheduled run was missed while herald was down; running it now", "frequency", it.freq, "was_due", due)
		if _, err := s.StartRun(ctx, it.freq, herald.TriggerMissed, false); err != nil && herald.ErrorCode(err) != herald.ECONFLICT {
			return err
		}
		sc.setLast(ctx, it.freq, now)
	}
	return nil
}

// Missed returns the first time sch came due after last and not after
// now (zero if none), read in loc.
func Missed(sch cron.Schedule, last, now time.Time, loc *time.Location) time.Time {
	next := sch.Next(last.In(loc))
	if next.IsZero() || next.After(now) {
		return time.Time{}
	}
	return next
}

type cronLogger struct{ s *Service }

func (l cronLogger) Info(msg string, kv ...any) { l.s.log.Debug("cron: "+msg, kv...) }
func (l cronLogger) Error(err error, msg string, kv ...any) {
	l.s.log.Error("cron: "+msg, append(kv, "err", err)...)
}
