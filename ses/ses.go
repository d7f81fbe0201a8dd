// Package ses delivers mail through the Amazon SES v2 API: the whole
// composed message goes as raw MIME, so its DKIM signature,
// List-Unsubscribe headers and Message-ID arrive as herald wrote them.
// The account's sending rate (GetAccount's MaxSendRate) is honoured.
package ses

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/sesv2"
	"github.com/aws/aws-sdk-go-v2/service/sesv2/types"
	"github.com/aws/smithy-go"
	"golang.org/x/time/rate"

	"github.com/herald-dev/herald"
)

// Options configure a Transport. Zero values take the defaults noted.
type Options struct {
	// Region is the SES region ("eu-west-1"); required.
	Region string
	// Endpoint replaces AWS's endpoint (an SES-compatible service, tests).
	Endpoint string
	// ConfigurationSet names the SES configuration set each message is
	// sent with (where its bounce and complaint events are published).
	ConfigurationSet string
	// Rate caps messages per second; 0 takes the account's MaxSendRate.
	Rate float64
	// Credentials: nil takes the SDK's default chain (AWS_ACCESS_KEY_ID
	// and AWS_SECRET_ACCESS_KEY, shared files, an instance role).
	Credentials aws.CredentialsProvider
	// HTTPClient, if set, carries the API calls.
	HTTPClient *http.Client
	Logger     *slog.Logger
	// QuotaRefresh is how often the account's rate is asked again
	// (default 1h; 1m while it could not be read).
	QuotaRefresh time.Duration
}

// fallbackRate is SES's sandbox rate: used until the account's is known.
const fallbackRate = 1.0

// Transport sends through SES. It is safe for concurrent use.
type Transport struct {
	client *sesv2.Client
	opt    Options
	log    *slog.Logger
	lim    *rate.Limiter

	mu        sync.Mutex
	rateKnown bool
	nextQuota time.Time
	sent      int64
	failed    int64
	deferred  int64
	lastErr   string
	closed    bool
}

// New returns a Transport and asks SES for the account's sending rate. An
// SES that cannot be reached is no error: mail waits in the outbox, and
// the rate is asked again at the next send.
func New(ctx context.Context, opt Options) (*Transport, error) {
	if opt.Region == "" {
		return nil, errors.New("ses: no region")
	}
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	if opt.QuotaRefresh <= 0 {
		opt.QuotaRefresh = time.Hour
	}
	loads := []func(*config.LoadOptions) error{config.WithRegion(opt.Region)}
	if opt.Credentials != nil {
		loads = append(loads, config.WithCredentialsProvider(opt.Credentials))
	}
	if opt.HTTPClient != nil {
		loads = append(loads, config.WithHTTPClient(opt.HTTPClient))
	}
	cfg, err := config.LoadDefaultConfig(ctx, loads...)
	if err != nil {
		return nil, fmt.Errorf("ses: aws config: %w", err)
	}
	client := sesv2.NewFromConfig(cfg, func(o *sesv2.Options) {
		if opt.Endpoint != "" {
			o.BaseEndpoint = aws.String(opt.Endpoint)
		}
		// herald retries on its own schedule (the outbox, the run's
		// retries); the SDK's retries would only hold a worker.
		o.RetryMaxAttempts = 2
	})
	t := &Transport{client: client, opt: opt, log: opt.Logger.With("component", "ses", "region", opt.Region)}
	r := opt.Rate
	if r <= 0 {
		r = fallbackRate
	}
	t.lim = rate.NewLimiter(rate.Limit(r), max(1, int(r)))
	if opt.Rate > 0 {
		t.rateKnown = true
		t.nextQuota = time.Now().Add(100 * 365 * 24 * time.Hour)
	} else {
		qctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		t.refreshQuota(qctx)
		cancel()
	}
	return t, nil
}

// refreshQuota reads the account's MaxSendRate into the limiter.
func (t *Transport) refreshQuota(ctx context.Context) {
	out, err := t.client.GetAccount(ctx, &sesv2.GetAccountInput{})
	t.mu.Lock()
	defer t.mu.Unlock()
	if err != nil {
		t.nextQuota = time.Now().Add(time.Minute)
		t.log.Warn("cannot read the SES sending quota; sending at the sandbox rate meanwhile", "rate", t.lim.Limit(), "err", err)
		return
	}
	t.nextQuota = time.Now().Add(t.opt.QuotaRefresh)
	if out.SendQuota == nil || out.SendQuota.MaxSendRate <= 0 {
		return
	}
	r := out.SendQuota.MaxSendRate
	if !t.rateKnown || float64(t.lim.Limit()) != r {
		t.log.Info("SES sending quota", "max_send_rate", r, "max_24h", out.SendQuota.Max24HourSend,
			"sent_24h", out.SendQuota.SentLast24Hours, "sending_enabled", out.SendingEnabled, "production", out.ProductionAccessEnabled)
	}
	t.rateKnown = true
	t.lim.SetLimit(rate.Limit(r))
	t.lim.SetBurst(max(1, int(r)))
	if !out.SendingEnabled {
		t.log.Warn("SES says sending is disabled for this account: mail will wait in the outbox")
	}
}

// Rate is the send rate in force, in messages per second.
func (t *Transport) Rate() float64 { return float64(t.lim.Limit()) }

// Send delivers m as raw MIME to m.To. Errors are *herald.SendError:
// SES's refusals of the request itself (BadRequest: an address it cannot
// take) are permanent; throttling, a paused or unverified account and
// network trouble are temporary, retried until someone fixes them or the
// message expires, so a configuration fault never marks readers bounced.
func (t *Transport) Send(ctx context.Context, m *herald.Message) error {
	t.mu.Lock()
	closed, refresh := t.closed, !t.nextQuota.IsZero() && time.Now().After(t.nextQuota)
	if refresh {
		t.nextQuota = time.Now().Add(time.Minute) // one refresh at a time
	}
	t.mu.Unlock()
	if closed {
		return &herald.SendError{Temporary: true, Err: errors.New("ses: transport closed")}
	}
	if m.To == "" || len(m.Raw) == 0 {
		return &herald.SendError{Err: errors.New("ses: message without recipient or content")}
	}
	if refresh {
		t.refreshQuota(ctx)
	}
	if err := t.lim.Wait(ctx); err != nil {
		return &herald.SendError{Temporary: true, Err: fmt.Errorf("ses: waiting for the send rate: %w", err)}
	}
	in := &sesv2.SendEmailInput{
		Content:     &types.EmailContent{Raw: &types.RawMessage{Data: m.Raw}},
		Destination: &types.Destination{ToAddresses: []string{m.To}},
	}
	if m.From != "" {
		in.FromEmailAddress = aws.String(m.From)
	}
	if t.opt.ConfigurationSet != "" {
		in.ConfigurationSetName = aws.String(t.opt.ConfigurationSet)
	}
	_, err := t.client.SendEmail(ctx, in)
	if err == nil {
		t.mu.Lock()
		t.sent++
		t.mu.Unlock()
		return nil
	}
	serr := classify(err)
	t.mu.Lock()
	if serr.Temporary {
		t.deferred++
	} else {
		t.failed++
	}
	t.lastErr = serr.Error()
	t.mu.Unlock()
	return serr
}

// classify: BadRequestException (or a 400 without a known code) says the
// request can never succeed; every other refusal is about the account
// (throttled, paused, sandbox, unverified sender) or SES itself.
func classify(err error) *herald.SendError {
	var bad *types.BadRequestException
	if errors.As(err, &bad) {
		return &herald.SendError{Code: 400, Err: fmt.Errorf("ses: %w", err)}
	}
	var resp *awshttp.ResponseError
	var api smithy.APIError
	if errors.As(err, &resp) && errors.As(err, &api) {
		status := resp.HTTPStatusCode()
		permanent := status == http.StatusBadRequest && (api.ErrorCode() == "UnknownError" || api.ErrorCode() == "BadRequestException")
		return &herald.SendError{Temporary: !permanent, Code: status, Err: fmt.Errorf("ses: %s: %w", api.ErrorCode(), err)}
	}
	return &herald.SendError{Temporary: true, Err: fmt.Errorf("ses: %w", err)}
}

// Routes reports SES as one route.
func (t *Transport) Routes() []herald.RouteStats {
	t.mu.Lock()
	defer t.mu.Unlock()
	return []herald.RouteStats{{
		Name: "ses:" + t.opt.Region, Kind: "ses", State: herald.RouteUp,
		Sent: t.sent, Failed: t.failed, Deferred: t.deferred, LastError: t.lastErr,
		Rate: float64(t.lim.Limit()),
	}}
}

// Close makes later sends fail; API calls hold no connections to close.
func (t *Transport) Close() error {
	t.mu.Lock()
	t.closed = true
	t.mu.Unlock()
	return nil
}
