package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/herald-dev/herald/templates"
)

func noenv(string) string { return "" }

func writeConfig(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "herald.toml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestDefaultsValidate(t *testing.T) {
	cfg, err := LoadConfig("", noenv)
	if err != nil {
		t.Fatalf("defaults must validate: %v", err)
	}
	if cfg.Server.Listen != "127.0.0.1:8080" || cfg.Store.Path != "data/herald.db" || cfg.Mail.Transport != "file" || cfg.Mail.OutboxDir != "data/outbox" {
		t.Fatalf("defaults differ from the documented ones: %+v", cfg)
	}
}

func TestExampleConfigLoads(t *testing.T) {
	cfg, err := LoadConfig("../../config.example.toml", noenv)
	if err != nil {
		t.Fatalf("config.example.toml must load: %v", err)
	}
	def := DefaultConfig()
	if cfg.Digest.Daily != def.Digest.Daily || cfg.Security.ConfirmTTL != def.Security.ConfirmTTL || cfg.SMTP.Connections != def.SMTP.Connections {
		t.Fatalf("config.example.toml disagrees with the built-in defaults")
	}
}

func TestFullConfig(t *testing.T) {
	p := writeConfig(t, `
[server]
listen = "0.0.0.0:9000"
base_url = "https://news.example.org"
trusted_proxies = ["10.0.0.0/8", "127.0.0.1"]
[store]
path = "/var/lib/herald/h.db"
[site]
name = "Example"
url = "https://blog.example.org"
[[feeds]]
url = "https://blog.example.org/feed/"
poll_interval = "5m"
max_age = "168h"
[[feeds]]
url = "https://blog.example.org/other.xml"
[digest]
timezone = "Europe/London"
daily = "30 6 * * *"
weekly = "0 7 * * MON"
default_frequency = "weekly"
max_posts = 10
[mail]
from = "Example <digest@example.org>"
transport = "smtp"
welcome = false
bounce_limit = 5
[smtp]
host = "smtp.example.org"
port = 465
tls = "tls"
connections = 8
rate = 12.5
timeout = "10s"
[admin]
token = "0123456789abcdef0123"
[security]
confirm_ttl = "48h"
subscribe_per_ip = "20/1h"
confirmations_per_address = "2/12h"
ipv6_prefix = 56
challenge = "always"
`)
	cfg, err := LoadConfig(p, func(k string) string {
		if k == "HERALD_SMTP_PASSWORD" {
			return "from-env"
		}
		return ""
	})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Feeds[0].PollInterval.Duration != 5*time.Minute || cfg.Feeds[1].PollInterval.Duration != defaultPollInterval {
		t.Errorf("poll intervals: %v %v", cfg.Feeds[0].PollInterval, cfg.Feeds[1].PollInterval)
	}
	if cfg.Feeds[0].MaxAge.Duration != 168*time.Hour || cfg.Feeds[1].MaxAge.Duration != defaultMaxAge {
		t.Errorf("max_age: %v %v", cfg.Feeds[0].MaxAge, cfg.Feeds[1].MaxAge)
	}
	if cfg.SMTP.Password != "from-env" || cfg.SMTP.Rate != 12.5 || cfg.Mail.Welcome {
		t.Errorf("values: %+v %+v", cfg.SMTP, cfg.Mail)
	}
	if cfg.Security.IPv6Prefix != 56 || cfg.Security.Challenge != "always" {
		t.Errorf("security: %+v", cfg.Security)
	}
	if d := DefaultConfig().Security; d.IPv6Prefix != 64 || d.Challenge != "auto" {
		t.Errorf("security defaults: ipv6_prefix %d, challenge %q", d.IPv6Prefix, d.Challenge)
	}
	if cfg.Location().String() != "Europe/London" {
		t.Errorf("location %v", cfg.Location())
	}
	var out bytes.Buffer
	if err := writeTOML(&out, cfg.Masked()); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out.String(), "from-env") || strings.Contains(out.String(), "0123456789abcdef0123") {
		t.Errorf("secrets not masked:\n%s", out.String())
	}
}

func TestConfigErrorsNameTheKey(t *testing.T) {
	for _, tc := range []struct {
		name, body, want string
	}{
		{"unknown key", "[server]\nlisten = \"127.0.0.1:1\"\nlisen = \"x\"\n", ":3: unknown key \"server.lisen\""},
		{"unknown table", "[sever]\nlisten = \"x\"\n", "unknown key"},
		{"syntax", "[server]\nlisten = \n", ":2:"},
		{"bad duration", "[security]\nconfirm_ttl = \"7 days\"\n", "not a duration"},
		{"bad listen", "[server]\nlisten = \"nope\"\n", "server.listen"},
		{"bad base_url", "[server]\nbase_url = \"localhost:8080\"\n", "server.base_url"},
		{"bad proxy", "[server]\ntrusted_proxies = [\"10.0.0.0/33\"]\n", "server.trusted_proxies"},
		{"bad cron", "[digest]\ndaily = \"0 25 * * *\"\n", "digest.daily"},
		{"cron with tz", "[digest]\nweekly = \"CRON_TZ=UTC 0 7 * * MON\"\n", "digest.weekly"},
		{"bad tz", "[digest]\ntimezone = \"Mars/Olympus\"\n", "digest.timezone"},
		{"bad frequency", "[digest]\ndefault_frequency = \"hourly\"\n", "digest.default_frequency"},
		{"bad max_posts", "[digest]\nmax_posts = 0\n", "digest.max_posts"},
		{"topics twice", "[digest]\ntopics = [\"Courts\", \"courts\"]\n", "digest.topics"},
		{"empty topic", "[digest]\ntopics = [\"\"]\n", "digest.topics"},
		{"topic with ;", "[digest]\ntopics = [\"Law;Order\"]\n", "digest.topics"},
		{"local_time not a bool", "[digest]\nlocal_time = \"yes\"\n", "local_time"},
		{"bad from", "[mail]\nfrom = \"not an address\"\n", "mail.from"},
		{"bad transport", "[mail]\ntransport = \"carrier-pigeon\"\n", "mail.transport"},
		{"bad tls", "[smtp]\ntls = \"ssl\"\n", "smtp.tls"},
		{"bad port", "[smtp]\nport = 70000\n", "smtp.port"},
		{"short token", "[admin]\ntoken = \"short\"\n", "admin.token"},
		{"bad rate", "[security]\nsubscribe_per_ip = \"lots\"\n", "security.subscribe_per_ip"},
		{"ipv6 prefix", "[security]\nipv6_prefix = 8\n", "security.ipv6_prefix"},
		{"challenge mode", "[security]\nchallenge = \"sometimes\"\n", "security.challenge"},
		{"bad feed url", "[[feeds]]\nurl = \"ftp://x\"\n", "feeds[0].url"},
		{"feed interval", "[[feeds]]\nurl = \"https://x.org/f\"\npoll_interval = \"1s\"\n", "feeds[0].poll_interval"},
		{"feed max_age", "[[feeds]]\nurl = \"https://x.org/f\"\nmax_age = \"30s\"\n", "feeds[0].max_age"},
		{"dkim without key", "[dkim]\ndomain = \"example.org\"\n", "dkim.private_key"},
		{"bad log level", "[log]\nlevel = \"loud\"\n", "log.level"},
		{"wrong type", "[smtp]\nport = \"587\"\n", "port"},
		{"pale accent", "[site]\naccent_color = \"#ffcc00\"\n", "site.accent_color: #ffcc00 has a contrast of 1.51:1 against white, below 4.5:1"},
		{"accent no colour", "[site]\naccent_color = \"blue\"\n", "site.accent_color"},
		{"relative logo", "[site]\nlogo_url = \"/logo.png\"\n", "site.logo_url"},
		{"unknown language", "[site]\nlanguage = \"tlh\"\n", "site.language: no language \"tlh\" (have de, en, es, fr)"},
		{"bad reply_to", "[mail]\nreply_to = \"nobody\"\n", "mail.reply_to"},
		{"bad content", "[digest]\ncontent = \"excerpt\"\n", "digest.content"},
		{"no templates_dir", "[digest]\ntemplates_dir = \"/nonexistent/herald-templates\"\n", "digest.templates_dir"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := writeConfig(t, tc.body)
			_, err := LoadConfig(p, noenv)
			if err == nil {
				t.Fatalf("want an error containing %q", tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not contain %q", err, tc.want)
			}
		})
	}
}

// TestCheckConfigNamesABrokenTemplate: check-config parses the
// templates of digest.templates_dir and names a broken one's file and
// line; a good one passes, and serve's templates use it.
func TestCheckConfigNamesABrokenTemplate(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "email"), 0o755); err != nil {
		t.Fatal(err)
	}
	broken := filepath.Join(dir, "email", "digest.html")
	if err := os.WriteFile(broken, []byte("{{template \"ehead\" .}}\n{{range .Posts}}\n{{.Title}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	p := writeConfig(t, fmt.Sprintf("[digest]\ntemplates_dir = %q\n", dir))
	code, _, errs := runCmd([]string{"check-config", "--config", p}, noenv)
	if code != 1 || !strings.Contains(errs, "digest.templates_dir: "+broken+":3:") {
		t.Fatalf("check-config = %d, %s", code, errs)
	}
	if err := os.WriteFile(broken, []byte("{{define \"footer\"}}{{end}}{{template \"ehead\" .}}<tr><td>MINE {{len .Posts}}</td></tr>{{template \"efoot\" .}}"), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, out, errs := runCmd([]string{"check-config", "--config", p}, noenv); code != 0 || !strings.Contains(out, dir) {
		t.Fatalf("check-config = %d, %s %s", code, out, errs)
	}
	cfg, err := LoadConfig(p, noenv)
	if err != nil {
		t.Fatal(err)
	}
	tpl, err := cfg.Templates()
	if err != nil {
		t.Fatal(err)
	}
	out, err := tpl.Email("de", "digest", templates.SampleEmail("digest"))
	if err != nil || !strings.Contains(out.HTML, "MINE 2") || !strings.Contains(out.Subject, "neue Beiträge") {
		t.Fatalf("the override is not used: %v %q", err, out.Subject)
	}
}

func TestParseRate(t *testing.T) {
	for in, want := range map[string]Rate{"10/h": {10, time.Hour}, "3/24h": {3, 24 * time.Hour}, "5/d": {5, 24 * time.Hour}, "0": {}, "100/1m": {100, time.Minute}} {
		got, err := ParseRate(in)
		if err != nil || got != want {
			t.Errorf("ParseRate(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"x", "10", "10/", "-1/h", "1/-1h", "a/h"} {
		if _, err := ParseRate(in); err == nil {
			t.Errorf("ParseRate(%q) accepted", in)
		}
	}
}

func TestCheckConfigCommand(t *testing.T) {
	var out, errb bytes.Buffer
	p := writeConfig(t, "[digest]\ndaily = \"not cron\"\n")
	if code := run(context.Background(), []string{"check-config", "--config", p}, &out, &errb, noenv); code != 1 {
		t.Fatalf("exit %d, want 1; stderr %s", code, errb.String())
	}
	if !strings.Contains(errb.String(), "digest.daily") {
		t.Fatalf("stderr does not name the key: %s", errb.String())
	}
	out.Reset()
	errb.Reset()
	p = writeConfig(t, "[admin]\ntoken = \"supersecrettoken123\"\n")
	if code := run(context.Background(), []string{"check-config", "--config", p}, &out, &errb, noenv); code != 0 {
		t.Fatalf("exit %d; stderr %s", code, errb.String())
	}
	if strings.Contains(out.String(), "supersecrettoken123") || !strings.Contains(out.String(), "config OK") {
		t.Fatalf("output: %s", out.String())
	}
	// HERALD_CONFIG names the file too.
	out.Reset()
	if code := run(context.Background(), []string{"check-config"}, &out, &errb, func(k string) string {
		if k == "HERALD_CONFIG" {
			return p
		}
		return ""
	}); code != 0 || !strings.Contains(out.String(), p) {
		t.Fatalf("HERALD_CONFIG ignored: %d %s", code, out.String())
	}
}

// digest.topics and digest.local_time come from the file or the
// environment, and reach the services.
func TestTopicsAndLocalTime(t *testing.T) {
	p := writeConfig(t, "[digest]\ntopics = [\"Prisons\", \"Courts\"]\nlocal_time = true\n")
	cfg, err := LoadConfig(p, noenv)
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.Digest.LocalTime || cfg.Topics().Len() != 2 || cfg.Topics().Names()[1] != "Courts" {
		t.Errorf("digest %+v", cfg.Digest)
	}
	env := map[string]string{"HERALD_DIGEST_TOPICS": `["Policing"]`, "HERALD_DIGEST_LOCAL_TIME": "false"}
	if cfg, err = LoadConfig(p, func(k string) string { return env[k] }); err != nil || cfg.Digest.LocalTime || cfg.Topics().Names()[0] != "Policing" {
		t.Errorf("from the environment: %+v %v", cfg.Digest, err)
	}
}
