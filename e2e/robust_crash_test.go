package e2e

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/herald-dev/herald/internal/smtptest"
	"github.com/herald-dev/herald/internal/testenv"
)

// crashDuringRun is the body of TestCrashDuringRun: a run to readers
// confirmed readers through an SMTP server slowed to 2ms a message, and
// herald killed with SIGKILL at kills random points of it (counted in
// emails the SMTP server accepted), started again each time.
//
// "In flight" at a kill is measured, not guessed: right after the kill the
// test opens the dead process's database file and reads the run's durable
// sent counter; the readers the SMTP server had accepted an email for,
// minus that counter, are the emails that went out but whose outcome was
// not yet recorded. Those, and only those, may go again. It is bounded by
// smtp.connections (sends in progress) plus what the recorder had
// gathered during one group-commit fsync.
//
// Checked: the run ends done with sent = readers and failed = 0; every
// reader got exactly one distinct Message-ID, distinct readers distinct
// ids; resends (extra copies, same id) ≤ the sum of in flight over the
// kills; and each kill's in flight stays under the static bound.
func crashDuringRun(t *testing.T, readers, kills int) {
	const connections = 2 // smtpConfig
	// Sanity bound on one kill's in flight: the sends in progress plus
	// the outcomes one group commit gathers while the previous one
	// fsyncs. That window is an fsync long, so what it holds depends on
	// the disk and the load (measured: 6-16 on an idle 2-core machine,
	// up to 43 with -race beside a CPU-bound neighbour); the recorder's
	// queue could hold thousands. 256 leaves room for slow disks while a
	// checkpoint that moved per page, or per run, would show thousands.
	const perKillBound = 256

	sm := smtptest.Start(t)
	in := newInstance(t, robustConfig(sm.Port(), "info", "[digest]\ndaily = \"\"\nweekly = \"\""))
	p := in.start()
	start := time.Now()
	in.importReaders(readers, "example.org", "daily")
	t.Logf("imported %d readers in %v", readers, time.Since(start).Round(time.Millisecond))
	in.addPost("crash-1", "The crash test post")
	sm.SetDelay(2 * time.Millisecond)
	runStart := time.Now()
	runID := in.startRun("daily")

	// Kill points: kills distinct random counts spread over the run.
	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, 7))
	lo, hi := 20, readers-20
	points := map[int]bool{}
	for len(points) < kills {
		points[lo+rng.IntN(hi-lo)] = true
	}
	var targets []int
	for k := range points {
		targets = append(targets, k)
	}
	slices.Sort(targets)
	t.Logf("seed %d; kill points (emails accepted): %v", seed, targets)

	sumInFlight, maxInFlight := 0, 0
	for k, target := range targets {
		testenv.Eventually(t, 5*time.Minute, fmt.Sprintf("%d emails", target), func() bool { return sm.Count() >= target })
		if sm.Count() > target+connections {
			// The previous restart already went past this point: kill at
			// a random moment of the resume instead.
			time.Sleep(time.Duration(rng.IntN(200)) * time.Millisecond)
		}
		p.kill()
		settled(t, sm) // messages whose DATA was complete are answered
		msgs := sm.Messages()
		delivered := map[string]bool{}
		for _, m := range msgs {
			delivered[m.To[0]] = true
		}
		run := in.storedRun(runID)
		inFlight := len(delivered) - run.Sent
		if inFlight < 0 {
			t.Fatalf("kill %d: the database says %d sent, the SMTP server has %d readers", k+1, run.Sent, len(delivered))
		}
		sumInFlight += inFlight
		maxInFlight = max(maxInFlight, inFlight)
		t.Logf("kill %2d: SIGKILL at %5d emails accepted (%5d readers); durable sent %5d, state %s; in flight %d",
			k+1, len(msgs), len(delivered), run.Sent, run.State, inFlight)
		if inFlight > perKillBound {
			t.Errorf("kill %d: %d emails in flight, more than the sends in progress and one group commit can hold (%d)", k+1, inFlight, perKillBound)
		}
		p = in.start()
	}
	run := in.waitRun(runID, time.Duration(readers/20+120)*time.Second)
	elapsed := time.Since(runStart)
	p.stop()
	if run["state"] != "done" || run["sent"] != float64(readers) || run["failed"] != float64(0) {
		t.Fatalf("run after %d kills: %v", kills, run)
	}
	settled(t, sm)
	msgs := sm.Messages()
	got := digestIDs(t, msgs)
	if len(got) != readers {
		t.Fatalf("%d readers got mail, want %d", len(got), readers)
	}
	resends := 0
	owner := map[string]string{}
	for to, ids := range got {
		if len(ids) != 1 {
			t.Fatalf("%s got %d different digests for one run: %v", to, len(ids), ids)
		}
		for id, n := range ids {
			resends += n - 1
			if o, dup := owner[id]; dup {
				t.Fatalf("readers %s and %s got the same Message-ID %s", o, to, id)
			}
			owner[id] = to
		}
	}
	t.Logf("FIGURES crash: readers %d, kills %d, emails %d, resends %d, in flight at kills: sum %d, max %d (sanity bound per kill %d; smtp.connections %d); run took %v with the restarts",
		readers, kills, len(msgs), resends, sumInFlight, maxInFlight, perKillBound, connections, elapsed.Round(time.Millisecond))
	if resends > sumInFlight {
		t.Fatalf("%d resends after %d kills, more than were in flight (%d)", resends, kills, sumInFlight)
	}
	if len(msgs) != readers+resends {
		t.Fatalf("%d emails for %d readers and %d resends", len(msgs), readers, resends)
	}
}
