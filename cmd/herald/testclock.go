//go:build heraldtest

package main

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/herald-dev/herald/digest"
)

// testClock reads HERALD_TEST_CLOCK, which only this test build of herald
// honours (the whole-process tests build it with -tags heraldtest):
//
//	HERALD_TEST_CLOCK="start=2006-10-28T00:00:00Z real=2026-12-01T10:00:00.5Z speed=3600"
//
// herald then keeps a clock that read start when the real one read real,
// and goes speed times as fast: a week of mornings in a few minutes, DST
// changes included. A restarted herald given the same value keeps the
// same time. Unset: the real clock.
func testClock(getenv func(string) string) (digest.Clock, error) {
	v := getenv("HERALD_TEST_CLOCK")
	if v == "" {
		return nil, nil
	}
	var c digest.SpeedClock
	for _, f := range strings.Fields(v) {
		k, val, _ := strings.Cut(f, "=")
		var err error
		switch k {
		case "start":
			c.Start, err = time.Parse(time.RFC3339Nano, val)
		case "real":
			c.Real, err = time.Parse(time.RFC3339Nano, val)
		case "speed":
			c.Speed, err = strconv.ParseFloat(val, 64)
		default:
			err = fmt.Errorf("unknown field %q", k)
		}
		if err != nil {
			return nil, fmt.Errorf("HERALD_TEST_CLOCK %q: %w (want start=RFC3339 real=RFC3339 speed=N)", v, err)
		}
	}
	if c.Start.IsZero() || c.Real.IsZero() || c.Speed <= 0 {
		return nil, fmt.Errorf("HERALD_TEST_CLOCK %q: want start=RFC3339 real=RFC3339 speed=N (N > 0)", v)
	}
	return c, nil
}
