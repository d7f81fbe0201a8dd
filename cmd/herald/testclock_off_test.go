//go:build !heraldtest

package main

import (
	"bytes"
	"strings"
	"testing"
)

// A release build refuses the test clock rather than ignore it.
func TestTestClockOnlyInTestBuilds(t *testing.T) {
	if c, err := testClock(noenv); c != nil || err != nil {
		t.Fatalf("no HERALD_TEST_CLOCK: %v %v", c, err)
	}
	var stdout, stderr bytes.Buffer
	env := map[string]string{"HERALD_TEST_CLOCK": "/tmp/clock"}
	err := cmdServe(t.Context(), nil, &stdout, &stderr, func(k string) string { return env[k] })
	if err == nil || !strings.Contains(err.Error(), "test builds") {
		t.Fatalf("serve with HERALD_TEST_CLOCK: %v", err)
	}
}
