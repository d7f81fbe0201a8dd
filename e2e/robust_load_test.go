package e2e

import (
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/herald-dev/herald/internal/smtptest"
)

// TestRobustLoad: 200 concurrent clients on the public routes (GET /, POST
// /subscribe as form and as JSON with distinct addresses, GET /confirm
// with a bad token, GET /healthz) for 5s (HERALD_LONG=1: 60s) while a
// digest run goes to a few thousand readers. No 5xx, no transport error,
// no unexpected status; every address answered 303/202 exists as pending
// afterwards (read back through the CSV export); the run sends to every
// reader. Prints requests/s and latency percentiles per route.
func TestRobustLoad(t *testing.T) {
	const clients = 200
	dur := scale(5*time.Second, 60*time.Second)
	readers := scale(2000, 5000)
	sm := smtptest.Start(t)
	in := newInstance(t, robustConfig(sm.Port(), "warn",
		"[security]\nsubscribe_per_ip = \"0\"\nconfirmations_per_hour = 0",
		"[digest]\ndaily = \"\"\nweekly = \"\""))
	p := in.start()
	defer p.stop()
	in.importReaders(readers, "example.org", "daily")
	in.addPost("load-1", "Under load")
	// Slow the SMTP server so the run spans most of the load (under the
	// load a message takes two to three times the delay).
	sm.SetDelay(max(time.Millisecond, dur*3/10*2/time.Duration(readers)))
	runID := in.startRun("daily")

	type op struct {
		name, method, path, ct string
		want                   []int
	}
	ops := []op{
		{"GET /", "GET", "/", "", []int{200}},
		{"POST /subscribe form", "POST", "/subscribe", "application/x-www-form-urlencoded", []int{303}},
		{"POST /subscribe JSON", "POST", "/subscribe", "application/json", []int{202}},
		{"GET /confirm bad token", "GET", "/confirm?token=bad", "", []int{400}},
		{"GET /healthz", "GET", "/healthz", "", []int{200}},
	}
	tr := &http.Transport{MaxIdleConns: clients, MaxIdleConnsPerHost: clients, IdleConnTimeout: time.Minute}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: 30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

	type result struct {
		lat    map[string][]time.Duration
		status map[string]map[int]int
		acked  []string
		errs   []string
		bad    []string
		fivexx int
	}
	results := make([]*result, clients)
	var wg sync.WaitGroup
	begin := time.Now()
	deadline := begin.Add(dur)
	for c := range clients {
		res := &result{lat: map[string][]time.Duration{}, status: map[string]map[int]int{}}
		results[c] = res
		wg.Go(func() {
			for i := 0; time.Now().Before(deadline); i++ {
				o := ops[(c+i)%len(ops)]
				var body, addr string
				switch o.ct {
				case "application/x-www-form-urlencoded":
					addr = fmt.Sprintf("load-%03d-%05d@example.net", c, i)
					body = form(map[string]string{"email": addr, "name": "Load Tester", "frequency": "weekly"})
				case "application/json":
					addr = fmt.Sprintf("load-%03d-%05d@example.net", c, i)
					body = fmt.Sprintf(`{"email":%q,"frequency":"daily"}`, addr)
				}
				req, _ := http.NewRequest(o.method, in.base+o.path, strings.NewReader(body))
				if o.ct != "" {
					req.Header.Set("Content-Type", o.ct)
				}
				t0 := time.Now()
				r, err := hc.Do(req)
				if err != nil {
					res.errs = append(res.errs, fmt.Sprintf("%s: %v", o.name, err))
					continue
				}
				_, _ = io.Copy(io.Discard, r.Body)
				r.Body.Close()
				res.lat[o.name] = append(res.lat[o.name], time.Since(t0))
				if res.status[o.name] == nil {
					res.status[o.name] = map[int]int{}
				}
				res.status[o.name][r.StatusCode]++
				if r.StatusCode >= 500 {
					res.fivexx++
				}
				okStatus := false
				for _, w := range o.want {
					okStatus = okStatus || r.StatusCode == w
				}
				if !okStatus {
					res.bad = append(res.bad, fmt.Sprintf("%s: %d", o.name, r.StatusCode))
				} else if addr != "" {
					res.acked = append(res.acked, addr)
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(begin)

	lat := map[string][]time.Duration{}
	status := map[string]map[int]int{}
	var all []time.Duration
	var acked, errs, bad []string
	fivexx := 0
	for _, r := range results {
		for k, v := range r.lat {
			lat[k] = append(lat[k], v...)
			all = append(all, v...)
		}
		for k, m := range r.status {
			if status[k] == nil {
				status[k] = map[int]int{}
			}
			for code, n := range m {
				status[k][code] += n
			}
		}
		acked = append(acked, r.acked...)
		errs = append(errs, r.errs...)
		bad = append(bad, r.bad...)
		fivexx += r.fivexx
	}
	sortDurations(all)
	t.Logf("FIGURES load: %d clients for %v: %d requests, %.0f req/s, latency p50 %v p99 %v max %v; 5xx %d, transport errors %d, unexpected statuses %d; sign-ups acknowledged %d",
		clients, elapsed.Round(time.Millisecond), len(all), float64(len(all))/elapsed.Seconds(),
		percentile(all, 0.5).Round(time.Microsecond), percentile(all, 0.99).Round(time.Microsecond), all[len(all)-1].Round(time.Microsecond),
		fivexx, len(errs), len(bad), len(acked))
	names := make([]string, 0, len(lat))
	for k := range lat {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		d := lat[k]
		sortDurations(d)
		t.Logf("  %-24s %6d requests, p50 %9v p99 %9v, statuses %v", k, len(d),
			percentile(d, 0.5).Round(time.Microsecond), percentile(d, 0.99).Round(time.Microsecond), status[k])
	}
	if fivexx > 0 || len(errs) > 0 || len(bad) > 0 {
		t.Fatalf("5xx %d; transport errors %d (first: %v); unexpected statuses %d (first: %v)", fivexx, len(errs), first(errs), len(bad), first(bad))
	}

	run := in.waitRun(runID, 5*time.Minute)
	if run["state"] != "done" || run["sent"] != float64(readers) || run["failed"] != float64(0) {
		t.Fatalf("the run alongside the load: %v", run)
	}
	exported := in.exportStatuses()
	lost := 0
	for _, a := range acked {
		if exported[a] != "pending" {
			lost++
			if lost < 5 {
				t.Errorf("acknowledged sign-up %s: status %q after the load", a, exported[a])
			}
		}
	}
	t.Logf("FIGURES load: run alongside: %v readers sent %v in %v; acknowledged sign-ups %d, found pending %d, lost %d; confirmation and digest emails at the SMTP server so far %d",
		readers, run["sent"], runDuration(run), len(acked), len(acked)-lost, lost, sm.Count())
	if lost > 0 {
		t.Fatalf("%d acknowledged sign-ups lost", lost)
	}
}

func first(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[0]
}

// runDuration is finished_at - started_at of a run read from the API.
func runDuration(run map[string]any) time.Duration {
	s, _ := run["started_at"].(string)
	f, _ := run["finished_at"].(string)
	a, err1 := time.Parse(time.RFC3339Nano, s)
	b, err2 := time.Parse(time.RFC3339Nano, f)
	if err1 != nil || err2 != nil {
		return 0
	}
	return b.Sub(a).Round(time.Millisecond)
}
