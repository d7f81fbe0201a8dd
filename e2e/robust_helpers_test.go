package e2e

// Helpers for the robustness suite (robust_*_test.go).
//
// Every robustness test has a short version, run by plain `go test ./...`,
// and a long one, run when HERALD_LONG=1 (CI sets it):
//
//	HERALD_LONG=1 go test -race -count=1 -timeout 20m -run 'Robust|Crash' -v ./e2e/

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/herald-dev/herald"
	"github.com/herald-dev/herald/internal/smtptest"
	"github.com/herald-dev/herald/store"
)

// long reports whether the long versions of the robustness tests run.
func long() bool { return os.Getenv("HERALD_LONG") != "" && os.Getenv("HERALD_LONG") != "0" }

// scale picks the short or the long figure.
func scale[T any](short, lng T) T {
	if long() {
		return lng
	}
	return short
}

// robustConfig is smtpConfig with keys added: each extra is a TOML table
// header line followed by key lines ("[mail]\nbounce_limit = 2"). Keys of
// a table smtpConfig already has go into that table. logLevel replaces
// the debug level ("" keeps it).
func robustConfig(smtpPort int, logLevel string, extra ...string) string {
	cfg := smtpConfig(smtpPort, "")
	if logLevel != "" {
		cfg = strings.Replace(cfg, `level = "debug"`, fmt.Sprintf("level = %q", logLevel), 1)
	}
	for _, e := range extra {
		header, body, _ := strings.Cut(strings.TrimSpace(e), "\n")
		header = strings.TrimSpace(header)
		if strings.Contains(cfg, "\n"+header+"\n") {
			cfg = strings.Replace(cfg, "\n"+header+"\n", "\n"+header+"\n"+body+"\n", 1)
		} else {
			cfg += "\n" + header + "\n" + body + "\n"
		}
	}
	return cfg
}

// importReaders adds n confirmed readers r00000@<domain>... through the
// CSV import and returns their addresses.
func (in *instance) importReaders(n int, domain, freq string) []string {
	in.t.Helper()
	var csv strings.Builder
	csv.WriteString("email,name,frequency,status\n")
	emails := make([]string, n)
	for i := range n {
		emails[i] = fmt.Sprintf("r%05d@%s", i, domain)
		fmt.Fprintf(&csv, "%s,Reader %d,%s,confirmed\n", emails[i], i, freq)
	}
	r := in.do("POST", "/api/v1/subscribers.csv?confirmed=true", "text/csv", csv.String(), "Authorization", "Bearer "+adminToken)
	if r.Status != 200 {
		in.t.Fatalf("import %d readers: %d %s", n, r.Status, r.Body)
	}
	var rep struct{ Added int }
	_ = json.Unmarshal([]byte(r.Body), &rep)
	if rep.Added != n {
		in.t.Fatalf("import: added %d of %d: %s", rep.Added, n, r.Body)
	}
	return emails
}

// addPost adds a post by hand.
func (in *instance) addPost(guid, title string) {
	in.t.Helper()
	body := fmt.Sprintf(`{"guid":%q,"url":"https://blog.example.org/%s/","title":%q}`, guid, guid, title)
	if r := in.api("POST", "/api/v1/posts", body); r.Status != 201 {
		in.t.Fatalf("add post %s: %d %s", guid, r.Status, r.Body)
	}
}

// startRun starts a digest run and returns its id.
func (in *instance) startRun(freq string) uint64 {
	in.t.Helper()
	r := in.api("POST", "/api/v1/runs", `{"frequency":"`+freq+`"}`)
	if r.Status != 202 {
		in.t.Fatalf("start %s run: %d %s", freq, r.Status, r.Body)
	}
	var started struct{ ID uint64 }
	if err := json.Unmarshal([]byte(r.Body), &started); err != nil || started.ID == 0 {
		in.t.Fatalf("start run: %s", r.Body)
	}
	return started.ID
}

// subscriber reads one subscriber through the admin API, as a map so
// fields added later (a bounce counter) show up in the logs.
func (in *instance) subscriber(email string) map[string]any {
	in.t.Helper()
	r := in.api("GET", "/api/v1/subscribers/"+url.PathEscape(email), "")
	if r.Status != 200 {
		in.t.Fatalf("GET subscriber %s: %d %s", email, r.Status, r.Body)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(r.Body), &m); err != nil {
		in.t.Fatalf("subscriber %s: %v", email, err)
	}
	return m
}

// exportStatuses reads every subscriber's status through the CSV export.
func (in *instance) exportStatuses() map[string]string {
	in.t.Helper()
	r := in.do("GET", "/api/v1/subscribers.csv", "", "", "Authorization", "Bearer "+adminToken)
	if r.Status != 200 {
		in.t.Fatalf("export: %d %s", r.Status, r.Body)
	}
	lines := strings.Split(strings.TrimSpace(r.Body), "\n")
	if len(lines) == 0 {
		in.t.Fatal("export: empty")
	}
	cols := strings.Split(strings.TrimSpace(lines[0]), ",")
	ei, si := -1, -1
	for i, c := range cols {
		switch c {
		case "email":
			ei = i
		case "status":
			si = i
		}
	}
	if ei < 0 || si < 0 {
		in.t.Fatalf("export header %q", lines[0])
	}
	out := make(map[string]string, len(lines))
	for _, l := range lines[1:] {
		f := strings.Split(strings.TrimSpace(l), ",")
		if len(f) > max(ei, si) {
			out[f[ei]] = f[si]
		}
	}
	return out
}

// digestIDs groups the messages by recipient: recipient → Message-ID →
// how many times it arrived. Only the header block is read.
func digestIDs(t *testing.T, msgs []smtptest.Message) map[string]map[string]int {
	t.Helper()
	got := map[string]map[string]int{}
	for _, m := range msgs {
		id := headerValue(m.Data, "Message-Id")
		if id == "" {
			t.Fatalf("a message to %v has no Message-ID", m.To)
		}
		to := m.To[0]
		if got[to] == nil {
			got[to] = map[string]int{}
		}
		got[to][id]++
	}
	return got
}

// headerValue finds a header in raw mail without a full parse.
func headerValue(raw []byte, name string) string {
	head, _, _ := strings.Cut(string(raw), "\r\n\r\n")
	for _, l := range strings.Split(head, "\r\n") {
		k, v, ok := strings.Cut(l, ":")
		if ok && strings.EqualFold(k, name) {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// storedRun reads a run straight from the database file of a herald that
// is not running (killed): what was durable at that moment.
func (in *instance) storedRun(id uint64) *herald.Run {
	in.t.Helper()
	ctx := context.Background()
	db, err := store.Open(ctx, filepath.Join(in.dir, "herald.db"), store.Options{LockTimeout: 5 * time.Second})
	if err != nil {
		in.t.Fatalf("open the database of the killed herald: %v", err)
	}
	defer db.Close()
	r, err := db.Run(ctx, id)
	if err != nil {
		in.t.Fatalf("run %d in the database: %v", id, err)
	}
	return r
}

// storedBounces reads the consecutive-bounce counters straight from the
// database of a herald that is not running.
func (in *instance) storedBounces(emails []string) map[string]int {
	in.t.Helper()
	ctx := context.Background()
	db, err := store.Open(ctx, filepath.Join(in.dir, "herald.db"), store.Options{LockTimeout: 5 * time.Second})
	if err != nil {
		in.t.Fatalf("open the database: %v", err)
	}
	defer db.Close()
	out := make(map[string]int, len(emails))
	for _, e := range emails {
		s, err := db.SubscriberByEmail(ctx, e)
		if err != nil {
			in.t.Fatalf("%s in the database: %v", e, err)
		}
		out[e] = s.Bounces
	}
	return out
}

// percentile of sorted durations.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(float64(len(sorted)-1) * p)
	return sorted[i]
}

func sortDurations(d []time.Duration) {
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
}
