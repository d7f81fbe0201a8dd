package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/herald-dev/herald"
	"github.com/herald-dev/herald/internal/testenv"
	"github.com/herald-dev/herald/store"
)

const cliToken = testenv.Token

type cliEnv struct {
	*testenv.App
	t *testing.T
}

// newCLIEnv runs a whole herald (internal/testenv) for the client
// commands to talk to. token "" disables admin.
func newCLIEnv(t *testing.T, token string) *cliEnv {
	t.Helper()
	return &cliEnv{App: testenv.New(t, testenv.Options{AdminToken: token}), t: t}
}

// cli runs the herald command line with the token in the environment and
// --server pointing at url.
func cli(t *testing.T, url, token string, args ...string) (int, string, string) {
	t.Helper()
	env := func(k string) string {
		if k == "HERALD_ADMIN_TOKEN" {
			return token
		}
		return ""
	}
	if url != "" {
		args = append(args, "--server", url)
	}
	var out, errb bytes.Buffer
	code := run(context.Background(), args, &out, &errb, env)
	return code, out.String(), errb.String()
}

func (e *cliEnv) cli(args ...string) (int, string, string) {
	e.t.Helper()
	return cli(e.t, e.URL, cliToken, args...)
}

func writeFile(t *testing.T, name, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestClientImportExport(t *testing.T) {
	e := newCLIEnv(t, cliToken)
	in := writeFile(t, "in.csv", "email,name,frequency,status\nann@example.org,\"Ann, A.\",weekly,\nbob@example.org,Bob,,confirmed\ncat@example.org,Cat,,unsubscribed\n")
	// Flags may follow the file.
	code, out, errs := e.cli("subscribers", "import", in, "--confirmed")
	if code != 0 || !strings.Contains(out, "3 rows: 3 added, 0 updated, 0 skipped, 0 invalid") {
		t.Fatalf("import: %d\n%s\n%s", code, out, errs)
	}
	if s, _ := e.DB.SubscriberByEmail(context.Background(), "ann@example.org"); s == nil || s.Status != herald.StatusConfirmed || s.Frequency != herald.Weekly {
		t.Fatalf("ann: %+v", s)
	}

	dir := t.TempDir()
	outFile := filepath.Join(dir, "subscribers.csv")
	code, _, errs = e.cli("subscribers", "export", "--out", outFile)
	if code != 0 || !strings.Contains(errs, "exported 3 subscribers") {
		t.Fatalf("export: %d %s", code, errs)
	}
	b, _ := os.ReadFile(outFile)
	recs, err := csv.NewReader(bytes.NewReader(b)).ReadAll()
	if err != nil || len(recs) != 4 || strings.Join(recs[0][:4], ",") != "email,name,frequency,status" {
		t.Fatalf("export file: %v\n%s", err, b)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Fatalf("temporary files left: %v", ents)
	}
	// To standard output.
	code, out, _ = e.cli("subscribers", "export")
	if code != 0 || out != string(b) {
		t.Fatalf("export to stdout: %d\n%s", code, out)
	}

	// Bad rows: listed by line, the good ones imported, exit 1.
	bad := writeFile(t, "bad.csv", "email,name\ndan@example.org,Dan\nnot-an-address,X\nann@example.org,Ann B.\n")
	code, out, errs = e.cli("subscribers", "import", bad)
	if code != 1 || !strings.Contains(out, "1 added") || !strings.Contains(out, "1 updated") ||
		!strings.Contains(out, `line 3: "not-an-address" is not a valid email address`) || !strings.Contains(errs, "1 of 3 rows were not imported") {
		t.Fatalf("bad rows: %d\n%s\n%s", code, out, errs)
	}
	// --json prints the server's report.
	code, out, _ = e.cli("subscribers", "import", "--json", bad)
	var rep herald.ImportReport
	if code != 1 || json.Unmarshal([]byte(out), &rep) != nil || rep.InvalidTotal != 1 || rep.Skipped != 2 {
		t.Fatalf("--json: %d %s", code, out)
	}
	// The server's message for a file it refuses.
	noEmail := writeFile(t, "noemail.csv", "name\nX\n")
	if code, _, errs := e.cli("subscribers", "import", noEmail); code != 1 || !strings.Contains(errs, "no email column") {
		t.Fatalf("no email column: %d %s", code, errs)
	}
	if code, _, errs := e.cli("subscribers", "import", filepath.Join(dir, "missing.csv")); code != 1 || !strings.Contains(errs, "no such file") {
		t.Fatalf("missing file: %d %s", code, errs)
	}
}

// herald subscribers update changes a reader through the same PATCH the
// admin UI's subscriber page uses; only the flags given change.
func TestClientUpdate(t *testing.T) {
	e := newCLIEnv(t, cliToken)
	e.Confirmed("ann@example.org", herald.Weekly)
	code, out, errs := e.cli("subscribers", "update", "ann@example.org", "--name", "Ann Other")
	if code != 0 || out != "ann@example.org: confirmed, weekly, name \"Ann Other\"; topics: every post; time zone: the site's; language: the site's\n" {
		t.Fatalf("update name: %d %q %s", code, out, errs)
	}
	if code, out, _ = e.cli("subscribers", "update", "--frequency", "instant", "ann@example.org"); code != 0 || !strings.Contains(out, "instant, name \"Ann Other\"") {
		t.Fatalf("update frequency: %d %q", code, out)
	}
	if code, _, errs = e.cli("subscribers", "update", "ann@example.org", "--frequency", "hourly"); code != 1 || !strings.Contains(errs, "unknown frequency") {
		t.Fatalf("bad frequency: %d %s", code, errs)
	}
	if code, _, errs = e.cli("subscribers", "update", "nobody@example.org", "--name", "X"); code != 1 || !strings.Contains(errs, "not found") {
		t.Fatalf("unknown reader: %d %s", code, errs)
	}
	if code, _, errs = e.cli("subscribers", "update", "ann@example.org"); code != 2 || !strings.Contains(errs, "nothing to change") {
		t.Fatalf("no flags: %d %s", code, errs)
	}
	if s := e.Subscriber("ann@example.org"); s.Name != "Ann Other" || s.Frequency != herald.Instant {
		t.Fatalf("reader %+v", s)
	}
}

func TestClientBackup(t *testing.T) {
	e := newCLIEnv(t, cliToken)
	in := writeFile(t, "in.csv", "email\na@example.org\nb@example.org\n")
	if code, out, errs := e.cli("subscribers", "import", "--confirmed", in); code != 0 {
		t.Fatalf("import: %s %s", out, errs)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "herald-backup.db")
	code, out, errs := e.cli("backup", path)
	if code != 0 || !strings.Contains(out, "backup written to "+path) {
		t.Fatalf("backup: %d %s %s", code, out, errs)
	}
	if err := checkBolt(path); err != nil {
		t.Fatal(err)
	}
	// Restore: herald opens the copy as its database.
	db, err := store.Open(context.Background(), path, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if s, err := db.SubscriberByEmail(context.Background(), "b@example.org"); err != nil || s.Status != herald.StatusConfirmed {
		t.Fatalf("restored: %+v %v", s, err)
	}
	db.Close()
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Fatalf("temporary files left: %v", ents)
	}
	if code, _, errs := e.cli("backup", filepath.Join(dir, "no", "such", "dir", "x.db")); code != 1 || !strings.Contains(errs, "no such file") {
		t.Fatalf("backup into a missing directory: %d %s", code, errs)
	}

	// A server that answers with something that is not a database: the
	// file is not written, an old one stays.
	junk := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/octet-stream")
		_, _ = w.Write(bytes.Repeat([]byte("not a database "), 1000))
	}))
	defer junk.Close()
	code, _, errs = cli(t, junk.URL, cliToken, "backup", path)
	if code != 1 || !strings.Contains(errs, "not a valid database") {
		t.Fatalf("junk backup: %d %s", code, errs)
	}
	if err := checkBolt(path); err != nil {
		t.Fatalf("the good backup was replaced: %v", err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Fatalf("temporary files left: %v", ents)
	}
}

func TestClientSend(t *testing.T) {
	e := newCLIEnv(t, cliToken)
	ctx := context.Background()
	in := writeFile(t, "in.csv", "email,frequency\na@example.org,daily\nb@example.org,daily\nc@example.org,daily\nw@example.org,weekly\n")
	if code, out, errs := e.cli("subscribers", "import", "--confirmed", in); code != 0 {
		t.Fatalf("import: %s %s", out, errs)
	}
	// A post that arrives after they confirmed.
	if _, err := e.DB.UpsertPost(ctx, &herald.Post{GUID: "p1", URL: "https://blog.example.org/p1", Title: "Hello", Feed: "api", PublishedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	code, out, errs := e.cli("send", "--frequency", "daily", "--wait")
	if code != 0 || !strings.Contains(out, "(daily) done: 3 sent, 0 failed, 0 skipped of 3") {
		t.Fatalf("send --wait: %d\n%s\n%s", code, out, errs)
	}
	if n := e.SMTP.Count(); n != 3 {
		t.Fatalf("%d emails sent", n)
	}
	// Without --wait: the run id; a dry run sends nothing.
	code, out, errs = e.cli("send", "--frequency", "weekly", "--dry-run")
	if code != 0 || !strings.Contains(out, "started run") || !strings.Contains(out, "weekly, dry run") {
		t.Fatalf("send: %d %s %s", code, out, errs)
	}
	if code, _, errs := e.cli("send", "--frequency", "hourly"); code != 2 || !strings.Contains(errs, "want instant, daily or weekly") {
		t.Fatalf("bad frequency: %d %s", code, errs)
	}
}

// TestClientSendFailedRun: a run that fails makes --wait exit 1 with its
// error (a fake runs API, to get a failure on cue).
func TestClientSendFailedRun(t *testing.T) {
	var polls int
	var mu sync.Mutex
	mux := http.NewServeMux()
	mux.HandleFunc("POST /api/v1/runs", func(w http.ResponseWriter, r *http.Request) {
		var in map[string]any
		_ = json.NewDecoder(r.Body).Decode(&in)
		if in["frequency"] != "daily" || in["dry_run"] != false {
			http.Error(w, `{"error":"bad body"}`, http.StatusBadRequest)
			return
		}
		w.WriteHeader(http.StatusAccepted)
		fmt.Fprint(w, `{"id":7,"run":{"id":7,"frequency":"daily","state":"queued"}}`)
	})
	mux.HandleFunc("GET /api/v1/runs/7", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		polls++
		n := polls
		mu.Unlock()
		if n < 3 {
			fmt.Fprintf(w, `{"id":7,"frequency":"daily","state":"running","total":10,"sent":%d}`, 3*n)
			return
		}
		fmt.Fprint(w, `{"id":7,"frequency":"daily","state":"failed","total":10,"sent":6,"failed":4,"error":"smtp relay refused us","failures":[{"email":"x@example.org","error":"550 no such user"}]}`)
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	code, out, errs := cli(t, srv.URL, cliToken, "send", "--wait", "--frequency", "daily")
	if code != 1 || !strings.Contains(errs, "run 7 (daily) failed: smtp relay refused us") || !strings.Contains(out, "x@example.org: 550 no such user") {
		t.Fatalf("failed run: %d\n%s\n%s", code, out, errs)
	}
	if !strings.Contains(errs, "6/10") && !strings.Contains(errs, "10/10") {
		t.Errorf("no progress shown: %q", errs)
	}
}

func TestClientErrors(t *testing.T) {
	e := newCLIEnv(t, cliToken)
	off := newCLIEnv(t, "")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := "http://" + ln.Addr().String()
	ln.Close()
	dir := t.TempDir()
	f := writeFile(t, "in.csv", "email\na@example.org\n")
	cmds := [][]string{
		{"subscribers", "export"},
		{"subscribers", "import", f},
		{"backup", filepath.Join(dir, "b.db")},
		{"send"},
	}
	for _, c := range cmds {
		name := strings.Join(c, " ")
		if code, _, errs := cli(t, down, cliToken, c...); code != 1 || !strings.Contains(errs, "cannot reach herald at "+down+": is `herald serve` running?") {
			t.Errorf("%s, server down: %d %s", name, code, errs)
		}
		if code, _, errs := cli(t, e.URL, cliToken+"-wrong", c...); code != 1 || !strings.Contains(errs, "the admin token was refused (check admin.token / HERALD_ADMIN_TOKEN)") {
			t.Errorf("%s, wrong token: %d %s", name, code, errs)
		}
		if code, _, errs := cli(t, off.URL, cliToken, c...); code != 1 || !strings.Contains(errs, "the admin API is disabled on the server: set admin.token") {
			t.Errorf("%s, admin disabled: %d %s", name, code, errs)
		}
		if code, _, errs := cli(t, e.URL, "", c...); code != 1 || !strings.Contains(errs, "no admin token") {
			t.Errorf("%s, no token: %d %s", name, code, errs)
		}
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Fatalf("failed backups left files: %v", ents)
	}
	// Mistakes on the command line exit 2.
	for _, c := range [][]string{
		{"subscribers"},
		{"subscribers", "delete"},
		{"subscribers", "import"},
		{"subscribers", "export", "extra"},
		{"backup"},
		{"send", "--bogus"},
	} {
		if code, _, errs := cli(t, e.URL, cliToken, c...); code != 2 || errs == "" {
			t.Errorf("%v: exit %d %s", c, code, errs)
		}
	}
	if code, _, errs := cli(t, "ftp://x", cliToken, "send"); code != 2 || !strings.Contains(errs, "--server") {
		t.Errorf("bad --server: %d %s", code, errs)
	}
	var help bytes.Buffer
	if code := run(context.Background(), []string{"help"}, &help, &help, noenv); code != 0 ||
		!strings.Contains(help.String(), "herald subscribers import FILE [--confirmed]") || !strings.Contains(help.String(), "herald backup FILE") {
		t.Errorf("usage lacks the client commands:\n%s", help.String())
	}
}

// TestClientConfigFile: the address and token come from the config file,
// HERALD_ADMIN_TOKEN overrides the token, --server the address.
func TestClientConfigFile(t *testing.T) {
	e := newCLIEnv(t, cliToken)
	p := writeConfig(t, fmt.Sprintf("[server]\nbase_url = %q\n[admin]\ntoken = %q\n", e.URL, cliToken))
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"subscribers", "export", "--config", p}, &out, &errb, noenv); code != 0 || !strings.HasPrefix(out.String(), "email,name") {
		t.Fatalf("from the config: %d %s %s", code, out.String(), errb.String())
	}
	errb.Reset()
	wrong := func(k string) string {
		if k == "HERALD_ADMIN_TOKEN" {
			return "another-token-0123456789"
		}
		return ""
	}
	if code := run(context.Background(), []string{"subscribers", "export", "--config", p}, &out, &errb, wrong); code != 1 || !strings.Contains(errb.String(), "token was refused") {
		t.Fatalf("HERALD_ADMIN_TOKEN did not override: %d %s", code, errb.String())
	}
}

// herald subscribers update --language sets the language of a reader's
// emails; one herald does not speak is refused, naming the field.
func TestClientUpdateLanguage(t *testing.T) {
	e := newCLIEnv(t, cliToken)
	e.Confirmed("ann@example.org", herald.Weekly)
	if code, out, errs := e.cli("subscribers", "update", "ann@example.org", "--language", "fr-CA"); code != 0 || !strings.Contains(out, "; language: fr") {
		t.Fatalf("update language: %d %q %s", code, out, errs)
	}
	if code, _, errs := e.cli("subscribers", "update", "ann@example.org", "--language", "tlh"); code != 1 || !strings.Contains(errs, "unknown language") {
		t.Fatalf("bad language: %d %s", code, errs)
	}
	if s := e.Subscriber("ann@example.org"); s.Language != "fr" {
		t.Fatalf("reader %+v", s)
	}
}

// herald subscribers update changes topics, time zone and pause too.
func TestClientUpdateChoices(t *testing.T) {
	e := newCLIEnv(t, cliToken)
	e.Confirmed("set@example.org", herald.Daily)
	until := time.Now().Add(48 * time.Hour).UTC().Truncate(time.Second).Format(time.RFC3339)
	code, out, errs := e.cli("subscribers", "update", "set@example.org", "--frequency", "weekly", "--timezone", "Asia/Kolkata", "--pause-until", until)
	if code != 0 || !strings.Contains(out, "set@example.org: confirmed, weekly, name \"\"; topics: every post; time zone: Asia/Kolkata; paused until "+until) {
		t.Fatalf("set: %d\n%s\n%s", code, out, errs)
	}
	if code, out, _ = e.cli("subscribers", "update", "set@example.org", "--resume", "--timezone", ""); code != 0 || strings.Contains(out, "paused") || !strings.Contains(out, "the site's") {
		t.Fatalf("resume: %d %s", code, out)
	}
	// The server names the bad field; nothing changes.
	if code, _, errs = e.cli("subscribers", "update", "set@example.org", "--timezone", "Mars/Base"); code != 1 || !strings.Contains(errs, "unknown time zone") {
		t.Fatalf("a made-up zone: %d %s", code, errs)
	}
	if code, _, errs = e.cli("subscribers", "update", "set@example.org"); code != 2 || !strings.Contains(errs, "nothing to change") {
		t.Fatalf("no change: %d %s", code, errs)
	}
	if code, _, errs = e.cli("subscribers", "update", "set@example.org", "--pause-until", "soon"); code != 2 || !strings.Contains(errs, "RFC 3339") {
		t.Fatalf("a bad time: %d %s", code, errs)
	}
	if s := e.Subscriber("set@example.org"); s.Frequency != herald.Weekly || s.Timezone != "" || s.Paused(time.Now()) {
		t.Fatalf("the reader: %+v", s)
	}
}
