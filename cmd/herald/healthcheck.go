package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"
)

// cmdHealthcheck asks the local server's /healthz and exits 0 only on 200:
// the container health check, in an image that has no curl.
func cmdHealthcheck(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	fs := flag.NewFlagSet("healthcheck", flag.ContinueOnError)
	fs.SetOutput(stderr)
	file := configFile(fs, getenv)
	target := fs.String("url", "", "URL to check (default: /healthz on server.listen)")
	if err := fs.Parse(args); err != nil {
		return usageError{err}
	}
	if *target == "" {
		cfg, err := LoadConfig(*file, getenv)
		if err != nil {
			return err
		}
		*target = "http://" + localAddr(cfg.Server.Listen) + "/healthz"
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, *target, nil)
	if err != nil {
		return usageError{fmt.Errorf("--url: %w", err)}
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("unhealthy: %w", err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(res.Body, 512))
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("unhealthy: %s answered %d %s", *target, res.StatusCode, body)
	}
	fmt.Fprintf(stdout, "healthy: %s\n", *target)
	return nil
}

// localAddr turns a listen address into one to dial on this machine: a
// wildcard host means loopback.
func localAddr(listen string) string {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return listen
	}
	switch host {
	case "", "0.0.0.0":
		host = "127.0.0.1"
	case "::":
		host = "::1"
	}
	return net.JoinHostPort(host, port)
}
