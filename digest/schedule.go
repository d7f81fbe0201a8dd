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
// wall-clock minute: one digest a day, DST or not.
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
	return n
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

// Timetable is the next time of each frequency's schedule: the schedules
// the scheduler fires, read in the same time zone.
func (s *Service) Timetable(ctx context.Context) (*herald.Timetable, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	now := s.opt.Now().In(s.opt.Location)
	tt := &herald.Timetable{Timezone: s.opt.Location.String()}
	for _, f := range herald.Frequencies {
		sc := herald.Schedule{Frequency: f}
		for _, it := range s.schedules {
			if it.freq == f {
				next := it.sch.Next(now)
				sc.Cron, sc.Next = it.expr, &next
			}
		}
		tt.Schedules = append(tt.Schedules, sc)
	}
	return tt, nil
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
		sc.cron.Schedule(it.sch, cron.FuncJob(func() { sc.fire(ctx, it) }))
	}
	return sc, nil
}

func (sc *scheduler) start() { sc.cron.Start() }

func (sc *scheduler) stop() { <-sc.cron.Stop().Done() }

// fire runs a scheduled digest and waits for it, so SkipIfStillRunning
// means something; then it records the time, for the missed-run check.
func (sc *scheduler) fire(ctx context.Context, it schedule) {
	s := sc.s
	now := s.opt.Now()
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
	if err := sc.s.store.PutSetting(context.WithoutCancel(ctx), lastKey(f), []byte(t.UTC().Format(time.RFC3339Nano))); err != nil {
		sc.s.log.Error("cannot record schedule time", "frequency", f, "err", err)
	}
}

func (sc *scheduler) last(ctx context.Context, f herald.Frequency) (time.Time, error) {
	b, err := sc.s.store.Setting(ctx, lastKey(f))
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
