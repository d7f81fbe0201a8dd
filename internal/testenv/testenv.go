// Package testenv builds a whole herald for a test, wired the way
// `herald serve` wires it: bbolt on a file in t.TempDir(), herald's SMTP
// transport to a loopback server (internal/smtptest), the outbox sender,
// the subscription, digest and posts services and the feed poller with
// their loops running, and the HTTP handler on an httptest server. The
// admin UI can be mounted on it. Only tests import it.
package testenv

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/herald-dev/herald"
	"github.com/herald-dev/herald/bounce"
	"github.com/herald-dev/herald/challenge"
	"github.com/herald-dev/herald/digest"
	"github.com/herald-dev/herald/feed"
	"github.com/herald-dev/herald/handlers"
	"github.com/herald-dev/herald/internal/smtptest"
	"github.com/herald-dev/herald/mailer"
	"github.com/herald-dev/herald/metrics"
	"github.com/herald-dev/herald/posts"
	"github.com/herald-dev/herald/relay"
	"github.com/herald-dev/herald/store"
	"github.com/herald-dev/herald/subscription"
	"github.com/herald-dev/herald/templates"
)

// Token is an admin token for tests.
const Token = "test-admin-token-0123456789"

// The site every App is, unless Options say otherwise.
const (
	SiteName = "Test Blog"
	SiteURL  = "https://blog.example.org"
	BaseURL  = "http://herald.test"
	FromAddr = "digest@example.org"
)

// Options change the App from the defaults. The zero value is an App with
// the admin API off.
type Options struct {
	// AdminToken is admin.token; "" turns the admin API off (403).
	AdminToken     string
	SiteName       string // default SiteName
	BaseURL        string // server.base_url, default BaseURL
	SubscribePerIP handlers.Rate
	TrustedProxies []netip.Prefix
	// Archive is archive.enabled.
	Archive bool
	// Signer, when set, DKIM-signs every message at send time.
	Signer *mailer.Signer
	// Feeds are polled by the poller.
	Feeds []feed.FeedConfig
	// Topics are digest.topics: offered on the forms, checked by the
	// subscription service, matched by the digest.
	Topics []string
	// Subscription and Digest change the services' options after the
	// defaults are set (a global cap, a schedule, a retry backoff...).
	Subscription func(*subscription.Options)
	Digest       func(*digest.Options)
	// Relays, when above 0, starts that many more loopback SMTP servers
	// (App.Relays) and sends through a relay set over App.SMTP and them,
	// as serve does with [[relays]]; /api/v1/stats then shows the routes.
	Relays int
	// Webhooks changes the providers' webhook options (their secrets)
	// after the defaults are set.
	Webhooks func(*bounce.WebhookOptions)
	// ChallengeDifficulty is the sign-up challenge's work in bits (0:
	// challenge.DefaultDifficulty).
	ChallengeDifficulty int
	// Admin, when set, builds the admin UI (adminui.New) around the API,
	// mounted at /admin; it gets the API handler.
	Admin func(api http.Handler) (http.Handler, error)
	// Templates are the templates' options: the look, the default
	// language, an override directory. Site.Name defaults to SiteName.
	Templates templates.Options
	// Logger, when set, gets every service's log (else it is dropped).
	Logger *slog.Logger
}

// App is one herald, with every part reachable for the test to inspect.
type App struct {
	T    testing.TB
	DB   *store.DB
	SMTP *smtptest.Server
	// Relays are the other relays of Options.Relays.
	Relays    []*smtptest.Server
	Transport herald.Transport // herald's SMTP transport to SMTP, or the relay set (DKIM-signing with Options.Signer)
	// Routes is the relay set with Options.Relays, else nil.
	Routes    *relay.Set
	Templates *templates.Set
	Sender    *mailer.Sender
	Subs      *subscription.Service
	// Challenges is the sign-up challenge (security.challenge is
	// Options.Subscription's Challenge).
	Challenges *challenge.Issuer
	Digest     *digest.Service
	Posts      *posts.Service
	Poller     *feed.Poller
	Metrics    *metrics.Metrics
	Handler    *handlers.Server
	Server     *httptest.Server
	// URL is the server's base URL.
	URL   string
	token string
}

// New builds an App and stops it when the test ends.
func New(t testing.TB, o Options) *App {
	t.Helper()
	if o.SiteName == "" {
		o.SiteName = SiteName
	}
	if o.BaseURL == "" {
		o.BaseURL = BaseURL
	}
	ctx, cancel := context.WithCancel(context.Background())
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	a := &App{T: t, token: o.AdminToken}
	var err error
	if a.DB, err = store.Open(ctx, filepath.Join(t.TempDir(), "herald.db"), store.Options{}); err != nil {
		t.Fatal(err)
	}
	if o.Templates.Site.Name == "" {
		o.Templates.Site.Name, o.Templates.Site.URL = o.SiteName, SiteURL
	}
	if a.Templates, err = templates.Load(o.Templates); err != nil {
		t.Fatal(err)
	}
	a.SMTP = smtptest.Start(t)
	smtpTo := func(s *smtptest.Server) herald.Transport {
		return mailer.NewSMTPTransport(mailer.SMTPConfig{
			Host: s.Host(), Port: s.Port(), TLS: "none", Connections: 2, Timeout: 10 * time.Second,
		}, log)
	}
	tr := smtpTo(a.SMTP)
	if o.Relays > 0 {
		relays := []relay.Relay{{Name: a.SMTP.Addr(), Transport: tr, Connections: 2}}
		for range o.Relays {
			s := smtptest.Start(t)
			a.Relays = append(a.Relays, s)
			relays = append(relays, relay.Relay{Name: s.Addr(), Transport: smtpTo(s), Connections: 2})
		}
		if a.Routes, err = relay.New(relays, relay.Options{Logger: log}); err != nil {
			t.Fatal(err)
		}
		tr = a.Routes
	}
	if o.Signer != nil {
		tr = mailer.NewSigningTransport(tr, o.Signer)
	}
	a.Transport = tr
	from := o.SiteName + " <" + FromAddr + ">"
	a.Sender = mailer.NewSender(a.DB, tr, mailer.SenderOptions{
		Logger: log, EnvelopeFrom: FromAddr, BaseBackoff: 50 * time.Millisecond, PollInterval: 100 * time.Millisecond,
		Drop: func(ctx context.Context, m *herald.OutboxMessage) (bool, string) { return a.Subs.Unwanted(ctx, m) },
		OnResult: func(k herald.MessageKind, to string, err error) {
			a.Metrics.EmailResult(k, err)
			a.Subs.MessageResult(k, to, err)
		},
	})
	secret, err := subscription.LoadSecret(ctx, a.DB, "")
	if err != nil {
		t.Fatal(err)
	}
	tokens, err := subscription.NewTokens(secret, nil)
	if err != nil {
		t.Fatal(err)
	}
	topics, err := herald.NewOfferedTopics(o.Topics)
	if err != nil {
		t.Fatal(err)
	}
	so := subscription.Options{
		SiteName: o.SiteName, SiteURL: SiteURL, BaseURL: o.BaseURL, From: from,
		PerAddressN: 3, PerAddressWindow: 24 * time.Hour, Welcome: true,
		Logger: log, Enqueued: a.Sender.Notify, Topics: topics,
	}
	if o.Subscription != nil {
		o.Subscription(&so)
	}
	if a.Subs, err = subscription.New(a.DB, tokens, a.Templates, so); err != nil {
		t.Fatal(err)
	}
	stats := herald.RoutedStats{StatsService: a.Subs.StatsWith(a.DB)}
	if a.Routes != nil {
		stats.Transport = a.Routes
	}
	a.Metrics = metrics.New(metrics.Options{Stats: stats, Logger: log})
	if a.Challenges, err = challenge.New(challenge.Options{Secret: secret, Difficulty: o.ChallengeDifficulty, Required: a.Subs.ChallengeRequired}); err != nil {
		t.Fatal(err)
	}
	do := digest.Options{
		SiteName: o.SiteName, SiteURL: SiteURL, BaseURL: o.BaseURL, From: from,
		MaxPosts: 10, Workers: 2, RetryBackoff: 50 * time.Millisecond, InstantDelay: 10 * time.Millisecond,
		Logger: log, Enqueued: a.Sender.Notify,
		OnResult: a.Metrics.EmailResult, OnRunFinished: a.Metrics.RunFinished, Topics: topics,
	}
	if o.Archive {
		do.Archive = a.DB
	}
	if o.Digest != nil {
		o.Digest(&do)
	}
	if a.Digest, err = digest.New(a.DB, tr, a.Subs, a.Templates, do); err != nil {
		t.Fatal(err)
	}
	parser := feed.NewParser()
	a.Poller = feed.NewPoller(a.DB, feed.NewFetcher(feed.FetcherOptions{}), parser, feed.PollerOptions{
		Logger: log, Feeds: o.Feeds,
		OnNewPosts: func(context.Context, string, int) { a.Digest.NewPosts() },
		OnPoll:     func(res *feed.PollResult) { a.Metrics.FeedPoll(res.Status) },
		WebSub:     feed.WebSubOptions{CallbackBase: o.BaseURL, Secret: secret},
	})
	a.Posts = posts.New(a.DB, posts.Options{Cleaner: parser, Poller: a.Poller, NewPosts: a.Digest.NewPosts, Logger: log})
	wo := bounce.WebhookOptions{Subscriptions: a.Subs, Logger: log}
	if o.Webhooks != nil {
		o.Webhooks(&wo)
	}
	webhooks, err := bounce.NewWebhooks(wo)
	if err != nil {
		t.Fatal(err)
	}
	var archive herald.ArchiveService
	if o.Archive {
		archive = a.DB
	}
	a.Handler, err = handlers.New(handlers.Options{
		SiteName: o.SiteName, SiteURL: SiteURL, BaseURL: o.BaseURL,
		AdminToken: o.AdminToken, TrustedProxies: o.TrustedProxies, SubscribePerIP: o.SubscribePerIP,
		DefaultFrequency: herald.Daily, Topics: topics.Names(), Timezone: "UTC", Logger: log,
	}, handlers.Deps{
		Subscriptions: a.Subs, Imports: a.Subs, Digests: a.Digest, Posts: a.Posts, Push: a.Poller,
		Webhooks: webhooks, Stats: stats, Backup: a.DB, Archive: archive, Templates: a.Templates, Health: a.DB.Ping,
		Challenges: a.Challenges,
		Metrics:    a.Metrics.Handler(), Observe: a.Metrics.ObserveHTTP,
	})
	if err != nil {
		t.Fatal(err)
	}
	if o.Admin != nil {
		ui, err := o.Admin(a.Handler)
		if err != nil {
			t.Fatal(err)
		}
		a.Handler.MountAdmin(ui)
	}
	var wg sync.WaitGroup
	wg.Go(func() { _ = a.Sender.Run(ctx) })
	wg.Go(func() { _ = a.Digest.Run(ctx) })
	wg.Go(func() { _ = a.Poller.Run(ctx) })
	wg.Go(func() { _ = a.Subs.Run(ctx) })
	a.Server = httptest.NewServer(a.Handler)
	a.URL = a.Server.URL
	t.Cleanup(func() {
		a.Server.Close()
		cancel()
		wg.Wait()
		tr.Close()
		a.DB.Close()
	})
	return a
}

// Resp is an HTTP answer, its body read whole.
type Resp struct {
	Status int
	Header http.Header
	Body   string
}

// Location is the Location header (redirects are not followed).
func (r Resp) Location() string { return r.Header.Get("Location") }

var noRedirect = &http.Client{
	Timeout:       time.Minute,
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

// Do sends a request to the server; header is name, value pairs.
func (a *App) Do(method, path, contentType string, body io.Reader, header ...string) Resp {
	a.T.Helper()
	req, err := http.NewRequest(method, a.URL+path, body)
	if err != nil {
		a.T.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	res, err := noRedirect.Do(req)
	if err != nil {
		a.T.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		a.T.Fatalf("%s %s: reading the answer: %v", method, path, err)
	}
	return Resp{res.StatusCode, res.Header, string(b)}
}

// Get is Do with GET.
func (a *App) Get(path string, header ...string) Resp {
	a.T.Helper()
	return a.Do(http.MethodGet, path, "", nil, header...)
}

// Form posts a form as a browser does when a person presses its button
// (Sec-Fetch-Mode: navigate, which gets post/redirect/get where herald
// offers it).
func (a *App) Form(path string, vals url.Values) Resp {
	a.T.Helper()
	return a.Do(http.MethodPost, path, "application/x-www-form-urlencoded", strings.NewReader(vals.Encode()), "Sec-Fetch-Mode", "navigate")
}

// Admin is Do with the admin token.
func (a *App) Admin(method, path, contentType, body string) Resp {
	a.T.Helper()
	return a.Do(method, path, contentType, strings.NewReader(body), "Authorization", "Bearer "+a.token)
}

// Subscriber reads a reader from the store; the test fails if there is none.
func (a *App) Subscriber(email string) *herald.Subscriber {
	a.T.Helper()
	s, err := a.DB.SubscriberByEmail(context.Background(), email)
	if err != nil {
		a.T.Fatalf("subscriber %s: %v", email, err)
	}
	return s
}

// Confirmed adds a confirmed reader, as an import with confirmed=true does.
func (a *App) Confirmed(email string, freq herald.Frequency) *herald.Subscriber {
	a.T.Helper()
	s, err := a.Subs.Subscribe(context.Background(), herald.SubscribeRequest{Email: email, Frequency: string(freq), Confirmed: true, Source: "import"})
	if err != nil {
		a.T.Fatal(err)
	}
	return s
}

// AddPost stores a post as a feed poll would (not silent), and returns it.
func (a *App) AddPost(n int) *herald.Post {
	a.T.Helper()
	p := &herald.Post{
		GUID: fmt.Sprintf("https://blog.example.org/?p=%d", n), URL: fmt.Sprintf("https://blog.example.org/%d/", n),
		Title: fmt.Sprintf("Post number %d", n), Author: "Ann Author", Summary: "<p>A summary.</p>", Content: "<p>The post.</p>",
		PublishedAt: time.Now().UTC(), FoundAt: time.Now().UTC(), Feed: SiteURL + "/feed/",
	}
	if _, err := a.DB.UpsertPost(context.Background(), p); err != nil {
		a.T.Fatal(err)
	}
	return p
}

// WaitRun waits for a run to end (done or failed), a minute at most.
func (a *App) WaitRun(id uint64) *herald.Run {
	a.T.Helper()
	var r *herald.Run
	Eventually(a.T, time.Minute, fmt.Sprintf("run %d to end", id), func() bool {
		var err error
		if r, err = a.DB.Run(context.Background(), id); err != nil {
			a.T.Fatal(err)
		}
		return r.State == herald.RunDone || r.State == herald.RunFailed
	})
	return r
}

// Eventually waits until cond holds, checking every few milliseconds, and
// fails the test if it does not within d: every polling loop of a test
// has a deadline.
func Eventually(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, d)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// OutboxSent waits until the outbox is empty: every message queued so far
// was sent (or failed for good). After it, the SMTP server holds all the
// mail there is to hold: a test can count it instead of sleeping "long
// enough" and hoping nothing else arrives.
func (a *App) OutboxSent() {
	a.T.Helper()
	Eventually(a.T, time.Minute, "the outbox to drain", func() bool {
		n, err := a.DB.OutboxDepth(context.Background())
		if err != nil {
			a.T.Fatal(err)
		}
		return n == 0
	})
}
