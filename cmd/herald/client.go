package main

// The client commands: they talk to a running herald through its admin
// API (the one client, package api), with the token and address from the
// same config as the server, or --server and HERALD_ADMIN_TOKEN.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"

	"github.com/herald-dev/herald"
	"github.com/herald-dev/herald/api"
	"github.com/herald-dev/herald/backup"
	"github.com/herald-dev/herald/store"
)

type commandFunc = func(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error

// clientCommand returns the client command called name.
func clientCommand(name string) (commandFunc, bool) {
	switch name {
	case "subscribers":
		return cmdSubscribers, true
	case "backup":
		return cmdBackup, true
	case "send":
		return cmdSend, true
	case "dkim-keygen": // not a client, but dispatched with them
		return cmdDKIMKeygen, true
	}
	return nil, false
}

// clientFlags are the flags every client command has.
type clientFlags struct {
	config *string
	server *string
}

func addClientFlags(fs *flag.FlagSet, getenv func(string) string) *clientFlags {
	return &clientFlags{
		config: configFile(fs, getenv),
		server: fs.String("server", "", "herald's address (default: server.base_url from the config)"),
	}
}

// parseArgs parses flags that may come before, between or after the
// positional arguments, and returns the positional ones.
func parseArgs(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, usageError{err}
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

func (cf *clientFlags) client(getenv func(string) string) (*api.Client, error) {
	cfg, err := LoadConfig(*cf.config, getenv)
	if err != nil {
		return nil, err
	}
	base := cfg.Server.BaseURL
	if *cf.server != "" {
		base = *cf.server
		if !strings.Contains(base, "://") {
			base = "http://" + base
		}
		if u, err := url.Parse(base); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, usageError{fmt.Errorf("--server: want an http(s) URL like http://127.0.0.1:8080, got %q", *cf.server)}
		}
	}
	if cfg.Admin.Token == "" {
		return nil, errors.New("no admin token: set admin.token in the config (--config) or HERALD_ADMIN_TOKEN")
	}
	return &api.Client{
		BaseURL:   strings.TrimRight(base, "/"),
		Token:     cfg.Admin.Token,
		UserAgent: "herald/" + version,
		HTTP: &http.Client{Transport: &http.Transport{
			Proxy:               http.ProxyFromEnvironment,
			DialContext:         (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			TLSHandshakeTimeout: 10 * time.Second,
			IdleConnTimeout:     90 * time.Second,
			// No response header timeout: an import answers when it is done.
		}},
	}, nil
}

// explain says what went wrong with a call to the server, in the
// command line's words.
func explain(ctx context.Context, c *api.Client, err error) error {
	var ae *api.Error
	switch {
	case err == nil:
		return nil
	case ctx.Err() != nil:
		return ctx.Err()
	case errors.As(err, &ae) && ae.Status == http.StatusUnauthorized:
		return errors.New("the admin token was refused (check admin.token / HERALD_ADMIN_TOKEN)")
	case errors.As(err, &ae) && ae.Status == http.StatusForbidden:
		return errors.New("the admin API is disabled on the server: set admin.token")
	case errors.As(err, &ae):
		return err
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		return fmt.Errorf("cannot reach herald at %s: is `herald serve` running? (%v)", c.BaseURL, ue.Err)
	}
	return err
}

const subscribersUsage = `usage:
  herald subscribers export [--out FILE]
  herald subscribers import FILE [--confirmed] [--json]
  herald subscribers update EMAIL [--name N] [--frequency F] [--topics "A;B"] [--timezone Z]
                                  [--pause-until TIME | --resume] [--language L]`

func cmdSubscribers(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	if len(args) == 0 {
		return usageError{errors.New("want export, import or update\n" + subscribersUsage)}
	}
	switch args[0] {
	case "export":
		return cmdExport(ctx, args[1:], stdout, stderr, getenv)
	case "import":
		return cmdImport(ctx, args[1:], stdout, stderr, getenv)
	case "update":
		return cmdUpdate(ctx, args[1:], stdout, stderr, getenv)
	case "help", "-h", "--help":
		fmt.Fprintln(stdout, subscribersUsage)
		return nil
	}
	return usageError{fmt.Errorf("unknown subcommand %q\n%s", args[0], subscribersUsage)}
}

func cmdExport(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	fs := flag.NewFlagSet("subscribers export", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cf := addClientFlags(fs, getenv)
	out := fs.String("out", "", "write the CSV to FILE (default: standard output)")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usageError{fmt.Errorf("unexpected argument %q (write to a file with --out FILE)", pos[0])}
	}
	c, err := cf.client(getenv)
	if err != nil {
		return err
	}
	res, err := c.ExportCSV(ctx)
	if err != nil {
		return explain(ctx, c, err)
	}
	defer res.Body.Close()
	if *out == "" || *out == "-" {
		if _, err := io.Copy(stdout, res.Body); err != nil {
			return fmt.Errorf("the export was cut off: %w", err)
		}
		return nil
	}
	lines := &lineCounter{}
	n, err := writeAtomic(*out, io.TeeReader(res.Body, lines), nil)
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "exported %d subscribers to %s (%d bytes)\n", max(lines.n-1, 0), *out, n)
	return nil
}

type lineCounter struct{ n int }

func (l *lineCounter) Write(p []byte) (int, error) {
	l.n += bytes.Count(p, []byte{'\n'})
	return len(p), nil
}

func cmdImport(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	fs := flag.NewFlagSet("subscribers import", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cf := addClientFlags(fs, getenv)
	confirmed := fs.Bool("confirmed", false, "new readers are confirmed at once, without the opt-in email (they opted in elsewhere)")
	asJSON := fs.Bool("json", false, "print the server's report as JSON")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageError{errors.New("want one FILE (\"-\" for standard input)\n" + subscribersUsage)}
	}
	var body io.Reader
	name := pos[0]
	if name == "-" {
		body = os.Stdin
	} else {
		f, err := os.Open(name)
		if err != nil {
			return err
		}
		defer f.Close()
		if st, err := f.Stat(); err == nil && st.IsDir() {
			return fmt.Errorf("%s is a directory, not a CSV file", name)
		}
		body = f
	}
	c, err := cf.client(getenv)
	if err != nil {
		return err
	}
	rep, err := c.ImportCSV(ctx, body, *confirmed)
	if rep != nil {
		// A whole import, or what one that stopped part-way did first.
		if *asJSON {
			enc := json.NewEncoder(stdout)
			enc.SetIndent("", "  ")
			_ = enc.Encode(rep)
		} else {
			printReport(stdout, name, rep)
		}
	}
	if err != nil {
		return explain(ctx, c, err)
	}
	if rep.InvalidTotal > 0 {
		return fmt.Errorf("%d of %d rows were not imported", rep.InvalidTotal, rep.Rows)
	}
	return nil
}

// cmdUpdate changes one reader through PATCH /api/v1/subscribers/{email},
// as the admin UI's subscriber page does: only the flags given change.
func cmdUpdate(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	fs := flag.NewFlagSet("subscribers update", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cf := addClientFlags(fs, getenv)
	name := fs.String("name", "", "the reader's name (\"\" clears it)")
	freq := fs.String("frequency", "", "instant, daily or weekly")
	topics := fs.String("topics", "", `the reader's topics, separated by ";" ("": every post)`)
	zone := fs.String("timezone", "", `an IANA time zone such as Europe/London ("": the site's)`)
	until := fs.String("pause-until", "", "pause until this RFC 3339 time (in the future)")
	resume := fs.Bool("resume", false, "end a pause now")
	lang := fs.String("language", "", "the reader's language: en, de, fr, es (\"\" is the site's)")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageError{errors.New("want one EMAIL\n" + subscribersUsage)}
	}
	var p herald.SubscriberPatch
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if set["name"] {
		p.Name = name
	}
	if set["frequency"] {
		p.Frequency = freq
	}
	if set["topics"] {
		ts := []string{}
		for _, t := range strings.Split(*topics, ";") {
			if t = strings.TrimSpace(t); t != "" {
				ts = append(ts, t)
			}
		}
		p.Topics = &ts
	}
	if set["timezone"] {
		p.Timezone = zone
	}
	if set["language"] {
		p.Language = lang
	}
	switch {
	case set["pause-until"] && *resume:
		return usageError{errors.New("--pause-until and --resume: one or the other")}
	case set["pause-until"]:
		t, err := time.Parse(time.RFC3339, *until)
		if err != nil {
			return usageError{fmt.Errorf("--pause-until %q: want an RFC 3339 time such as 2030-01-02T07:00:00Z", *until)}
		}
		p.PausedUntil = herald.OptionalTime{Set: true, Time: &t}
	case *resume:
		p.PausedUntil = herald.OptionalTime{Set: true}
	}
	if p.Name == nil && p.Frequency == nil && p.Topics == nil && p.Timezone == nil && !p.PausedUntil.Set && p.Language == nil {
		return usageError{errors.New("nothing to change: give --name, --frequency, --topics, --timezone, --pause-until, --resume or --language\n" + subscribersUsage)}
	}
	c, err := cf.client(getenv)
	if err != nil {
		return err
	}
	sub, err := c.UpdateSubscriber(ctx, pos[0], p)
	if err != nil {
		return explain(ctx, c, err)
	}
	topicsShown := "every post"
	if len(sub.Topics) > 0 {
		topicsShown = strings.Join(sub.Topics, "; ")
	}
	zoneShown := sub.Timezone
	if zoneShown == "" {
		zoneShown = "the site's"
	}
	fmt.Fprintf(stdout, "%s: %s, %s, name %q; topics: %s; time zone: %s", sub.Email, sub.Status, sub.Frequency, sub.Name, topicsShown, zoneShown)
	if sub.PausedUntil != nil {
		fmt.Fprintf(stdout, "; paused until %s", sub.PausedUntil.UTC().Format(time.RFC3339))
	}
	langShown := sub.Language
	if langShown == "" {
		langShown = "the site's"
	}
	fmt.Fprintf(stdout, "; language: %s\n", langShown)
	return nil
}

func printReport(w io.Writer, name string, rep *herald.ImportReport) {
	fmt.Fprintf(w, "%s: %d rows: %d added", name, rep.Rows, rep.Added)
	if rep.Confirmations > 0 {
		fmt.Fprintf(w, " (%d sent a confirmation email)", rep.Confirmations)
	}
	fmt.Fprintf(w, ", %d updated, %d skipped, %d invalid\n", rep.Updated, rep.Skipped, rep.InvalidTotal)
	for _, p := range rep.Invalid {
		fmt.Fprintf(w, "  line %d: %s\n", p.Line, p.Error)
	}
	if more := rep.InvalidTotal - len(rep.Invalid); more > 0 {
		fmt.Fprintf(w, "  … and %d more\n", more)
	}
}

func cmdBackup(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	fs := flag.NewFlagSet("backup", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cf := addClientFlags(fs, getenv)
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageError{errors.New("want the FILE to write: herald backup FILE")}
	}
	c, err := cf.client(getenv)
	if err != nil {
		return err
	}
	res, err := c.Backup(ctx)
	if err != nil {
		return explain(ctx, c, err)
	}
	defer res.Body.Close()
	n, err := writeAtomic(pos[0], res.Body, checkBolt)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "backup written to %s (%d bytes)\n", pos[0], n)
	return nil
}

// checkBolt checks a downloaded backup the way restore will.
func checkBolt(path string) error {
	if _, err := store.Verify(context.Background(), path); err != nil {
		return fmt.Errorf("the backup is not a sound herald database: %w", err)
	}
	return nil
}

// writeAtomic writes r to path whole or not at all (see backup.WriteFile).
func writeAtomic(path string, r io.Reader, check func(string) error) (int64, error) {
	return backup.WriteFile(path, func(w io.Writer) (int64, error) {
		n, err := io.Copy(w, r)
		if err != nil {
			return n, fmt.Errorf("the download was cut off after %d bytes: %w", n, err)
		}
		return n, nil
	}, check)
}

func cmdSend(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	fs := flag.NewFlagSet("send", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cf := addClientFlags(fs, getenv)
	freq := fs.String("frequency", "", "instant, daily or weekly (default: the server's digest.default_frequency)")
	dryRun := fs.Bool("dry-run", false, "go through the readers without sending")
	wait := fs.Bool("wait", false, "show a progress bar until the run ends; exit 1 if it failed")
	interval := 500 * time.Millisecond
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usageError{fmt.Errorf("unexpected argument %q", pos[0])}
	}
	switch *freq {
	case "", "instant", "daily", "weekly":
	default:
		return usageError{fmt.Errorf("--frequency: want instant, daily or weekly, got %q", *freq)}
	}
	c, err := cf.client(getenv)
	if err != nil {
		return err
	}
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	started, err := c.StartRun(rctx, api.RunRequest{Frequency: *freq, DryRun: *dryRun})
	if err != nil {
		return explain(ctx, c, err)
	}
	if started.ID == 0 || started.Run == nil {
		return errors.New("unreadable answer to POST /api/v1/runs")
	}
	label := fmt.Sprintf("run %d", started.ID)
	if f := started.Run.Frequency; f != "" {
		label += " (" + string(f)
		if *dryRun {
			label += ", dry run"
		}
		label += ")"
	}
	if !*wait {
		fmt.Fprintf(stdout, "started %s; follow it with GET /api/v1/runs/%d\n", label, started.ID)
		return nil
	}
	return waitRun(ctx, c, started.ID, label, interval, stdout, stderr)
}

// waitRun polls a run until it ends, with a progress bar on stderr.
func waitRun(ctx context.Context, c *api.Client, id uint64, label string, interval time.Duration, stdout, stderr io.Writer) error {
	bar := progressbar.NewOptions64(-1,
		progressbar.OptionSetWriter(stderr),
		progressbar.OptionSetDescription(label),
		progressbar.OptionShowCount(),
		progressbar.OptionSetElapsedTime(true),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionSetRenderBlankState(true),
		progressbar.OptionSetWidth(30),
	)
	var lastErr error
	var failingSince time.Time
	for {
		rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		run, err := c.Run(rctx, id)
		cancel()
		var ae *api.Error
		switch {
		case ctx.Err() != nil:
			_ = bar.Exit()
			fmt.Fprintln(stderr)
			return fmt.Errorf("stopped waiting; %s goes on on the server", label)
		case errors.As(err, &ae):
			_ = bar.Exit()
			fmt.Fprintln(stderr)
			return explain(ctx, c, err)
		case err != nil:
			// The server may be restarting; the run resumes when it is back.
			if failingSince.IsZero() {
				failingSince = time.Now()
			}
			lastErr = err
			if time.Since(failingSince) > 30*time.Second {
				_ = bar.Exit()
				fmt.Fprintln(stderr)
				return explain(ctx, c, lastErr)
			}
		default:
			failingSince = time.Time{}
			if run.Total > 0 && bar.GetMax64() != int64(run.Total) {
				bar.ChangeMax64(int64(run.Total))
			}
			_ = bar.Set64(int64(run.Sent + run.Failed + run.Skipped))
			switch run.State {
			case herald.RunDone, herald.RunFailed:
				if run.State == herald.RunDone {
					_ = bar.Finish()
				} else {
					_ = bar.Exit()
				}
				fmt.Fprintln(stderr)
				fmt.Fprintf(stdout, "%s %s: %d sent, %d failed, %d skipped of %d\n", label, run.State, run.Sent, run.Failed, run.Skipped, run.Total)
				for _, f := range run.Failures {
					fmt.Fprintf(stdout, "  %s: %s\n", f.Email, f.Error)
				}
				if run.State == herald.RunFailed {
					msg := run.Error
					if msg == "" {
						msg = "see the server's log"
					}
					return fmt.Errorf("%s failed: %s", label, msg)
				}
				return nil
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(interval):
		}
	}
}
