package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/herald-dev/herald/store"
)

// cmdRestore checks a backup and, unless --check, puts it in place of the
// configured database. herald must be stopped: a database held by a
// running herald is refused, never swapped under it.
func cmdRestore(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	fs := flag.NewFlagSet("restore", flag.ContinueOnError)
	fs.SetOutput(stderr)
	file := configFile(fs, getenv)
	checkOnly := fs.Bool("check", false, "only check the backup; change nothing")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageError{errors.New("want the backup FILE: herald restore [--config FILE] [--check] FILE")}
	}
	src := pos[0]
	cfg, err := LoadConfig(*file, getenv)
	if err != nil {
		return err
	}
	cfg.resolvePaths()
	if *checkOnly {
		info, err := store.Verify(ctx, src)
		if err != nil {
			return restoreError(err, src)
		}
		fmt.Fprintf(stdout, "%s is a sound herald database: %s\n", src, describeInfo(info))
		return nil
	}
	info, kept, err := store.Restore(ctx, src, cfg.Store.Path)
	if err != nil {
		return restoreError(err, cfg.Store.Path)
	}
	fmt.Fprintf(stdout, "restored %s to %s: %s\n", src, abs(cfg.Store.Path), describeInfo(info))
	if kept != "" {
		fmt.Fprintf(stdout, "the database it replaced is kept as %s\n", kept)
	}
	if info.Schema < store.SchemaVersion() {
		fmt.Fprintf(stdout, "herald serve will upgrade it from schema %d to %d when it starts\n", info.Schema, store.SchemaVersion())
	}
	fmt.Fprintln(stdout, "start herald again to serve it")
	return nil
}

func describeInfo(info store.Info) string {
	s := fmt.Sprintf("schema %d, %d subscribers, %d runs", info.Schema, info.Subscribers, info.Runs)
	if info.OpenRuns > 0 {
		s += fmt.Sprintf(" (%d unfinished: it resumes when herald starts)", info.OpenRuns)
	}
	return s
}

func restoreError(err error, path string) error {
	if errors.Is(err, store.ErrLocked) {
		return fmt.Errorf("%s is in use by a running herald: stop it first (e.g. systemctl stop herald, docker compose stop herald), then restore", path)
	}
	return err
}
