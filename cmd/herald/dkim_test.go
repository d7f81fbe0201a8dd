package main

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-msgauth/dkim"

	"github.com/herald-dev/herald/internal/smtptest"
	"github.com/herald-dev/herald/internal/testmail"
	"github.com/herald-dev/herald/mailer"
)

func runCmd(args []string, getenv func(string) string) (int, string, string) {
	var out, errb bytes.Buffer
	code := run(context.Background(), args, &out, &errb, getenv)
	return code, out.String(), errb.String()
}

var quoted = regexp.MustCompile(`"([^"]*)"`)

func TestDKIMKeygen(t *testing.T) {
	dir := t.TempDir()
	key := filepath.Join(dir, "key.pem")
	code, out, errs := runCmd([]string{"dkim-keygen", "--domain", "Blog.Example.org", "--selector", "s2026", "--out", key}, noenv)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	st, err := os.Stat(key)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v %v", st, err)
	}
	pemBytes, _ := os.ReadFile(key)
	signer, err := mailer.NewSigner("blog.example.org", "s2026", pemBytes)
	if err != nil {
		t.Fatalf("the written key does not load: %v", err)
	}
	// The value line: ≤255-byte quoted strings that join to the record.
	var value string
	for _, l := range strings.Split(out, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), "value:"); ok {
			value = v
		}
	}
	parts := quoted.FindAllStringSubmatch(value, -1)
	if len(parts) < 2 {
		t.Fatalf("an RSA record must be split into several strings: %q", value)
	}
	var joined string
	for _, p := range parts {
		if len(p[1]) > 255 {
			t.Errorf("a string of %d bytes", len(p[1]))
		}
		joined += p[1]
	}
	if joined != signer.DNSRecord() {
		t.Errorf("printed record %q\nwant %q", joined, signer.DNSRecord())
	}
	for _, want := range []string{
		"name:  s2026._domainkey.blog.example.org", "s2026._domainkey.blog.example.org. 3600 IN TXT (",
		"[dkim]", `domain = "blog.example.org"`, `selector = "s2026"`, `private_key = "` + key + `"`,
		`"v=spf1 mx ~all"`, "_dmarc.blog.example.org", `"v=DMARC1; p=none;`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	// Never overwrites a key.
	if code, _, errs := runCmd([]string{"dkim-keygen", "--domain", "blog.example.org", "--out", key}, noenv); code != 1 || !strings.Contains(errs, "exists already") {
		t.Errorf("overwrite: exit %d %s", code, errs)
	}
	if after, _ := os.ReadFile(key); !bytes.Equal(after, pemBytes) {
		t.Error("the key file changed")
	}
	// Ed25519: one short string.
	ed := filepath.Join(dir, "ed.pem")
	code, out, errs = runCmd([]string{"dkim-keygen", "--domain", "blog.example.org", "--type", "ed25519", "--out", ed}, noenv)
	if code != 0 || !strings.Contains(out, `value: "v=DKIM1; k=ed25519; p=`) || !strings.Contains(out, "herald._domainkey.blog.example.org") {
		t.Fatalf("ed25519: %d %s %s", code, out, errs)
	}
	// Defaults from the config: domain from mail.from, SPF naming the relay.
	cfg := writeConfig(t, "[mail]\nfrom = \"Blog <news@mail.example.net>\"\ntransport = \"smtp\"\n[smtp]\nhost = \"relay.example.net\"\n")
	cwdKey := filepath.Join(dir, "c.pem")
	code, out, errs = runCmd([]string{"dkim-keygen", "--config", cfg, "--out", cwdKey}, noenv)
	if code != 0 || !strings.Contains(out, "herald._domainkey.mail.example.net") || !strings.Contains(out, `"v=spf1 a:relay.example.net mx ~all"`) {
		t.Fatalf("from the config: %d %s %s", code, out, errs)
	}
	// Mistakes on the command line: exit 2, nothing written.
	for _, args := range [][]string{
		{"dkim-keygen", "--out", filepath.Join(dir, "x.pem")},
		{"dkim-keygen", "--domain", "example.org", "--type", "dsa", "--out", filepath.Join(dir, "x.pem")},
		{"dkim-keygen", "--domain", "exa mple.org", "--out", filepath.Join(dir, "x.pem")},
		{"dkim-keygen", "--domain", "example.org", "extra"},
	} {
		if code, _, errs := runCmd(args, noenv); code != 2 {
			t.Errorf("%v: exit %d %s", args, code, errs)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "x.pem")); err == nil {
		t.Error("a failed keygen wrote a file")
	}
}

func TestDKIMConfigChecks(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.pem")
	os.WriteFile(bad, []byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"), 0o600)
	good := filepath.Join(dir, "good.pem")
	pemBytes, _, err := mailer.GenerateKey("ed25519")
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(good, pemBytes, 0o600)

	conf := func(from, domain, key string) string {
		return writeConfig(t, fmt.Sprintf("[store]\npath = %q\n[mail]\nfrom = %q\n[dkim]\ndomain = %q\nprivate_key = %q\n",
			filepath.Join(dir, "h.db"), from, domain, key))
	}
	for name, p := range map[string]string{
		"garbage key": conf("B <a@example.org>", "example.org", bad),
		"missing key": conf("B <a@example.org>", "example.org", filepath.Join(dir, "nope.pem")),
	} {
		for _, cmd := range []string{"check-config", "serve"} {
			code, _, errs := runCmd([]string{cmd, "--config", p}, noenv)
			if code != 1 || !strings.Contains(errs, "dkim.private_key") {
				t.Errorf("%s, %s: exit %d, stderr %s", name, cmd, code, errs)
			}
		}
	}
	// A good key on a domain that does not align with mail.from: a warning.
	code, _, errs := runCmd([]string{"check-config", "--config", conf("B <a@blog.example.org>", "other.example", good)}, noenv)
	if code != 0 || !strings.Contains(errs, "warning: dkim.domain \"other.example\" does not align") {
		t.Errorf("misaligned: exit %d, stderr %s", code, errs)
	}
	// The organisational domain aligns (relaxed alignment): no warning.
	code, _, errs = runCmd([]string{"check-config", "--config", conf("B <a@blog.example.org>", "example.org", good)}, noenv)
	if code != 0 || strings.Contains(errs, "align") {
		t.Errorf("aligned: exit %d, stderr %s", code, errs)
	}
}

// serve signs every email: a confirmation and a welcome, sent by the real
// wiring to a real SMTP server, verify with the published record.
func TestServeSignsWithDKIM(t *testing.T) {
	dir := t.TempDir()
	sm := smtptest.Start(t)
	keyPath := filepath.Join(dir, "dkim.pem")
	if code, _, errs := runCmd([]string{"dkim-keygen", "--domain", "example.org", "--selector", "sel", "--out", keyPath}, noenv); code != 0 {
		t.Fatal(errs)
	}
	pemBytes, _ := os.ReadFile(keyPath)
	signer, err := mailer.NewSigner("example.org", "sel", pemBytes)
	if err != nil {
		t.Fatal(err)
	}
	p := writeConfig(t, fmt.Sprintf(`[server]
listen = "127.0.0.1:0"
base_url = "http://herald.test"
[store]
path = %q
[site]
name = "Tëst Blog"
[mail]
from = "Tëst Blog <news@example.org>"
transport = "smtp"
retry_backoff = "100ms"
[smtp]
host = "127.0.0.1"
port = %d
tls = "none"
[dkim]
domain = "example.org"
selector = "sel"
private_key = %q
[log]
level = "error"
`, filepath.Join(dir, "h.db"), sm.Port(), keyPath))
	cfg, err := LoadConfig(p, noenv)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	a, err := newApp(ctx, cfg, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- a.serve(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	}()
	base := "http://" + a.ln.Addr().String()
	res, err := http.PostForm(base+"/subscribe", url.Values{"email": {"reader@example.com"}})
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	msgs := sm.WaitFor(t, 1, 10*time.Second)
	link := testmail.MustParse(t, msgs[0].Data).Link("/confirm?token=")
	u, _ := url.Parse(link)
	res, err = http.PostForm(base+"/confirm", url.Values{"token": {u.Query().Get("token")}})
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	msgs = sm.WaitFor(t, 2, 10*time.Second)
	for i, m := range msgs {
		vs, err := dkim.VerifyWithOptions(bytes.NewReader(m.Data), &dkim.VerifyOptions{
			LookupTXT: func(domain string) ([]string, error) {
				if domain != "sel._domainkey.example.org" {
					return nil, fmt.Errorf("no record at %s", domain)
				}
				return []string{signer.DNSRecord()}, nil
			},
		})
		if err != nil || len(vs) != 1 || vs[0].Err != nil || vs[0].Domain != "example.org" {
			t.Fatalf("message %d does not verify: %v %+v\n%s", i, err, vs, m.Data)
		}
		signed := map[string]bool{}
		for _, k := range vs[0].HeaderKeys {
			signed[strings.ToLower(k)] = true
		}
		for _, h := range []string{"from", "to", "subject", "date", "message-id", "list-unsubscribe", "list-unsubscribe-post"} {
			if !signed[h] {
				t.Errorf("message %d: %s not signed (h=%v)", i, h, vs[0].HeaderKeys)
			}
		}
	}
	if w := testmail.MustParse(t, msgs[1].Data); w.Header.Get("List-Unsubscribe") == "" {
		t.Error("the welcome has no List-Unsubscribe to sign")
	}
}
