// Package e2e holds whole-process tests: they build the herald binary, run
// `herald serve` on a temp dir against a real SMTP server on loopback, and
// drive it over HTTP like a reader or an admin would.
package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/herald-dev/herald/internal/smtptest"
	"github.com/herald-dev/herald/internal/testenv"
)

// build is the herald binary, built on first use: `go test -run X ./e2e`
// for a test that needs none (the route enumeration) builds nothing.
var build struct {
	once sync.Once
	dir  string
	path string
	err  error
}

// heraldBinary builds herald (with -race unless HERALD_E2E_NORACE is set)
// the first time a test asks, and returns its path. It is a test build
// (-tags heraldtest): it honours HERALD_TEST_CLOCK (cmd/herald/testclock.go),
// and only when a test sets it.
func heraldBinary(t testing.TB) string {
	t.Helper()
	build.once.Do(func() {
		if build.dir, build.err = os.MkdirTemp("", "herald-e2e-"); build.err != nil {
			return
		}
		build.path = filepath.Join(build.dir, "herald")
		args := []string{"build", "-race", "-tags", "heraldtest", "-o", build.path, "../cmd/herald"}
		if os.Getenv("HERALD_E2E_NORACE") != "" {
			args = []string{"build", "-tags", "heraldtest", "-o", build.path, "../cmd/herald"}
		}
		out, err := exec.Command("go", args...).CombinedOutput()
		if err != nil {
			build.err = fmt.Errorf("building herald: %v\n%s", err, out)
		}
	})
	if build.err != nil {
		t.Fatal(build.err)
	}
	return build.path
}

func TestMain(m *testing.M) {
	code := m.Run()
	if build.dir != "" {
		os.RemoveAll(build.dir)
	}
	os.Exit(code)
}

// freePort finds a loopback port nobody listens on right now.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// proc is one running `herald serve`.
type proc struct {
	t      *testing.T
	cmd    *exec.Cmd
	base   string
	mu     sync.Mutex
	output bytes.Buffer
	done   chan struct{}
	err    error
}

func (p *proc) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.output.Write(b)
}

// Output is what the process logged so far.
func (p *proc) Output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.output.String()
}

// instance is a herald data dir and config, started as often as needed.
type instance struct {
	t      *testing.T
	dir    string
	config string
	port   int
	base   string
	env    []string
}

func newInstance(t *testing.T, configBody string, env ...string) *instance {
	t.Helper()
	dir := t.TempDir()
	port := freePort(t)
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	body := strings.ReplaceAll(configBody, "{{LISTEN}}", fmt.Sprintf("127.0.0.1:%d", port))
	body = strings.ReplaceAll(body, "{{BASE}}", base)
	body = strings.ReplaceAll(body, "{{DIR}}", dir)
	cfg := filepath.Join(dir, "herald.toml")
	if err := os.WriteFile(cfg, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return &instance{t: t, dir: dir, config: cfg, port: port, base: base, env: env}
}

// start runs `herald serve` and waits until /healthz answers.
func (in *instance) start() *proc {
	t := in.t
	t.Helper()
	p := &proc{t: t, base: in.base, done: make(chan struct{})}
	p.cmd = exec.Command(heraldBinary(t), "serve", "--config", in.config)
	p.cmd.Dir = in.dir
	p.cmd.Env = append(os.Environ(), in.env...)
	p.cmd.Stdout, p.cmd.Stderr = p, p
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = p.cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("herald output:\n%s", p.Output())
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-p.done:
			t.Fatalf("herald exited early: %v\n%s", p.err, p.Output())
		default:
		}
		res, err := http.Get(in.base + "/healthz")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == 200 {
				return p
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("herald did not answer /healthz in 30s\n%s", p.Output())
	return nil
}

// stop sends SIGTERM and waits for a clean exit.
func (p *proc) stop() {
	p.t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		p.t.Fatalf("herald did not stop within 30s of SIGTERM\n%s", p.Output())
	}
	if p.err != nil {
		p.t.Fatalf("herald exited with %v after SIGTERM\n%s", p.err, p.Output())
	}
}

// kill sends SIGKILL: no chance to clean up.
func (p *proc) kill() {
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

var client = &http.Client{
	Timeout:       30 * time.Second,
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

type response struct {
	Status int
	Header http.Header
	Body   string
}

func (in *instance) do(method, path, contentType, body string, hdr ...string) response {
	in.t.Helper()
	req, err := http.NewRequest(method, in.base+path, strings.NewReader(body))
	if err != nil {
		in.t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := client.Do(req)
	if err != nil {
		in.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return response{res.StatusCode, res.Header, string(b)}
}

// outboxSent waits until herald's outbox is empty (GET /api/v1/stats):
// every message it queued has been sent, or failed for good. Then the
// SMTP server holds all there is to count.
func (in *instance) outboxSent() {
	in.t.Helper()
	testenv.Eventually(in.t, time.Minute, "herald's outbox to drain", func() bool {
		r := in.do("GET", "/api/v1/stats", "", "", "Authorization", "Bearer "+adminToken)
		var st struct{ Outbox *int }
		return r.Status == 200 && json.Unmarshal([]byte(r.Body), &st) == nil && st.Outbox != nil && *st.Outbox == 0
	})
}

// settled waits until the SMTP server has no connection left: after a
// SIGKILL, every message whose DATA was complete has been answered and
// recorded (or not), so the count stops moving.
func settled(t *testing.T, sm *smtptest.Server) {
	t.Helper()
	testenv.Eventually(t, time.Minute, "the SMTP server's connections to close", func() bool { return sm.ActiveConnections() == 0 })
}
