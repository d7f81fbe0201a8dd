//go:build !heraldtest

package main

import (
	"errors"

	"github.com/herald-dev/herald/digest"
)

// testClock: only a test build (-tags heraldtest, see testclock.go) keeps
// another clock than the real one. A release build that is handed
// HERALD_TEST_CLOCK refuses to start rather than ignore it.
func testClock(getenv func(string) string) (digest.Clock, error) {
	if getenv("HERALD_TEST_CLOCK") != "" {
		return nil, errors.New("HERALD_TEST_CLOCK is honoured only by test builds of herald (go build -tags heraldtest); unset it")
	}
	return nil, nil
}
