// Package deploy holds what runs herald on a server (the systemd unit, the
// static build the Docker image ships) and the tests that keep the
// Dockerfile, compose.yaml and the unit honest without a Docker engine or
// a booted systemd: they build the image's binary with the image's
// script, run it the way the image and the compose file do, and check the
// unit with systemd-analyze.
package deploy

import (
	"bufio"
	"bytes"
	"debug/elf"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/herald-dev/herald/internal/mailcheck"
)

// binary is herald as deploy/build.sh builds it, for the whole package.
var (
	buildOnce sync.Once
	binary    string
	buildErr  error
)

func imageBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "herald-deploy-")
		if err != nil {
			buildErr = err
			return
		}
		binary = filepath.Join(dir, "herald")
		cmd := exec.Command("sh", "build.sh", binary)
		cmd.Env = append(os.Environ(), "VERSION=deploy-test", "COMMIT=abc123")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("deploy/build.sh: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binary
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binary != "" {
		os.RemoveAll(filepath.Dir(binary))
	}
	os.Exit(code)
}

// instruction is one Dockerfile line (continuations joined).
type instruction struct {
	cmd, args string
}

func readDockerfile(t *testing.T) (stages [][]instruction) {
	t.Helper()
	f, err := os.Open("../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	var cur string
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if cur == "" && (line == "" || strings.HasPrefix(line, "#")) {
			continue
		}
		if strings.HasSuffix(line, "\\") {
			cur += strings.TrimSuffix(line, "\\") + " "
			continue
		}
		cur += line
		cmd, args, _ := strings.Cut(cur, " ")
		cur = ""
		in := instruction{strings.ToUpper(cmd), strings.TrimSpace(args)}
		if in.cmd == "FROM" {
			stages = append(stages, nil)
		}
		if len(stages) == 0 {
			t.Fatalf("Dockerfile: %s before FROM", in.cmd)
		}
		stages[len(stages)-1] = append(stages[len(stages)-1], in)
	}
	return stages
}

func find(stage []instruction, cmd string) []string {
	var out []string
	for _, in := range stage {
		if in.cmd == cmd {
			out = append(out, in.args)
		}
	}
	return out
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// started is a process and what it printed.
type started struct {
	cmd  *exec.Cmd
	out  *bytes.Buffer
	mu   *sync.Mutex
	done chan error
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}

func start(t *testing.T, dir string, env []string, name string, args ...string) *started {
	t.Helper()
	s := &started{out: &bytes.Buffer{}, mu: &sync.Mutex{}, done: make(chan error, 1)}
	s.cmd = exec.Command(name, args...)
	s.cmd.Dir, s.cmd.Env = dir, env
	s.cmd.Stdout = lockedWriter{s.mu, s.out}
	s.cmd.Stderr = s.cmd.Stdout
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { s.done <- s.cmd.Wait() }()
	t.Cleanup(func() {
		_ = s.cmd.Process.Kill()
		<-s.done
		if t.Failed() {
			t.Logf("%s output:\n%s", name, s.output())
		}
	})
	return s
}

func (s *started) output() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.out.String()
}

// waitHTTP polls url until it answers 200.
func waitHTTP(t *testing.T, s *started, u string) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if res, err := http.Get(u); err == nil {
			res.Body.Close()
			if res.StatusCode == 200 {
				return
			}
		}
		select {
		case err := <-s.done:
			s.done <- err
			t.Fatalf("exited before %s answered: %v", u, err)
		default:
		}
	}
	t.Fatalf("%s did not answer 200 within 30s", u)
}

// TestDockerImage checks the Dockerfile's promises on what it ships: the
// binary deploy/build.sh makes (the same ./cmd/herald every test builds),
// static, as the entry point, run as non-root with /data as the volume and
// a health check that needs no curl. Then it runs that binary the way the
// image does (its ENV, WORKDIR /, ENTRYPOINT + CMD) and its HEALTHCHECK.
func TestDockerImage(t *testing.T) {
	stages := readDockerfile(t)
	if len(stages) != 2 {
		t.Fatalf("Dockerfile has %d stages, want a build stage and a runtime stage", len(stages))
	}
	build, final := stages[0], stages[1]
	if !strings.HasSuffix(find(build, "FROM")[0], " AS build") {
		t.Fatalf("first stage is not named build: %q", find(build, "FROM")[0])
	}
	runs := strings.Join(find(build, "RUN"), "\n")
	if !strings.Contains(runs, "sh deploy/build.sh /out/herald") {
		t.Fatalf("the build stage does not build with deploy/build.sh: %s", runs)
	}
	script, _ := os.ReadFile("build.sh")
	if !strings.Contains(string(script), "CGO_ENABLED=0 go build") || !strings.Contains(string(script), "./cmd/herald") {
		t.Fatalf("deploy/build.sh does not build ./cmd/herald statically:\n%s", script)
	}
	if from := find(final, "FROM")[0]; !strings.Contains(from, "distroless/static") {
		t.Fatalf("runtime base %q is not a static distroless image", from)
	}
	copies := strings.Join(find(final, "COPY"), "\n")
	if !strings.Contains(copies, "--from=build /out/herald /herald") {
		t.Fatalf("the runtime stage does not ship the built binary as /herald: %s", copies)
	}
	want := map[string]string{
		"ENTRYPOINT":  `["/herald"]`,
		"CMD":         `["serve"]`,
		"VOLUME":      `["/data"]`,
		"WORKDIR":     `/`,
		"USER":        `65532:65532`,
		"HEALTHCHECK": `--interval=30s --timeout=10s --start-period=30s --retries=3 CMD ["/herald", "healthcheck"]`,
	}
	for cmd, args := range want {
		if got := find(final, cmd); len(got) != 1 || got[0] != args {
			t.Errorf("%s is %q, want %q", cmd, got, args)
		}
	}

	bin := imageBinary(t)
	ef, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range ef.Progs {
		if p.Type == elf.PT_INTERP {
			t.Fatal("the image's binary is dynamically linked: it would not run on a static base")
		}
	}
	ef.Close()
	if out, err := exec.Command(bin, "version").CombinedOutput(); err != nil || !strings.HasPrefix(string(out), "herald deploy-test (commit abc123") {
		t.Fatalf("herald version: %v %s", err, out)
	}

	// Run it as the image would: the image's ENV, with a fresh / whose
	// data/ is the volume. Only the port differs (tests share a machine).
	root := t.TempDir()
	env := []string{"PATH=/usr/bin:/bin", "HOME=" + root}
	env = append(env, find(final, "ENV")...)
	port := freePort(t)
	env = append(env, fmt.Sprintf("HERALD_SERVER_LISTEN=0.0.0.0:%d", port), "HERALD_ADMIN_TOKEN=docker-test-admin-token-0123")
	var entry, cmd []string
	_ = json.Unmarshal([]byte(want["ENTRYPOINT"]), &entry)
	_ = json.Unmarshal([]byte(want["CMD"]), &cmd)
	argv := append(entry[1:], cmd...)
	p := start(t, root, env, bin, argv...)
	waitHTTP(t, p, fmt.Sprintf("http://127.0.0.1:%d/healthz", port))
	if _, err := os.Stat(filepath.Join(root, "data", "herald.db")); err != nil {
		t.Fatalf("the database is not in the /data volume: %v", err)
	}
	healthcheck := func() error {
		c := exec.Command(bin, "healthcheck")
		c.Dir, c.Env = root, env
		out, err := c.CombinedOutput()
		if err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
		return nil
	}
	if err := healthcheck(); err != nil {
		t.Fatalf("HEALTHCHECK of a running herald: %v", err)
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM) // docker stop
	if err := <-p.done; err != nil {
		t.Fatalf("herald after SIGTERM: %v", err)
	}
	p.done <- nil // for the cleanup
	if err := healthcheck(); err == nil {
		t.Fatal("HEALTHCHECK passes with herald stopped")
	}
}

// TestComposeTrial runs what `docker compose up` runs, minus Docker:
// mailpit, and herald (the image's binary) configured by compose.yaml's
// environment; a sign-up on the form lands in mailpit.
func TestComposeTrial(t *testing.T) {
	b, err := os.ReadFile("../compose.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var compose struct {
		Services map[string]struct {
			Build       string            `yaml:"build"`
			Image       string            `yaml:"image"`
			Ports       []string          `yaml:"ports"`
			Volumes     []string          `yaml:"volumes"`
			Environment map[string]string `yaml:"environment"`
			DependsOn   []string          `yaml:"depends_on"`
		} `yaml:"services"`
		Volumes map[string]any `yaml:"volumes"`
	}
	if err := yaml.Unmarshal(b, &compose); err != nil {
		t.Fatalf("compose.yaml: %v", err)
	}
	h, ok := compose.Services["herald"]
	mp, ok2 := compose.Services["mailpit"]
	if !ok || !ok2 {
		t.Fatalf("compose.yaml services: %v, want herald and mailpit", compose.Services)
	}
	if h.Build != "." || len(h.DependsOn) != 1 || h.DependsOn[0] != "mailpit" {
		t.Fatalf("herald service: build %q, depends_on %v", h.Build, h.DependsOn)
	}
	if len(h.Volumes) != 1 || !strings.HasSuffix(h.Volumes[0], ":/data") {
		t.Fatalf("herald's data is not on /data: %v", h.Volumes)
	}
	if _, ok := compose.Volumes[strings.Split(h.Volumes[0], ":")[0]]; !ok {
		t.Fatalf("herald's /data is not a named volume: %v", compose.Volumes)
	}
	if !strings.HasPrefix(mp.Image, "axllent/mailpit:") || !slicesContains(mp.Ports, "8025:8025") || !slicesContains(h.Ports, "8080:8080") {
		t.Fatalf("ports or image: herald %v, mailpit %s %v", h.Ports, mp.Image, mp.Ports)
	}
	env := h.Environment
	// mailpit takes SMTP on 1025 by default: herald must send there.
	if env["HERALD_SMTP_HOST"] != "mailpit" || env["HERALD_SMTP_PORT"] != "1025" || env["HERALD_MAIL_TRANSPORT"] != "smtp" {
		t.Fatalf("herald does not send to mailpit: %v", env)
	}

	mailpit := mailcheck.Program(t, "mailpit", "go install github.com/axllent/mailpit@v1.33.1")
	smtpPort, uiPort, port := freePort(t), freePort(t), freePort(t)
	mpDir := t.TempDir()
	m := start(t, mpDir, os.Environ(), mailpit, "--smtp", fmt.Sprintf("127.0.0.1:%d", smtpPort),
		"--listen", fmt.Sprintf("127.0.0.1:%d", uiPort), "--database", filepath.Join(mpDir, "mailpit.db"))
	waitHTTP(t, m, fmt.Sprintf("http://127.0.0.1:%d/api/v1/messages", uiPort))

	// The image's ENV, then compose's environment; the network names of
	// the compose project become loopback ports here.
	root := t.TempDir()
	stages := readDockerfile(t)
	runEnv := []string{"PATH=/usr/bin:/bin", "HOME=" + root}
	runEnv = append(runEnv, find(stages[1], "ENV")...)
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	for k, v := range env {
		switch k {
		case "HERALD_SMTP_HOST":
			v = "127.0.0.1"
		case "HERALD_SMTP_PORT":
			v = fmt.Sprint(smtpPort)
		case "HERALD_SERVER_BASE_URL":
			if v != "http://localhost:8080" {
				t.Fatalf("base_url %q does not match the published port 8080", v)
			}
			v = base
		}
		runEnv = append(runEnv, k+"="+v)
	}
	runEnv = append(runEnv, fmt.Sprintf("HERALD_SERVER_LISTEN=127.0.0.1:%d", port))
	p := start(t, root, runEnv, imageBinary(t), "serve")
	waitHTTP(t, p, base+"/healthz")
	res, err := http.PostForm(base+"/subscribe", url.Values{"email": {"trial-reader@example.com"}})
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode >= 400 {
		t.Fatalf("sign-up: %d", res.StatusCode)
	}
	// The confirmation email shows up in mailpit.
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		res, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/api/v1/messages", uiPort))
		if err != nil {
			t.Fatal(err)
		}
		var list struct {
			Messages []struct {
				To      []struct{ Address string }
				Subject string
			}
		}
		_ = json.NewDecoder(res.Body).Decode(&list)
		res.Body.Close()
		if len(list.Messages) > 0 {
			if m := list.Messages[0]; len(m.To) != 1 || m.To[0].Address != "trial-reader@example.com" {
				t.Fatalf("mailpit got %+v", m)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no email in mailpit within 30s")
		}
	}
	if !strings.Contains(p.output(), "mail            SMTP to 127.0.0.1:") {
		t.Fatalf("start-up summary does not say where mail goes:\n%s", p.output())
	}
}

func slicesContains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// TestSystemdUnit checks herald.service with systemd-analyze: it must
// verify without a single complaint, score as well sandboxed, and keep
// each hardening setting the README promises.
func TestSystemdUnit(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("systemd-analyze is not installed (apt-get install systemd)")
		}
		t.Skip("systemd-analyze not installed")
	}
	unit, err := os.ReadFile("herald.service")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{
		"DynamicUser=yes", "StateDirectory=herald", "ProtectSystem=strict", "ProtectHome=yes",
		"NoNewPrivileges=yes", "PrivateTmp=yes", "PrivateDevices=yes",
		"RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX", "CapabilityBoundingSet=CAP_NET_BIND_SERVICE",
		"SystemCallFilter=@system-service", "MemoryDenyWriteExecute=yes",
		"Restart=on-failure", "KillSignal=SIGTERM",
		"ExecStart=/usr/local/bin/herald serve --config /etc/herald/herald.toml",
		"Environment=HERALD_STORE_PATH=/var/lib/herald/herald.db",
	} {
		if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(line) + `$`).Match(unit) {
			t.Errorf("herald.service lacks %q", line)
		}
	}
	// verify wants ExecStart's binary to exist: point it at the built one.
	dir := t.TempDir()
	path := filepath.Join(dir, "herald.service")
	body := strings.ReplaceAll(string(unit), "/usr/local/bin/herald", imageBinary(t))
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(analyze, "verify", "--man=no", path).CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) != 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
	// Exposure 0 (locked down) .. 10 (unprotected); 2.0 and under is "OK".
	out, err = exec.Command(analyze, "security", "--offline=true", "--threshold=20", path).CombinedOutput()
	if err != nil {
		t.Fatalf("systemd-analyze security: %v\n%s", err, out)
	}
	t.Logf("%s", bytes.TrimSpace(out[bytes.LastIndex(out, []byte("→")):]))
}
