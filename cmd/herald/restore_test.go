package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/herald-dev/herald/store"
)

func TestRestoreCommand(t *testing.T) {
	dir := t.TempDir()
	live := filepath.Join(dir, "herald.db")
	cfgPath := writeConfig(t, fmt.Sprintf("[store]\npath = %q\n", live))
	db, err := store.Open(context.Background(), filepath.Join(t.TempDir(), "src.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	src := filepath.Join(dir, "backup.db")
	f, _ := os.Create(src)
	if _, err := db.Backup(context.Background(), f); err != nil {
		t.Fatal(err)
	}
	f.Close()
	db.Close()
	junk := filepath.Join(dir, "junk.db")
	os.WriteFile(junk, []byte("junk"), 0o600)

	if code, _, errs := runCmd([]string{"restore", "--config", cfgPath}, noenv); code != 2 || !strings.Contains(errs, "want the backup FILE") {
		t.Fatalf("no FILE: exit %d %s", code, errs)
	}
	if code, out, errs := runCmd([]string{"restore", "--config", cfgPath, "--check", src}, noenv); code != 0 || !strings.Contains(out, "sound herald database: schema") {
		t.Fatalf("--check: exit %d %s %s", code, out, errs)
	}
	if _, err := os.Stat(live); err == nil {
		t.Fatal("--check created the database")
	}
	if code, _, errs := runCmd([]string{"restore", "--config", cfgPath, junk}, noenv); code != 1 || !strings.Contains(errs, "not a valid database") {
		t.Fatalf("junk: exit %d %s", code, errs)
	}
	code, out, errs := runCmd([]string{"restore", "--config", cfgPath, src}, noenv)
	if code != 0 || !strings.Contains(out, "restored "+src+" to "+live) {
		t.Fatalf("restore: exit %d %s %s", code, out, errs)
	}
	if _, err := store.Verify(context.Background(), live); err != nil {
		t.Fatal(err)
	}
}

func TestHealthcheckCommand(t *testing.T) {
	dir := t.TempDir()
	cfgPath := writeConfig(t, fmt.Sprintf("[server]\nlisten = \"127.0.0.1:0\"\n[store]\npath = %q\n", filepath.Join(dir, "h.db")))
	cfg, err := LoadConfig(cfgPath, noenv)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	a, err := newApp(ctx, cfg, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		t.Fatal(err)
	}
	addr := a.ln.Addr().String()
	done := make(chan error, 1)
	go func() { done <- a.serve(ctx) }()
	// The config says port 0; the check names the real address.
	if code, out, errs := runCmd([]string{"healthcheck", "--url", "http://" + addr + "/healthz"}, noenv); code != 0 || !strings.Contains(out, "healthy") {
		t.Fatalf("healthcheck of a running herald: exit %d %s %s", code, out, errs)
	}
	cancel()
	<-done
	if code, _, errs := runCmd([]string{"healthcheck", "--url", "http://" + addr + "/healthz"}, noenv); code != 1 || !strings.Contains(errs, "unhealthy") {
		t.Fatalf("healthcheck of a stopped herald: exit %d %s", code, errs)
	}
	for listen, want := range map[string]string{"0.0.0.0:8080": "127.0.0.1:8080", ":9000": "127.0.0.1:9000", "[::]:80": "[::1]:80", "10.0.0.5:80": "10.0.0.5:80"} {
		if got := localAddr(listen); got != want {
			t.Errorf("localAddr(%q) = %q, want %q", listen, got, want)
		}
	}
}

func TestVersionShowsSchema(t *testing.T) {
	code, out, _ := runCmd([]string{"version"}, noenv)
	if code != 0 || !strings.Contains(out, fmt.Sprintf("database schema %d", store.SchemaVersion())) || !strings.Contains(out, "go1.") {
		t.Fatalf("version: %d %q", code, out)
	}
}
