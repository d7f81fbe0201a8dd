package main

import (
	"bytes"
	"context"
	"fmt"
	"html"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/herald-dev/herald/internal/smtptest"
)

// productionConfig is a config with nothing left at a harmful default:
// SMTP with DKIM, a public https base_url and from address, an admin
// token, a feed, the blog's URL.
func productionConfig(t *testing.T, smtpPort int) string {
	t.Helper()
	dir := t.TempDir()
	key := filepath.Join(dir, "dkim.pem")
	if code, _, errs := runCmd([]string{"dkim-keygen", "--domain", "their-blog.org", "--out", key}, noenv); code != 0 {
		t.Fatal(errs)
	}
	return fmt.Sprintf(`[server]
listen = "127.0.0.1:0"
base_url = "https://news.their-blog.org"
[store]
path = %q
[site]
name = "Their Blog"
url = "https://their-blog.org"
[[feeds]]
url = "https://their-blog.org/feed/"
[mail]
from = "Their Blog <news@their-blog.org>"
transport = "smtp"
[smtp]
host = "127.0.0.1"
port = %d
tls = "none"
[admin]
token = "a-long-admin-token-0123456789"
[dkim]
domain = "their-blog.org"
selector = "herald"
private_key = %q
[log]
level = "warn"
`, filepath.Join(dir, "herald.db"), smtpPort, key)
}

// TestWarnings: each default that would hurt in production gives its
// warning, naming the key; a production config gives none.
func TestWarnings(t *testing.T) {
	prod := productionConfig(t, 2525)
	cfg, err := LoadConfig(writeConfig(t, prod), noenv)
	if err != nil {
		t.Fatal(err)
	}
	if ws := cfg.Warnings(); len(ws) != 0 {
		t.Fatalf("a production config warns: %q", ws)
	}
	// Each case changes one thing of the production config.
	cases := []struct {
		name, from, to, want string
	}{
		{"localhost base_url with SMTP", `base_url = "https://news.their-blog.org"`, `base_url = "http://localhost:8080"`, "server.base_url"},
		{"loopback base_url with SMTP", `base_url = "https://news.their-blog.org"`, `base_url = "http://127.0.0.1:8080"`, "server.base_url"},
		{"private base_url with SMTP", `base_url = "https://news.their-blog.org"`, `base_url = "http://192.168.1.20:8080"`, "server.base_url"},
		{"plain http base_url with SMTP", `base_url = "https://news.their-blog.org"`, `base_url = "http://news.their-blog.org"`, "server.base_url"},
		{"localhost mail.from with SMTP", `from = "Their Blog <news@their-blog.org>"`, `from = "herald <herald@localhost.localdomain>"`, "mail.from"},
		{"mail to files", `transport = "smtp"`, `transport = "file"`, "mail.transport"},
		{"no admin token", `token = "a-long-admin-token-0123456789"`, `token = ""`, "admin.token"},
		{"no feeds", "[[feeds]]\nurl = \"https://their-blog.org/feed/\"\n", "", "no [[feeds]]"},
		{"no DKIM", `domain = "their-blog.org"` + "\nselector", `domain = ""` + "\nselector", "dkim.domain"},
		{"no site.url", `url = "https://their-blog.org"` + "\n[[feeds]]", `url = ""` + "\n[[feeds]]", "site.url"},
		{"tls_domains without tls", "[store]", "tls_domains = [\"news.their-blog.org\"]\n[store]", "server.tls_domains"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if !strings.Contains(prod, tc.from) {
				t.Fatalf("case does not apply: %q", tc.from)
			}
			cfg, err := LoadConfig(writeConfig(t, strings.Replace(prod, tc.from, tc.to, 1)), noenv)
			if err != nil {
				t.Fatal(err)
			}
			ws := cfg.Warnings()
			if len(ws) != 1 || !strings.HasPrefix(ws[0], tc.want) {
				t.Fatalf("warnings %q, want exactly one about %s", ws, tc.want)
			}
		})
	}
	// The built-in defaults are a trial set-up: they warn about each of
	// the production settings, but not about localhost (mail goes to files).
	def, _ := LoadConfig("", noenv)
	var keys []string
	for _, w := range def.Warnings() {
		keys = append(keys, strings.Fields(w)[0])
	}
	if got := strings.Join(keys, " "); got != "mail.transport admin.token no dkim.domain site.url" {
		t.Fatalf("default config warns about %q", got)
	}
}

// check-config prints the same list as serve.
func TestCheckConfigPrintsWarnings(t *testing.T) {
	p := writeConfig(t, "[mail]\ntransport = \"smtp\"\n[smtp]\nhost = \"smtp.their-blog.org\"\n")
	cfg, err := LoadConfig(p, noenv)
	if err != nil {
		t.Fatal(err)
	}
	code, _, errs := runCmd([]string{"check-config", "--config", p}, noenv)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	var want strings.Builder
	for _, w := range cfg.Warnings() {
		fmt.Fprintf(&want, "warning: %s\n", w)
	}
	if errs != want.String() || !strings.Contains(errs, "server.base_url") || !strings.Contains(errs, "mail.from") {
		t.Fatalf("check-config printed\n%s\nwant\n%s", errs, want.String())
	}
}

// serve prints what it serves, where mail goes and where the database is,
// logs each warning, and the admin dashboard shows them.
func TestServeAnnouncesAndWarns(t *testing.T) {
	sm := smtptest.Start(t)
	dir := t.TempDir()
	p := writeConfig(t, fmt.Sprintf(`[server]
listen = "127.0.0.1:0"
base_url = "http://localhost:8080"
[store]
path = %q
backup_every = "24h"
[mail]
transport = "smtp"
[smtp]
host = "127.0.0.1"
port = %d
tls = "none"
[admin]
token = "a-long-admin-token-0123456789"
[digest]
daily = ""
weekly = ""
`, filepath.Join(dir, "herald.db"), sm.Port()))
	cfg, err := LoadConfig(p, noenv)
	if err != nil {
		t.Fatal(err)
	}
	warnings := cfg.Warnings()
	var logs, out bytes.Buffer
	ctx, cancel := context.WithCancel(context.Background())
	a, err := newApp(ctx, cfg, slog.New(slog.NewTextHandler(&syncWriter{w: &logs}, nil)), nil)
	if err != nil {
		t.Fatal(err)
	}
	a.out = &out
	done := make(chan error, 1)
	go func() { done <- a.serve(ctx) }()
	stop := func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	}
	listen := a.ln.Addr().String()
	base := "http://" + listen

	// The dashboard, after logging in like a person.
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar}
	csrf := regexp.MustCompile(`name="csrf" value="([^"]+)"`)
	page := func(res *http.Response, err error) string {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		if res.StatusCode != 200 {
			t.Fatalf("%s: %d\n%s", res.Request.URL, res.StatusCode, b)
		}
		return string(b)
	}
	login := page(c.Get(base + "/admin/login"))
	m := csrf.FindStringSubmatch(login)
	if m == nil {
		t.Fatalf("no csrf on the login page:\n%s", login)
	}
	dash := page(c.PostForm(base+"/admin/login", url.Values{"token": {cfg.Admin.Token}, "csrf": {m[1]}}))
	stop()

	if len(warnings) < 4 {
		t.Fatalf("the config should warn about base_url, mail.from, feeds, DKIM, site.url: %q", warnings)
	}
	if !strings.Contains(dash, `id="config-warnings"`) {
		t.Fatalf("the dashboard shows no warnings:\n%s", dash)
	}
	for _, w := range warnings {
		if !strings.Contains(dash, html.EscapeString(w)) {
			t.Errorf("dashboard lacks warning %q", w)
		}
		if !strings.Contains(out.String(), "WARNING: "+w) {
			t.Errorf("start-up summary lacks warning %q", w)
		}
		if !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), strings.Fields(w)[0]) {
			t.Errorf("log lacks warning %q", w)
		}
	}
	for _, want := range []string{
		"public address  http://localhost:8080/",
		"http on " + listen,
		"admin           http://localhost:8080/admin/",
		fmt.Sprintf("SMTP to 127.0.0.1:%d (none)", sm.Port()),
		"database        " + filepath.Join(dir, "herald.db"),
		"backups         every 24h0m0s to " + filepath.Join(dir, "backups") + ", keeping 7",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("start-up summary lacks %q:\n%s", want, out.String())
		}
	}

	// A production config starts quietly.
	cfg, err = LoadConfig(writeConfig(t, productionConfig(t, sm.Port())), noenv)
	if err != nil {
		t.Fatal(err)
	}
	out.Reset()
	ctx, cancel = context.WithCancel(context.Background())
	a, err = newApp(ctx, cfg, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		t.Fatal(err)
	}
	a.out = &out
	done = make(chan error, 1)
	go func() { done <- a.serve(ctx) }()
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out.String(), "WARNING") || !strings.Contains(out.String(), "DKIM-signed for their-blog.org") {
		t.Fatalf("production start-up summary:\n%s", out.String())
	}
}

// syncWriter lets many goroutines log into one buffer.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(b []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(b)
}
