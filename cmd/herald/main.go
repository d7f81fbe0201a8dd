// Command herald is the whole service: the HTTP server, the feed poller, the
// scheduler and the sender (`herald serve`), and the clients that talk to a
// running server's admin API.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"syscall"
	_ "time/tzdata" // time zones work on machines without /usr/share/zoneinfo

	"github.com/herald-dev/herald/store"
)

// Set with -ldflags "-X main.version=... -X main.commit=...".
var (
	version = "dev"
	commit  = ""
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr, os.Getenv)
	stop()
	os.Exit(code)
}

const usage = `herald: every blog post, by email.

Usage:
  herald serve [--config FILE]          run the server, poller, scheduler and sender
  herald check-config [--config FILE]   validate the config and print the effective values
  herald version                        print version, commit, Go version and database schema
  herald restore [--config FILE] [--check] FILE
                                        check a backup and put it in place (herald stopped)
  herald healthcheck [--config FILE] [--url URL]
                                        exit 0 when the local server's /healthz answers 200
  herald dkim-keygen [--domain D] [--selector S] [--type rsa|ed25519] [--out FILE]
                                        write a DKIM key; print the DNS records to publish

Clients of a running server (admin API; token from admin.token or
HERALD_ADMIN_TOKEN, address from server.base_url or --server URL):
  herald send [--frequency F] [--dry-run] [--wait]    start a digest run now
  herald subscribers export [--out FILE]              subscribers as CSV
  herald subscribers import FILE [--confirmed]        add or update from CSV
  herald subscribers update EMAIL [--name N] [--frequency F] [--topics "A;B"]
                     [--timezone Z] [--pause-until TIME | --resume] [--language L]
                                                      change one reader
  herald backup FILE                                  a consistent copy of the database

The config file may also be named by HERALD_CONFIG; without one, herald runs
on built-in defaults (127.0.0.1:8080, ./data/herald.db, mail to ./data/outbox).
`

// run is main without the process: tests call it directly.
func run(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	cmd, rest := args[0], args[1:]
	var err error
	switch cmd {
	case "serve":
		err = cmdServe(ctx, rest, stdout, stderr, getenv)
	case "check-config":
		err = cmdCheckConfig(rest, stdout, stderr, getenv)
	case "restore":
		err = cmdRestore(ctx, rest, stdout, stderr, getenv)
	case "healthcheck":
		err = cmdHealthcheck(ctx, rest, stdout, stderr, getenv)
	case "version", "--version", "-v":
		printVersion(stdout)
	case "help", "--help", "-h":
		fmt.Fprint(stdout, usage)
	default:
		if c, ok := clientCommand(cmd); ok {
			err = c(ctx, rest, stdout, stderr, getenv)
			break
		}
		fmt.Fprintf(stderr, "herald: unknown command %q\n\n%s", cmd, usage)
		return 2
	}
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		var ue usageError
		if errors.As(err, &ue) {
			fmt.Fprintf(stderr, "herald %s: %v\n", cmd, err)
			return 2
		}
		fmt.Fprintf(stderr, "herald %s: %v\n", cmd, err)
		return 1
	}
	return 0
}

// usageError is a mistake on the command line (exit 2).
type usageError struct{ error }

func printVersion(w io.Writer) {
	rev := commit
	if rev == "" {
		if bi, ok := debug.ReadBuildInfo(); ok {
			for _, s := range bi.Settings {
				if s.Key == "vcs.revision" {
					rev = s.Value
				}
			}
		}
	}
	if rev == "" {
		rev = "unknown"
	}
	fmt.Fprintf(w, "herald %s (commit %s, %s, %s/%s), database schema %d\n", version, rev, runtime.Version(), runtime.GOOS, runtime.GOARCH, store.SchemaVersion())
}

// configFlag adds --config and resolves it against HERALD_CONFIG.
func configFile(fs *flag.FlagSet, getenv func(string) string) *string {
	def := getenv("HERALD_CONFIG")
	return fs.String("config", def, "config file (TOML); default: $HERALD_CONFIG, else built-in defaults")
}

func cmdCheckConfig(args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	fs := flag.NewFlagSet("check-config", flag.ContinueOnError)
	fs.SetOutput(stderr)
	file := configFile(fs, getenv)
	if err := fs.Parse(args); err != nil {
		return usageError{err}
	}
	cfg, err := LoadConfig(*file, getenv)
	if err != nil {
		return err
	}
	for _, w := range cfg.Warnings() {
		fmt.Fprintf(stderr, "warning: %s\n", w)
	}
	src := cfg.File
	if src == "" {
		src = "built-in defaults"
	}
	fmt.Fprintf(stdout, "# config OK (%s); effective values, secrets masked:\n", src)
	return writeTOML(stdout, cfg.Masked())
}
