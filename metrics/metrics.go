// Package metrics exposes herald's Prometheus metrics: gauges read from
// the stats service at scrape time (kept counters, no bucket walks), and counters and histograms fed by hooks in
// the HTTP layer, the sender, the feed poller and the digest runs. It uses
// its own registry, never the global default one.
package metrics

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/herald-dev/herald"
)

// Options configure Metrics.
type Options struct {
	// Stats is what the scrape-time collector reads (store.DB); nil leaves
	// those metrics out.
	Stats  herald.StatsService
	Logger *slog.Logger
	// ScrapeTimeout bounds the reads of one scrape (default 5s).
	ScrapeTimeout time.Duration
	// NoRuntime leaves out the Go runtime and process collectors.
	NoRuntime bool
}

// Metrics holds herald's metrics and their registry.
type Metrics struct {
	reg *prometheus.Registry
	log *slog.Logger

	httpRequests *prometheus.CounterVec
	httpDuration *prometheus.HistogramVec
	emailsSent   *prometheus.CounterVec
	emailsFailed *prometheus.CounterVec
	emailRetries *prometheus.CounterVec
	feedPolls    *prometheus.CounterVec
	runDuration  *prometheus.HistogramVec
	runs         *prometheus.CounterVec
}

// New builds the metrics and registers them (and the store collector) in
// a registry of their own.
func New(opt Options) *Metrics {
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	if opt.ScrapeTimeout <= 0 {
		opt.ScrapeTimeout = 5 * time.Second
	}
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		log: opt.Logger,
		httpRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_http_requests_total",
			Help: "HTTP requests answered, by route template and status code.",
		}, []string{"route", "code"}),
		httpDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "herald_http_request_duration_seconds",
			Help:    "Time to answer HTTP requests, by route template.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"route"}),
		emailsSent: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_emails_sent_total",
			Help: "Emails delivered since start, by kind (confirm, welcome, test, digest, instant).",
		}, []string{"kind"}),
		emailsFailed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_emails_failed_total",
			Help: "Emails given up on since start (permanent failure, expired or dropped), by kind.",
		}, []string{"kind"}),
		emailRetries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_email_retries_total",
			Help: "Temporary delivery failures that will be retried, by kind.",
		}, []string{"kind"}),
		feedPolls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_feed_polls_total",
			Help: "Feed polls, by result.",
		}, []string{"result"}),
		runDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "herald_run_duration_seconds",
			Help:    "How long finished digest runs took, by frequency.",
			Buckets: []float64{1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200},
		}, []string{"frequency"}),
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_runs_total",
			Help: "Digest runs finished since start, by frequency and final state (done, failed).",
		}, []string{"frequency", "state"}),
	}
	m.reg.MustRegister(m.httpRequests, m.httpDuration, m.emailsSent, m.emailsFailed, m.emailRetries,
		m.feedPolls, m.runDuration, m.runs)
	m.reg.MustRegister(newStoreCollector(opt))
	if !opt.NoRuntime {
		m.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	// Series that should read 0 rather than be missing before the first event.
	for _, k := range []herald.MessageKind{herald.KindConfirm, herald.KindWelcome, herald.KindLink, herald.KindTest, herald.KindDigest, herald.KindInstant} {
		m.emailsSent.WithLabelValues(string(k))
		m.emailsFailed.WithLabelValues(string(k))
	}
	for _, f := range herald.Frequencies {
		for _, st := range []herald.RunState{herald.RunDone, herald.RunFailed} {
			m.runs.WithLabelValues(string(f), string(st))
		}
	}
	return m
}

// Registry returns the registry, for tests and for adding collectors.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the metrics in the Prometheus text format. It carries no
// authentication: mount it behind the admin token.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{
		ErrorLog:      slog.NewLogLogger(m.log.Handler(), slog.LevelWarn),
		ErrorHandling: promhttp.ContinueOnError, // one store read failing must not hide the rest
	})
}

// ObserveHTTP counts one answered request; it fits handlers.Deps.Observe.
func (m *Metrics) ObserveHTTP(route string, status int, d time.Duration) {
	m.httpRequests.WithLabelValues(route, strconv.Itoa(status)).Inc()
	m.httpDuration.WithLabelValues(route).Observe(d.Seconds())
}

// EmailResult counts the outcome of one email: err nil is sent; a
// temporary *herald.SendError a retry; anything else (a permanent
// failure, an expired or dropped message) failed. It fits the digest's
// OnResult and, wrapped, the sender's.
func (m *Metrics) EmailResult(kind herald.MessageKind, err error) {
	var se *herald.SendError
	switch {
	case err == nil:
		m.emailsSent.WithLabelValues(string(kind)).Inc()
	case errors.As(err, &se) && se.Temporary:
		m.emailRetries.WithLabelValues(string(kind)).Inc()
	default:
		m.emailsFailed.WithLabelValues(string(kind)).Inc()
	}
}

// FeedPoll counts one feed poll by its result ("ok", "not_modified",
// "error", ...: the poller's words; keep them few).
func (m *Metrics) FeedPoll(result string) {
	m.feedPolls.WithLabelValues(result).Inc()
}

// RunFinished records a digest run that ended, with how long it took; it
// fits digest.Options.OnRunFinished.
func (m *Metrics) RunFinished(r *herald.Run, d time.Duration) {
	if r == nil {
		return
	}
	m.RunEnded(r.Frequency, r.State, d)
}

// RunEnded is RunFinished from its parts.
func (m *Metrics) RunEnded(freq herald.Frequency, state herald.RunState, d time.Duration) {
	m.runDuration.WithLabelValues(string(freq)).Observe(d.Seconds())
	m.runs.WithLabelValues(string(freq), string(state)).Inc()
}

// storeCollector reads the stats at scrape time: the counts kept with
// every write, the outbox size and the durable counters, and how mail
// fares through each relay or provider.
type storeCollector struct {
	opt                                Options
	log                                *slog.Logger
	subscribers, outbox, emails, posts *prometheus.Desc
	// The budget of confirmation emails: what waits for it and why, what
	// it has left, and whether sign-ups are asked for the challenge.
	waiting, available, challenge      *prometheus.Desc
	routeMsgs, routeAside, routeAsides *prometheus.Desc
}

func newStoreCollector(opt Options) *storeCollector {
	return &storeCollector{
		opt: opt, log: opt.Logger,
		subscribers: prometheus.NewDesc("herald_subscribers",
			"Subscribers by status and frequency.", []string{"status", "frequency"}, nil),
		outbox: prometheus.NewDesc("herald_outbox_depth",
			"Messages waiting in the durable outbox.", nil, nil),
		emails: prometheus.NewDesc("herald_emails_total",
			"Emails sent and failed over the database's life (durable counters), by result.", []string{"result"}, nil),
		posts: prometheus.NewDesc("herald_posts_total",
			"Posts recorded.", nil, nil),
		waiting: prometheus.NewDesc("herald_confirmations_waiting",
			"Confirmation emails held in the outbox for the budget (security.confirmations_per_hour), by reason: budget (sign-ups came faster than it), challenge_unsolved (and the sign-up did not solve the challenge).", []string{"reason"}, nil),
		available: prometheus.NewDesc("herald_confirmation_budget_available",
			"Confirmation emails the hourly budget would let go now.", nil, nil),
		challenge: prometheus.NewDesc("herald_challenge_active",
			"1 while sign-ups are asked to solve the proof-of-work challenge (security.challenge), else 0.", nil, nil),
		routeMsgs: prometheus.NewDesc("herald_route_messages_total",
			"Messages per relay or provider since start, by result: sent, failed (refused for good), deferred (a temporary failure: retried elsewhere or later).",
			[]string{"route", "kind", "result"}, nil),
		routeAside: prometheus.NewDesc("herald_route_set_aside",
			"1 while the relay is set aside after repeated failures (or being probed), else 0.", []string{"route", "kind"}, nil),
		routeAsides: prometheus.NewDesc("herald_route_set_asides_total",
			"How often the relay was set aside since start.", []string{"route", "kind"}, nil),
	}
}

func (c *storeCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.subscribers
	ch <- c.outbox
	ch <- c.emails
	ch <- c.posts
	ch <- c.waiting
	ch <- c.available
	ch <- c.challenge
	ch <- c.routeMsgs
	ch <- c.routeAside
	ch <- c.routeAsides
}

func (c *storeCollector) Collect(ch chan<- prometheus.Metric) {
	if c.opt.Stats == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.opt.ScrapeTimeout)
	defer cancel()
	st, err := c.opt.Stats.Stats(ctx)
	if err != nil {
		for _, d := range []*prometheus.Desc{c.subscribers, c.outbox, c.emails, c.posts, c.waiting, c.available, c.challenge} {
			c.fail(ch, d, err)
		}
		return
	}
	for status, byFreq := range st.Subscribers.ByStatusAndFrequency {
		for f, n := range byFreq {
			ch <- prometheus.MustNewConstMetric(c.subscribers, prometheus.GaugeValue, float64(n), string(status), string(f))
		}
	}
	ch <- prometheus.MustNewConstMetric(c.outbox, prometheus.GaugeValue, float64(st.Outbox))
	ch <- prometheus.MustNewConstMetric(c.emails, prometheus.CounterValue, float64(st.Emails.Sent), "sent")
	ch <- prometheus.MustNewConstMetric(c.emails, prometheus.CounterValue, float64(st.Emails.Failed), "failed")
	ch <- prometheus.MustNewConstMetric(c.posts, prometheus.CounterValue, float64(st.Posts))
	for _, h := range herald.Holds {
		ch <- prometheus.MustNewConstMetric(c.waiting, prometheus.GaugeValue, float64(st.Confirmations.WaitingByReason[h.String()]), h.String())
	}
	ch <- prometheus.MustNewConstMetric(c.available, prometheus.GaugeValue, float64(st.Confirmations.Available))
	active := 0.0
	if st.Confirmations.ChallengeActive {
		active = 1
	}
	ch <- prometheus.MustNewConstMetric(c.challenge, prometheus.GaugeValue, active)
	for _, rt := range st.Routes {
		for result, n := range map[string]int64{"sent": rt.Sent, "failed": rt.Failed, "deferred": rt.Deferred} {
			ch <- prometheus.MustNewConstMetric(c.routeMsgs, prometheus.CounterValue, float64(n), rt.Name, rt.Kind, result)
		}
		aside := 0.0
		if rt.State != herald.RouteUp {
			aside = 1
		}
		ch <- prometheus.MustNewConstMetric(c.routeAside, prometheus.GaugeValue, aside, rt.Name, rt.Kind)
		ch <- prometheus.MustNewConstMetric(c.routeAsides, prometheus.CounterValue, float64(rt.SetAsides), rt.Name, rt.Kind)
	}
}

func (c *storeCollector) fail(ch chan<- prometheus.Metric, d *prometheus.Desc, err error) {
	c.log.Warn("metrics: store read failed", "metric", d.String(), "err", err)
	ch <- prometheus.NewInvalidMetric(d, err)
}
