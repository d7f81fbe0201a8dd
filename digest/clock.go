package digest

import "time"

// Clock is the time the schedules keep. herald runs on the real one; the
// whole-process tests run it on one that goes faster (cmd/herald, built
// with the heraldtest tag), to see a week of mornings in a minute.
type Clock interface {
	Now() time.Time
	// Until is how long, on the real clock, until t comes on this one.
	Until(t time.Time) time.Duration
}

type realClock struct{}

func (realClock) Now() time.Time                  { return time.Now() }
func (realClock) Until(t time.Time) time.Duration { return time.Until(t) }

// SpeedClock is a clock that began at Start when the real one read Real,
// and goes Speed times as fast. Two processes given the same values keep
// the same time, so a test can stop herald and start it again on it.
type SpeedClock struct {
	Start, Real time.Time
	Speed       float64
}

// Now is the clock's time.
func (c SpeedClock) Now() time.Time {
	return c.Start.Add(time.Duration(float64(time.Since(c.Real)) * c.Speed))
}

// Until is how long, on the real clock, until the clock reads t.
func (c SpeedClock) Until(t time.Time) time.Duration {
	return time.Duration(float64(t.Sub(c.Now())) / c.Speed)
}
