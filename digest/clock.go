package digest

import "time"

// Clock is the time the schedules keep. herald runs on the real one; the
// schedule tests, and the whole-process ones (cmd/herald built with the
// heraldtest tag), run it on one they move by hand, to see a week of
// mornings, DST changes included, in seconds.
type Clock interface {
	Now() time.Time
	// Until is how long, on the real clock, until t comes on this one.
	Until(t time.Time) time.Duration
}

type realClock struct{}

func (realClock) Now() time.Time                  { return time.Now() }
func (realClock) Until(t time.Time) time.Duration { return time.Until(t) }

// SteppedClock is a clock that stands still until moved: Read says what
// time it is (a test sets it, in memory or in a file). It may move at any
// moment, so a schedule waiting for a time still to come looks again every
// Poll of real time; the schedules run only what is due by then.
type SteppedClock struct {
	Read func() time.Time
	Poll time.Duration
}

// Now is the clock's time.
func (c SteppedClock) Now() time.Time { return c.Read() }

// Until is 0 for a time that has come, else Poll.
func (c SteppedClock) Until(t time.Time) time.Duration {
	if !t.After(c.Read()) {
		return 0
	}
	return c.Poll
}
