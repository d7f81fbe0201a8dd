// Command websubhub runs the test WebSub hub of package websubhub as a
// process of its own, on loopback, for herald's whole-process tests:
//
//	websubhub [-listen 127.0.0.1:0] [-signature sha256] [-allow-prefix URL]
//
// It prints "websubhub listening on URL" once it serves, and runs until
// SIGINT or SIGTERM.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/herald-dev/herald/internal/websubhub"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "websubhub:", err)
		os.Exit(1)
	}
}

func run() error {
	listen := flag.String("listen", "127.0.0.1:0", "address to listen on")
	sig := flag.String("signature", "sha256", "X-Hub-Signature method: sha1, sha256, sha384 or sha512")
	allow := flag.String("allow-prefix", "", "take subscriptions only to topics starting with this (others are denied)")
	backoff := flag.Duration("retry-backoff", time.Second, "first wait before a failed delivery is tried again")
	flag.Parse()

	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	self := "http://" + ln.Addr().String() + "/"
	opts := websubhub.Options{
		URL: self, Signature: *sig, RetryBackoff: *backoff,
		Logger: slog.New(slog.NewTextHandler(os.Stderr, nil)),
	}
	if *allow != "" {
		prefix := *allow
		opts.Allow = func(topic string) bool { return strings.HasPrefix(topic, prefix) }
	}
	hub := websubhub.New(opts)
	srv := &http.Server{Handler: hub, ReadHeaderTimeout: 10 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	fmt.Printf("websubhub listening on %s\n", self)
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	shCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(shCtx)
	hub.Close()
	if err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
