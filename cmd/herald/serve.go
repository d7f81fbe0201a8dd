package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/mail"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/herald-dev/herald"
	"github.com/herald-dev/herald/adminui"
	"github.com/herald-dev/herald/bounce"
	"github.com/herald-dev/herald/challenge"
	"github.com/herald-dev/herald/digest"
	"github.com/herald-dev/herald/feed"
	"github.com/herald-dev/herald/handlers"
	"github.com/herald-dev/herald/mailer"
	"github.com/herald-dev/herald/metrics"
	"github.com/herald-dev/herald/posts"
	"github.com/herald-dev/herald/store"
	"github.com/herald-dev/herald/subscription"
)

func newLogger(cfg *Config, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.Log.Level))
	opts := &slog.HandlerOptions{Level: level}
	if cfg.Log.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// app is everything serve wires together.
type app struct {
	cfg *Config
	log *slog.Logger
	db  *store.DB
	tr  herald.Transport
	// routes reports each relay or provider (nil for files).
	routes   herald.RouteReporter
	tracker  *bounce.Tracker
	verp     *bounce.VERP
	webhooks *bounce.Webhooks
	mailbox  *bounce.Mailbox
	sender   *mailer.Sender
	subs     *subscription.Service
	digest   *digest.Service
	poller   *feed.Poller
	http     *handlers.Server
	ln       net.Listener
	// janitor erases sign-ups that can no longer be confirmed.
	janitor *subscription.Janitor
	// tls serves HTTPS with ACME certificates (server.tls = "auto").
	tls *autoTLS
	// out gets the start-up summary (stdout).
	out io.Writer
}

func cmdServe(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	file := configFile(fs, getenv)
	if err := fs.Parse(args); err != nil {
		return usageError{err}
	}
	cfg, err := LoadConfig(*file, getenv)
	if err != nil {
		return err
	}
	log := newLogger(cfg, stderr)
	clock, err := testClock(getenv)
	if err != nil {
		return err
	}
	if clock != nil {
		log.Warn("HERALD_TEST_CLOCK: herald keeps a test clock, not the real one (test builds only)", "now", clock.Now())
	}
	a, err := newApp(ctx, cfg, log, clock)
	if err != nil {
		return err
	}
	a.out = stdout
	return a.serve(ctx)
}

// newApp wires herald together; clock, when not nil, is the time every
// part keeps (a test build's HERALD_TEST_CLOCK), the store's timestamps
// aside.
func newApp(ctx context.Context, cfg *Config, log *slog.Logger, clock digest.Clock) (_ *app, err error) {
	cfg.resolvePaths()
	a := &app{cfg: cfg, log: log}
	var now func() time.Time // nil: the real clock
	if clock != nil {
		now = clock.Now
	}
	defer func() {
		if err != nil {
			a.close() // a, not the nil the error path returns
		}
	}()
	tpl, err := cfg.Templates()
	if err != nil {
		return nil, err
	}
	a.db, err = store.Open(ctx, cfg.Store.Path, store.Options{Logger: log, LockTimeout: 250 * time.Millisecond})
	if err != nil {
		if errors.Is(err, store.ErrLocked) {
			return nil, fmt.Errorf("%s: database is in use by another herald process", cfg.Store.Path)
		}
		return nil, err
	}
	secret, err := subscription.LoadSecret(ctx, a.db, cfg.Security.Secret)
	if err != nil {
		return nil, err
	}
	tokens, err := subscription.NewTokens(secret, now)
	if err != nil {
		return nil, err
	}
	a.tr, a.routes, err = newTransport(ctx, cfg, log)
	if err != nil {
		return nil, err
	}
	// DKIM signs at send time, so queued mail is signed with the key in force.
	if signer, err := dkimSigner(cfg.DKIM); err != nil {
		return nil, err
	} else if signer != nil {
		a.tr = mailer.NewSigningTransport(a.tr, signer)
		log.Info("dkim signing on", "domain", signer.Domain(), "selector", signer.Selector())
	}
	if err := a.trackSends(secret, log); err != nil {
		return nil, err
	}
	var m *metrics.Metrics // made once the subscription service (its stats) is
	from, err := mail.ParseAddress(cfg.Mail.From)
	if err != nil {
		return nil, fmt.Errorf("mail.from: %w", err)
	}
	a.sender = mailer.NewSender(a.db, a.tr, mailer.SenderOptions{
		Logger:       log,
		Now:          now,
		Workers:      cfg.sendWorkers(),
		EnvelopeFrom: from.Address,
		BaseBackoff:  cfg.Mail.RetryBackoff.Duration,
		Drop:         func(ctx context.Context, m *herald.OutboxMessage) (bool, string) { return a.subs.Unwanted(ctx, m) },
		OnResult: func(k herald.MessageKind, to string, err error) {
			m.EmailResult(k, err)
			a.subs.MessageResult(k, to, err) // bounces of confirmations and welcomes
		},
	})
	perAddr, _ := ParseRate(cfg.Security.ConfirmationsPerAddress)
	a.subs, err = subscription.New(a.db, tokens, tpl, subscription.Options{
		SiteName: cfg.Site.Name, SiteURL: cfg.Site.URL, BaseURL: cfg.Server.BaseURL, From: cfg.Mail.From, ReplyTo: cfg.Mail.ReplyTo,
		ConfirmTTL:  cfg.Security.ConfirmTTL.Duration,
		PerAddressN: perAddr.N, PerAddressWindow: perAddr.Period,
		GlobalPerHour:    cfg.Security.ConfirmationsPerHour,
		Challenge:        cfg.Security.Challenge,
		Welcome:          cfg.Mail.Welcome,
		DefaultFrequency: herald.Frequency(cfg.Digest.DefaultFrequency),
		Logger:           log,
		Enqueued:         a.sender.Notify,
		BounceLimit:      cfg.Mail.BounceLimit,
		Topics:           cfg.Topics(),
		Now:              now,
	})
	if err != nil {
		return nil, err
	}
	stats := herald.RoutedStats{StatsService: a.subs.StatsWith(a.db), Transport: a.routes}
	m = metrics.New(metrics.Options{Stats: stats, Logger: log})
	challenges, err := challenge.New(challenge.Options{Secret: secret, Required: a.subs.ChallengeRequired})
	if err != nil {
		return nil, err
	}
	if err := a.bounceIntake(log); err != nil {
		return nil, err
	}
	a.digest, err = digest.New(a.db, a.tr, a.subs, tpl, digest.Options{
		SiteName: cfg.Site.Name, SiteURL: cfg.Site.URL, BaseURL: cfg.Server.BaseURL, From: cfg.Mail.From, ReplyTo: cfg.Mail.ReplyTo,
		Content:  digest.Content(cfg.Digest.Content),
		MaxPosts: cfg.Digest.MaxPosts, Workers: cfg.sendWorkers(), BounceLimit: cfg.Mail.BounceLimit,
		RetryBackoff: cfg.Mail.RetryBackoff.Duration,
		Location:     cfg.Location(), Daily: cfg.Digest.Daily, Weekly: cfg.Digest.Weekly,
		LocalTime: cfg.Digest.LocalTime, Topics: cfg.Topics(), Clock: clock,
		Logger: log, Enqueued: a.sender.Notify,
		OnResult: m.EmailResult, OnRunFinished: m.RunFinished,
		Archive: archiveStore(cfg, a.db),
	})
	if err != nil {
		return nil, err
	}
	parser := feed.NewParser()
	var feeds []feed.FeedConfig
	for _, f := range cfg.Feeds {
		feeds = append(feeds, feed.FeedConfig{URL: f.URL, Interval: f.PollInterval.Duration, MaxAge: f.MaxAge.Duration})
	}
	a.poller = feed.NewPoller(a.db, feed.NewFetcher(feed.FetcherOptions{
		UserAgent: fmt.Sprintf("herald/%s (+%s)", version, cfg.Server.BaseURL),
	}), parser, feed.PollerOptions{
		Logger: log, Feeds: feeds, Now: now,
		OnNewPosts: func(ctx context.Context, feedURL string, n int) { a.digest.NewPosts() },
		OnPoll:     func(res *feed.PollResult) { m.FeedPoll(res.Status) },
		WebSub:     feed.WebSubOptions{CallbackBase: cfg.Server.BaseURL, Secret: secret},
	})
	postSvc := posts.New(a.db, posts.Options{Cleaner: parser, Poller: a.poller, NewPosts: a.digest.NewPosts, Logger: log, Now: now})
	perIP, _ := ParseRate(cfg.Security.SubscribePerIP)
	var proxies []netip.Prefix
	for _, p := range cfg.Server.TrustedProxies {
		if pf, err := netip.ParsePrefix(p); err == nil {
			proxies = append(proxies, pf)
		} else if ad, err := netip.ParseAddr(p); err == nil {
			proxies = append(proxies, netip.PrefixFrom(ad, ad.BitLen()))
		}
	}
	var archive herald.ArchiveService
	if cfg.Archive.Enabled {
		archive = a.db
	}
	a.http, err = handlers.New(handlers.Options{
		SiteName: cfg.Site.Name, SiteURL: cfg.Site.URL, BaseURL: cfg.Server.BaseURL,
		AdminToken: cfg.Admin.Token, TrustedProxies: proxies,
		SubscribePerIP:   handlers.Rate{N: perIP.N, Period: perIP.Period},
		IPv6Prefix:       cfg.Security.IPv6Prefix,
		DefaultFrequency: herald.Frequency(cfg.Digest.DefaultFrequency),
		Topics:           cfg.Topics().Names(), Timezone: cfg.Location().String(), LocalTime: cfg.Digest.LocalTime,
		Logger: log, Now: now,
	}, handlers.Deps{
		Subscriptions: a.subs, Imports: a.subs, Digests: a.digest, Posts: postSvc, Push: a.poller,
		Webhooks: a.webhooks, Stats: stats, Backup: a.db, Archive: archive, Challenges: challenges,
		Templates: tpl, Health: a.db.Ping, Look: cfg.LookAPI(),
		Metrics: m.Handler(), Observe: m.ObserveHTTP,
	})
	if err != nil {
		return nil, err
	}
	a.janitor = subscription.NewJanitor(a.db, subscription.JanitorOptions{TTL: cfg.Security.ConfirmTTL.Duration, Logger: log, Now: now})
	ui, err := adminui.New(adminui.Options{
		API: a.http, Token: cfg.Admin.Token, SiteName: cfg.Site.Name,
		Secure: strings.HasPrefix(cfg.Server.BaseURL, "https://"), Logger: log, Now: now,
		Warnings: cfg.Warnings(), Topics: cfg.Topics().Names(),
		Location: cfg.Location(), BaseURL: cfg.Server.BaseURL, SiteURL: cfg.Site.URL,
	})
	if err != nil {
		return nil, err
	}
	a.http.MountAdmin(ui)
	a.ln, err = net.Listen("tcp", cfg.Server.Listen)
	if err != nil {
		return nil, fmt.Errorf("server.listen: %w", err)
	}
	if cfg.Server.TLS == "auto" {
		if a.tls, err = newAutoTLS(cfg, log); err != nil {
			return nil, err
		}
	}
	return a, nil
}

func hostOf(u string) string {
	h := strings.TrimPrefix(strings.TrimPrefix(u, "https://"), "http://")
	h, _, _ = strings.Cut(h, "/")
	if host, _, err := net.SplitHostPort(h); err == nil {
		h = host
	}
	if h == "" {
		return "localhost"
	}
	return h
}

func (a *app) close() {
	if a.ln != nil {
		a.ln.Close()
	}
	if a.tls != nil {
		a.tls.httpsLn.Close()
		a.tls.httpLn.Close()
	}
	if a.tr != nil {
		a.tr.Close()
	}
	if a.tracker != nil && a.db != nil {
		a.tracker.Flush(context.Background()) // what the last sends recorded
	}
	if a.db != nil {
		if err := a.db.Close(); err != nil {
			a.log.Error("close database", "err", err)
		}
	}
}

// serve runs until ctx is done, then stops taking work, lets what is in
// flight finish, and closes the database.
func (a *app) serve(ctx context.Context) error {
	srv := a.httpServer(a.http)
	workCtx, stopWork := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := a.sender.Run(workCtx); err != nil && !errors.Is(err, context.Canceled) {
			a.log.Error("sender stopped", "err", err)
		}
	})
	wg.Go(func() {
		if err := a.digest.Run(workCtx); err != nil && !errors.Is(err, context.Canceled) {
			a.log.Error("digest scheduler stopped", "err", err)
		}
	})
	wg.Go(func() {
		if err := a.poller.Run(workCtx); err != nil && !errors.Is(err, context.Canceled) {
			a.log.Error("feed poller stopped", "err", err)
		}
	})
	wg.Go(func() { _ = a.janitor.Run(workCtx) })
	wg.Go(func() { _ = a.subs.Run(workCtx) }) // releases held confirmations
	wg.Go(func() { _ = a.tracker.Run(workCtx, time.Second) })
	if a.mailbox != nil {
		wg.Go(func() { _ = a.mailbox.Run(workCtx) })
	}
	if sched, err := a.backupScheduler(); err != nil {
		a.log.Error("scheduled backups off", "err", err)
	} else if sched != nil {
		wg.Go(func() { _ = sched.Run(workCtx) })
	}
	httpErr := make(chan error, 3)
	ln := a.ln // a.ln is cleared at shutdown, maybe before this goroutine runs
	go func() { httpErr <- srv.Serve(ln) }()
	if a.tls != nil {
		a.tls.start(a.httpServer, a.http, httpErr)
	}
	a.log.Info("herald serving", "listen", a.ln.Addr().String(), "base_url", a.cfg.Server.BaseURL,
		"db", a.cfg.Store.Path, "transport", a.cfg.Mail.Transport, "version", version)
	a.announce(a.out)

	var err error
	select {
	case <-ctx.Done():
		a.log.Info("shutting down")
	case err = <-httpErr:
		a.log.Error("http server failed", "err", err)
	}
	shCtx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if e := srv.Shutdown(shCtx); e != nil {
		a.log.Warn("http shutdown", "err", e)
	}
	if a.tls != nil {
		a.tls.shutdown(shCtx)
	}
	stopWork()
	wg.Wait()
	a.ln = nil // closed by Shutdown
	a.close()
	a.log.Info("stopped")
	if err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// httpServer is how herald serves HTTP on every listener.
func (a *app) httpServer(h http.Handler) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       60 * time.Second,
		WriteTimeout:      120 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(a.log.Handler(), slog.LevelWarn),
	}
}

// archiveStore is where finished digests are archived: nowhere when
// archive.enabled is false.
func archiveStore(cfg *Config, db *store.DB) digest.Archive {
	if !cfg.Archive.Enabled {
		return nil
	}
	return db
}
