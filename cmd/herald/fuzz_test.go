package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzLoadConfig: no config file makes LoadConfig panic; it returns a
// valid config or an error that says "config:", and a config it accepts
// prints (check-config) as TOML that loads again to the same values.
func FuzzLoadConfig(f *testing.F) {
	if b, err := os.ReadFile("../../config.example.toml"); err == nil {
		f.Add(b)
	}
	for _, s := range []string{
		"",
		"[server]\nlisten = \"127.0.0.1:8080\"\nbase_url = \"http://localhost:8080\"\ntrusted_proxies = [\"10.0.0.0/8\", \"::1\"]\n",
		"[[feeds]]\nurl = \"https://blog.example.org/feed/\"\npoll_interval = \"15m\"\n[[feeds]]\nurl = \"https://blog.example.org/feed/\"\n",
		"[digest]\ntimezone = \"Europe/London\"\ndaily = \"0 7 * * *\"\nweekly = \"CRON_TZ=UTC 0 7 * * MON\"\nmax_posts = 501\n",
		"[mail]\nfrom = \"Blog <a@b.org>\\r\\nBcc: x@y.org\"\ntransport = \"smtp\"\nretry_backoff = \"1ns\"\nbounce_limit = -1\n",
		"[smtp]\nport = 70000\ntls = \"ssl\"\nconnections = 0\nrate = -1.5\ntimeout = \"-1s\"\n",
		"[security]\nsecret = \"short\"\nconfirm_ttl = \"1s\"\nsubscribe_per_ip = \"10/0h\"\nconfirmations_per_address = \"x/24h\"\nconfirmations_per_hour = -1\n",
		"[dkim]\ndomain = \"example.org\"\nselector = \"\"\nprivate_key = \"/nonexistent.pem\"\n",
		"[log]\nformat = \"xml\"\nlevel = \"trace\"\n[admin]\ntoken = \"abc\"\n",
		"[server]\nlisten = 8080\n",
		"typo = 1\n[server]\nlistne = \"x\"\n",
		"[server\nlisten = \"",
		"\xef\xbb\xbf[site]\nname = \"\\u0000\"\n",
		"site.name = \"A\\nB\"\nsite.url = \"javascript:alert(1)\"\n",
		"[[feeds]]\nurl = \"http://a.example/\"\npoll_interval = \"9223372036854775807ns\"\n",
	} {
		f.Add([]byte(s))
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, body []byte) {
		p := filepath.Join(dir, "herald.toml")
		if err := os.WriteFile(p, body, 0o600); err != nil {
			t.Fatal(err)
		}
		cfg, err := LoadConfig(p, noenv)
		if err != nil {
			if cfg != nil {
				t.Fatalf("both a config and an error: %v", err)
			}
			if !strings.HasPrefix(err.Error(), "config: ") {
				t.Fatalf("error without the config: prefix: %v", err)
			}
			return
		}
		if err := cfg.Validate(); err != nil {
			t.Fatalf("LoadConfig returned a config that does not validate: %v", err)
		}
		_ = cfg.Warnings()
		_ = cfg.Location()
		var out bytes.Buffer
		if err := writeTOML(&out, cfg); err != nil {
			t.Fatalf("an accepted config does not print: %v", err)
		}
		p2 := filepath.Join(dir, "printed.toml")
		if err := os.WriteFile(p2, out.Bytes(), 0o600); err != nil {
			t.Fatal(err)
		}
		again, err := LoadConfig(p2, noenv)
		if err != nil {
			t.Fatalf("the printed config does not load: %v\n%s", err, out.String())
		}
		var out2 bytes.Buffer
		_ = writeTOML(&out2, again)
		if out.String() != out2.String() {
			t.Fatalf("the printed config loads to other values:\n%s\n---\n%s", out.String(), out2.String())
		}
	})
}
