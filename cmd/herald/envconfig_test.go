package main

import (
	"strings"
	"testing"
	"time"
)

func envOf(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

// A container is configured without a file: every key has a variable, the
// environment wins over the file, and a bad value names its variable.
func TestConfigFromEnvironment(t *testing.T) {
	p := writeConfig(t, "[server]\nlisten = \"127.0.0.1:9999\"\n[smtp]\nport = 2525\n")
	cfg, err := LoadConfig(p, envOf(map[string]string{
		"HERALD_SERVER_LISTEN":        "0.0.0.0:8080",
		"HERALD_SERVER_BASE_URL":      "https://news.example.org",
		"HERALD_SERVER_TLS":           "auto",
		"HERALD_SERVER_TLS_DOMAINS":   `["news.example.org"]`,
		"HERALD_MAIL_TRANSPORT":       "smtp",
		"HERALD_SMTP_HOST":            "mailpit",
		"HERALD_SMTP_PORT":            "1025",
		"HERALD_SMTP_PASSWORD":        `"quoted" \ 123`,
		"HERALD_SITE_NAME":            "true", // a string, even if it reads as TOML
		"HERALD_STORE_BACKUP_EVERY":   "24h",
		"HERALD_MAIL_WELCOME":         "false",
		"HERALD_FEEDS":                `[{url = "https://blog.example.org/feed/"}]`,
		"HERALD_LONG":                 "1", // not a table: ignored
		"HERALD_SECURITY_CONFIRM_TTL": "48h",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Server.Listen != "0.0.0.0:8080" || cfg.Server.TLS != "auto" || len(cfg.Server.TLSDomains) != 1 ||
		cfg.SMTP.Host != "mailpit" || cfg.SMTP.Port != 1025 || cfg.SMTP.Password != `"quoted" \ 123` ||
		cfg.Site.Name != "true" || cfg.Store.BackupEvery.Duration != 24*time.Hour || cfg.Mail.Welcome ||
		len(cfg.Feeds) != 1 || cfg.Feeds[0].PollInterval.Duration != defaultPollInterval ||
		cfg.Security.ConfirmTTL.Duration != 48*time.Hour {
		t.Fatalf("environment not applied: %+v", cfg)
	}
	for name, val := range map[string]string{
		"HERALD_SMTP_PORT":          "lots",
		"HERALD_MAIL_WELCOME":       "maybe",
		"HERALD_STORE_BACKUP_EVERY": "daily",
		"HERALD_SERVER_TLS_DOMAINS": "news.example.org",
	} {
		_, err := LoadConfig("", envOf(map[string]string{name: val}))
		if err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("%s=%q: %v, want an error naming the variable", name, val, err)
		}
	}
}
