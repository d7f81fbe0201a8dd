//go:build heraldtest

package main

import (
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/herald-dev/herald/digest"
)

// testClock reads HERALD_TEST_CLOCK, which only this test build of herald
// honours (the whole-process tests build it with -tags heraldtest): the
// path of a file holding an RFC 3339 time,
//
//	HERALD_TEST_CLOCK=/tmp/t/clock    (the file: 2006-10-28T05:00:00Z)
//
// herald's clock then reads that time, and stands still until the test
// writes another (atomically: a new file renamed over it). A week of
// mornings, DST changes included, passes as fast as herald sends them,
// and a restarted herald keeps the same time. Unset: the real clock.
func testClock(getenv func(string) string) (digest.Clock, error) {
	path := getenv("HERALD_TEST_CLOCK")
	if path == "" {
		return nil, nil
	}
	f := &fileClock{path: path}
	if _, err := f.read(); err != nil {
		return nil, fmt.Errorf("HERALD_TEST_CLOCK: %w (want the path of a file holding an RFC 3339 time)", err)
	}
	return digest.SteppedClock{Read: f.Now, Poll: 20 * time.Millisecond}, nil
}

// fileClock is the time in a file; while the file cannot be read (being
// replaced), the last time read.
type fileClock struct {
	path string
	mu   sync.Mutex
	last time.Time
}

func (f *fileClock) read() (time.Time, error) {
	b, err := os.ReadFile(f.path)
	if err != nil {
		return time.Time{}, err
	}
	return time.Parse(time.RFC3339Nano, strings.TrimSpace(string(b)))
}

func (f *fileClock) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	if t, err := f.read(); err == nil && !t.Before(f.last) {
		f.last = t
	}
	return f.last
}
