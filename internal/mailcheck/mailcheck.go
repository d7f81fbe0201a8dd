// Package mailcheck runs the outside judges of an email for tests:
// mailpit's HTML compatibility check (caniemail's data) and SpamAssassin's
// score. Each starts or runs the real program on loopback; when it is not
// installed the test is skipped, or fails when CI=true (.ci/run installs
// both).
package mailcheck

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/smtp"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Program looks for a program in PATH, then in Go's bin directory; missing,
// the test skips, or fails under CI=true, saying how to install it.
func Program(t testing.TB, name, install string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	if gp, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
		if p, err := exec.LookPath(filepath.Join(strings.TrimSpace(string(gp)), "bin", name)); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s is not installed (%s)", name, install)
	}
	t.Skipf("%s is not installed (%s)", name, install)
	return ""
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Mailpit is a mailpit started for one test.
type Mailpit struct {
	SMTP string // host:port
	API  string // http://host:port
}

// StartMailpit starts mailpit on loopback ports with its own database
// and stops it when the test ends.
func StartMailpit(t testing.TB) *Mailpit {
	t.Helper()
	bin := Program(t, "mailpit", "go install github.com/axllent/mailpit@v1.33.1")
	dir := t.TempDir()
	m := &Mailpit{SMTP: fmt.Sprintf("127.0.0.1:%d", freePort(t)), API: fmt.Sprintf("http://127.0.0.1:%d", freePort(t))}
	cmd := exec.Command(bin, "--smtp", m.SMTP, "--listen", strings.TrimPrefix(m.API, "http://"),
		"--database", filepath.Join(dir, "mailpit.db"), "--disable-version-check")
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	deadline := time.Now().Add(30 * time.Second)
	for {
		r, err := http.Get(m.API + "/readyz")
		if err == nil {
			r.Body.Close()
			if r.StatusCode == http.StatusOK {
				return m
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("mailpit did not come up: %v\n%s", err, logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Send hands a raw message to mailpit over SMTP and returns its id there.
func (m *Mailpit) Send(t testing.TB, from, to string, raw []byte) string {
	t.Helper()
	if err := smtp.SendMail(m.SMTP, nil, from, []string{to}, raw); err != nil {
		t.Fatal(err)
	}
	var list struct {
		Messages []struct{ ID string } `json:"messages"`
	}
	m.get(t, "/api/v1/messages?limit=1", &list)
	if len(list.Messages) == 0 {
		t.Fatal("mailpit has no message")
	}
	return list.Messages[0].ID
}

func (m *Mailpit) get(t testing.TB, path string, v any) {
	t.Helper()
	r, err := http.Get(m.API + path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Body.Close()
	if r.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", path, r.Status)
	}
	if err := json.NewDecoder(r.Body).Decode(v); err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
}

// HTMLCheck is mailpit's HTML compatibility report of a message.
type HTMLCheck struct {
	Total struct {
		Tests       int
		Supported   float64
		Partial     float64
		Unsupported float64
	}
	Warnings []struct {
		Title string
		Slug  string
		Score struct {
			Found       int
			Supported   float64
			Partial     float64
			Unsupported float64
		}
	}
}

// HTMLCheck is GET /api/v1/message/{id}/html-check.
func (m *Mailpit) HTMLCheck(t testing.TB, id string) *HTMLCheck {
	t.Helper()
	var c HTMLCheck
	m.get(t, "/api/v1/message/"+id+"/html-check", &c)
	return &c
}

// spamScore reads the score from SpamAssassin's X-Spam-Status header.
var spamScore = regexp.MustCompile(`(?m)^X-Spam-Status: \w+, score=(-?[0-9.]+)`)

// SpamAssassin runs `spamassassin -L -t` (local tests only: no network,
// no DNS blocklists) on raw and returns the score and the report.
func SpamAssassin(t testing.TB, raw []byte) (float64, string) {
	t.Helper()
	bin := Program(t, "spamassassin", "apt-get install spamassassin")
	cmd := exec.Command(bin, "-L", "-t")
	cmd.Stdin = bytes.NewReader(raw)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("spamassassin: %v", err)
	}
	m := spamScore.FindSubmatch(out)
	if m == nil {
		t.Fatalf("spamassassin gave no score:\n%s", out)
	}
	score, _ := strconv.ParseFloat(string(m[1]), 64)
	report := string(out)
	if i := strings.Index(report, "Content analysis details"); i >= 0 {
		report = report[i:]
	}
	return score, report
}
