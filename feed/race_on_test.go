//go:build race

package feed

// raceEnabled: the race detector changes what a parse allocates and takes
// ten times as long, so the memory bound is checked without it (.ci/run
// runs that test on its own).
const raceEnabled = true
