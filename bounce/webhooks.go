package bounce

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/hmac"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/herald-dev/herald"
)

// WebhookOptions configure the providers' webhooks. A provider without
// its secret (SNS: without a topic) is off: its route answers 404.
type WebhookOptions struct {
	// Subscriptions applies the reports.
	Subscriptions herald.SubscriptionService
	Logger        *slog.Logger
	Now           func() time.Time
	// SNSTopics lists the SNS topic ARNs whose messages are taken.
	SNSTopics []string
	// SNSCertHost is the one host SNS signing certificates and
	// subscription links may come from; "" takes AWS's own
	// (sns.<region>.amazonaws.com).
	SNSCertHost string
	// HTTPClient fetches SNS certificates and confirms subscriptions.
	HTTPClient *http.Client
	// PostmarkUser and PostmarkPassword: the basic auth put in the
	// webhook's URL at Postmark.
	PostmarkUser, PostmarkPassword string
	// MailgunKey is the HTTP webhook signing key from Mailgun.
	MailgunKey string
	// SendGridKey is the Signed Event Webhook's verification key, as
	// SendGrid shows it (base64 of the DER public key).
	SendGridKey string
	// MaxAge bounds how old a signed timestamp may be (default 15m).
	MaxAge time.Duration
}

// Webhooks turns the providers' bounce and complaint events into bounces.
type Webhooks struct {
	opt      WebhookOptions
	log      *slog.Logger
	sendgrid *ecdsa.PublicKey
	certHost *regexp.Regexp

	mu     sync.Mutex
	certs  map[string]*x509.Certificate
	tokens map[string]time.Time // Mailgun tokens seen, against replays
}

// NewWebhooks checks the options (a SendGrid key that does not parse is
// an error).
func NewWebhooks(opt WebhookOptions) (*Webhooks, error) {
	if opt.Subscriptions == nil {
		return nil, errors.New("bounce: webhooks without a subscription service")
	}
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.HTTPClient == nil {
		opt.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	if opt.MaxAge <= 0 {
		opt.MaxAge = 15 * time.Minute
	}
	w := &Webhooks{opt: opt, log: opt.Logger.With("component", "bounce-webhooks"),
		certs: map[string]*x509.Certificate{}, tokens: map[string]time.Time{}}
	if opt.SNSCertHost != "" {
		w.certHost = regexp.MustCompile(`^` + regexp.QuoteMeta(strings.ToLower(opt.SNSCertHost)) + `$`)
	} else {
		w.certHost = regexp.MustCompile(`^sns\.[a-z0-9-]+\.amazonaws\.com(\.cn)?$`)
	}
	if opt.SendGridKey != "" {
		k, err := ParseSendGridKey(opt.SendGridKey)
		if err != nil {
			return nil, err
		}
		w.sendgrid = k
	}
	return w, nil
}

// ParseSendGridKey reads the verification key SendGrid shows for its
// Signed Event Webhook.
func ParseSendGridKey(s string) (*ecdsa.PublicKey, error) {
	s = strings.TrimSpace(s)
	if b, _ := pem.Decode([]byte(s)); b != nil {
		s = base64.StdEncoding.EncodeToString(b.Bytes)
	}
	der, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("bounce: SendGrid verification key is not base64: %w", err)
	}
	pub, err := x509.ParsePKIXPublicKey(der)
	if err != nil {
		return nil, fmt.Errorf("bounce: SendGrid verification key: %w", err)
	}
	k, ok := pub.(*ecdsa.PublicKey)
	if !ok {
		return nil, errors.New("bounce: SendGrid verification key is not an ECDSA key")
	}
	return k, nil
}

// Providers lists the webhooks that are on.
func (w *Webhooks) Providers() []string {
	var p []string
	if len(w.opt.SNSTopics) > 0 {
		p = append(p, "ses")
	}
	if w.opt.PostmarkUser != "" {
		p = append(p, "postmark")
	}
	if w.opt.MailgunKey != "" {
		p = append(p, "mailgun")
	}
	if w.sendgrid != nil {
		p = append(p, "sendgrid")
	}
	return p
}

func unauthorized(format string, args ...any) error {
	return herald.Errorf(herald.EUNAUTHORIZED, format, args...)
}

func malformed(provider string, err error) error {
	return herald.Errorf(herald.EMALFORMED, "%s webhook: the body is not the JSON %s sends: %v", provider, provider, err)
}

var _ herald.WebhookService = (*Webhooks)(nil)

// Webhook authenticates one webhook call and applies the events in it.
// Nothing changes unless the call is authentic: a bad signature or
// password is EUNAUTHORIZED (401), a topic not configured EFORBIDDEN, a
// provider not configured ENOTFOUND, a body that does not parse
// EMALFORMED.
func (w *Webhooks) Webhook(ctx context.Context, provider string, h http.Header, body []byte) (*herald.WebhookResult, error) {
	if !slices.Contains(w.Providers(), provider) {
		return nil, herald.Errorf(herald.ENOTFOUND, "no %s webhook here (not configured)", provider)
	}
	var bounces []herald.Bounce
	res := &herald.WebhookResult{}
	var err error
	switch provider {
	case "ses":
		bounces, err = w.sns(ctx, h, body, res)
	case "postmark":
		bounces, err = w.postmark(h, body, res)
	case "mailgun":
		bounces, err = w.mailgun(body, res)
	case "sendgrid":
		bounces, err = w.sendGrid(h, body, res)
	}
	if err != nil {
		if herald.ErrorCode(err) == herald.EUNAUTHORIZED {
			w.log.Warn("webhook refused", "provider", provider, "err", err)
		}
		return nil, err
	}
	for _, b := range bounces {
		b.Source = provider
		known, err := apply(ctx, w.opt.Subscriptions, w.log, b)
		if err != nil {
			return nil, fmt.Errorf("bounce: %s webhook: %w", provider, err)
		}
		if known {
			res.Applied++
		} else {
			res.Unknown++
		}
	}
	return res, nil
}

// --- Amazon SES through SNS ---

type snsMessage struct {
	Type             string
	MessageId        string
	Token            string
	TopicArn         string
	Subject          string
	Message          string
	Timestamp        string
	SignatureVersion string
	Signature        string
	SigningCertURL   string
	SubscribeURL     string
}

// sns verifies an SNS message against its signing certificate, confirms
// a subscription, and reads SES's bounce and complaint notifications (as
// SNS notifications or configuration-set events).
func (w *Webhooks) sns(ctx context.Context, h http.Header, body []byte, res *herald.WebhookResult) ([]herald.Bounce, error) {
	var m snsMessage
	if err := json.Unmarshal(body, &m); err != nil {
		return nil, malformed("SNS", err)
	}
	if err := w.verifySNS(ctx, &m); err != nil {
		return nil, err
	}
	if !slices.Contains(w.opt.SNSTopics, m.TopicArn) {
		return nil, herald.Errorf(herald.EFORBIDDEN, "SNS topic %q is not in bounces.sns_topics", m.TopicArn)
	}
	switch m.Type {
	case "SubscriptionConfirmation":
		if err := w.confirmSNS(ctx, m.SubscribeURL); err != nil {
			return nil, err
		}
		res.Confirmed = true
		w.log.Info("SNS subscription confirmed", "topic", m.TopicArn)
		return nil, nil
	case "UnsubscribeConfirmation":
		res.Ignored++
		return nil, nil
	case "Notification":
		return sesEvent(m.Message, res)
	}
	return nil, herald.Errorf(herald.EINVALID, "SNS message type %q unknown", m.Type)
}

func (w *Webhooks) verifySNS(ctx context.Context, m *snsMessage) error {
	var fields []string
	switch m.Type {
	case "Notification":
		fields = []string{"Message", m.Message, "MessageId", m.MessageId}
		if m.Subject != "" {
			fields = append(fields, "Subject", m.Subject)
		}
		fields = append(fields, "Timestamp", m.Timestamp, "TopicArn", m.TopicArn, "Type", m.Type)
	case "SubscriptionConfirmation", "UnsubscribeConfirmation":
		fields = []string{"Message", m.Message, "MessageId", m.MessageId, "SubscribeURL", m.SubscribeURL,
			"Timestamp", m.Timestamp, "Token", m.Token, "TopicArn", m.TopicArn, "Type", m.Type}
	default:
		return unauthorized("SNS message of unknown type %q", m.Type)
	}
	var b strings.Builder
	for i := 0; i < len(fields); i += 2 {
		b.WriteString(fields[i] + "\n" + fields[i+1] + "\n")
	}
	sig, err := base64.StdEncoding.DecodeString(m.Signature)
	if err != nil || len(sig) == 0 {
		return unauthorized("SNS signature missing or not base64")
	}
	var hash crypto.Hash
	var sum []byte
	switch m.SignatureVersion {
	case "1":
		s := sha1.Sum([]byte(b.String()))
		hash, sum = crypto.SHA1, s[:]
	case "2":
		s := sha256.Sum256([]byte(b.String()))
		hash, sum = crypto.SHA256, s[:]
	default:
		return unauthorized("SNS signature version %q unknown", m.SignatureVersion)
	}
	cert, err := w.snsCert(ctx, m.SigningCertURL)
	if err != nil {
		return err
	}
	pub, ok := cert.PublicKey.(*rsa.PublicKey)
	if !ok {
		return unauthorized("SNS signing certificate has no RSA key")
	}
	if err := rsa.VerifyPKCS1v15(pub, hash, sum, sig); err != nil {
		return unauthorized("SNS signature does not verify")
	}
	if ts, err := time.Parse(time.RFC3339, m.Timestamp); err != nil || w.opt.Now().Sub(ts) > time.Hour {
		return unauthorized("SNS message timestamp %q missing or older than an hour", m.Timestamp)
	}
	return nil
}

// snsURL checks a URL SNS gave: https on the SNS host.
func (w *Webhooks) snsURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "https" || !w.certHost.MatchString(strings.ToLower(u.Host)) {
		return nil, unauthorized("SNS URL %q is not https on an SNS host", raw)
	}
	return u, nil
}

func (w *Webhooks) snsCert(ctx context.Context, raw string) (*x509.Certificate, error) {
	u, err := w.snsURL(raw)
	if err != nil {
		return nil, err
	}
	if !strings.HasSuffix(u.Path, ".pem") {
		return nil, unauthorized("SNS signing certificate URL %q is not a .pem", raw)
	}
	w.mu.Lock()
	cert := w.certs[raw]
	w.mu.Unlock()
	if cert != nil {
		return cert, nil
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	res, err := w.opt.HTTPClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("bounce: fetch SNS signing certificate: %w", err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(res.Body, 64<<10))
	if res.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("bounce: fetch SNS signing certificate: %s", res.Status)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, unauthorized("SNS signing certificate is not PEM")
	}
	cert, err = x509.ParseCertificate(blk.Bytes)
	if err != nil {
		return nil, unauthorized("SNS signing certificate: %v", err)
	}
	w.mu.Lock()
	if len(w.certs) > 16 {
		clear(w.certs)
	}
	w.certs[raw] = cert
	w.mu.Unlock()
	return cert, nil
}

func (w *Webhooks) confirmSNS(ctx context.Context, raw string) error {
	u, err := w.snsURL(raw)
	if err != nil {
		return err
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	res, err := w.opt.HTTPClient.Do(req)
	if err != nil {
		return fmt.Errorf("bounce: confirm SNS subscription: %w", err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("bounce: confirm SNS subscription: %s", res.Status)
	}
	return nil
}

type sesRecipient struct {
	EmailAddress   string `json:"emailAddress"`
	Status         string `json:"status"`
	DiagnosticCode string `json:"diagnosticCode"`
}

// sesEvent reads SES's notification (notificationType) or event
// (eventType): Permanent bounces are hard, Transient and Undetermined
// soft; complaints are complaints unless the feedback says "not-spam".
func sesEvent(msg string, res *herald.WebhookResult) ([]herald.Bounce, error) {
	var ev struct {
		NotificationType string `json:"notificationType"`
		EventType        string `json:"eventType"`
		Bounce           *struct {
			BounceType        string         `json:"bounceType"`
			BounceSubType     string         `json:"bounceSubType"`
			BouncedRecipients []sesRecipient `json:"bouncedRecipients"`
		} `json:"bounce"`
		Complaint *struct {
			ComplainedRecipients  []sesRecipient `json:"complainedRecipients"`
			ComplaintFeedbackType string         `json:"complaintFeedbackType"`
		} `json:"complaint"`
	}
	if err := json.Unmarshal([]byte(msg), &ev); err != nil {
		return nil, herald.Errorf(herald.EMALFORMED, "SES notification in the SNS message is not JSON: %v", err)
	}
	typ := ev.NotificationType
	if typ == "" {
		typ = ev.EventType
	}
	var out []herald.Bounce
	switch {
	case typ == "Bounce" && ev.Bounce != nil:
		kind := herald.BounceSoft
		if ev.Bounce.BounceType == "Permanent" {
			kind = herald.BounceHard
		}
		for _, r := range ev.Bounce.BouncedRecipients {
			out = append(out, herald.Bounce{Email: r.EmailAddress, Kind: kind,
				Reason: strings.TrimSpace(ev.Bounce.BounceType + "/" + ev.Bounce.BounceSubType + " " + r.Status + " " + r.DiagnosticCode)})
		}
	case typ == "Complaint" && ev.Complaint != nil:
		if ev.Complaint.ComplaintFeedbackType == "not-spam" {
			res.Ignored++
			return nil, nil
		}
		for _, r := range ev.Complaint.ComplainedRecipients {
			out = append(out, herald.Bounce{Email: r.EmailAddress, Kind: herald.BounceComplaint, Reason: "complaint " + ev.Complaint.ComplaintFeedbackType})
		}
	default:
		res.Ignored++ // Delivery, Send, Open, Click...
	}
	return out, nil
}

// --- Postmark ---

// postmark checks the basic auth and reads a Bounce or SpamComplaint
// webhook: the bounce type decides the kind, as Postmark documents its
// types (HardBounce, BadEmailAddress: hard; SpamComplaint: complaint;
// SoftBounce, Transient, DnsError...: soft; AutoResponder and the like
// are no bounce).
func (w *Webhooks) postmark(h http.Header, body []byte, res *herald.WebhookResult) ([]herald.Bounce, error) {
	user, pass, ok := (&http.Request{Header: h}).BasicAuth()
	if !ok || subtle.ConstantTimeCompare([]byte(user), []byte(w.opt.PostmarkUser)) != 1 ||
		subtle.ConstantTimeCompare([]byte(pass), []byte(w.opt.PostmarkPassword)) != 1 {
		return nil, unauthorized("Postmark webhook: wrong or missing basic auth")
	}
	var ev struct {
		RecordType  string
		Type        string
		Email       string
		Description string
		Details     string
	}
	if err := json.Unmarshal(body, &ev); err != nil {
		return nil, malformed("Postmark", err)
	}
	var kind herald.BounceKind
	switch ev.Type {
	case "HardBounce", "BadEmailAddress", "ManuallyDeactivated":
		kind = herald.BounceHard
	case "SpamComplaint", "SpamNotification", "Unsubscribe":
		kind = herald.BounceComplaint
	case "SoftBounce", "Transient", "DnsError", "Blocked", "SMTPApiError", "DMARCPolicy", "TemplateRenderingFailed":
		kind = herald.BounceSoft
	default:
		res.Ignored++
		return nil, nil
	}
	if ev.RecordType == "SpamComplaint" {
		kind = herald.BounceComplaint
	}
	return []herald.Bounce{{Email: ev.Email, Kind: kind, Reason: ev.Type + ": " + ev.Description}}, nil
}

// --- Mailgun ---

// mailgun checks the HMAC-SHA256 of timestamp+token under the signing
// key, refuses old timestamps and replayed tokens, and reads the event:
// a permanent failure is hard, a temporary one soft, a complaint or an
// unsubscribe a complaint.
func (w *Webhooks) mailgun(body []byte, res *herald.WebhookResult) ([]herald.Bounce, error) {
	var ev struct {
		Signature struct {
			Timestamp string `json:"timestamp"`
			Token     string `json:"token"`
			Signature string `json:"signature"`
		} `json:"signature"`
		EventData *struct {
			Event          string `json:"event"`
			Severity       string `json:"severity"`
			Recipient      string `json:"recipient"`
			Reason         string `json:"reason"`
			DeliveryStatus struct {
				Code        int    `json:"code"`
				Description string `json:"description"`
				Message     string `json:"message"`
			} `json:"delivery-status"`
		} `json:"event-data"`
	}
	if err := json.Unmarshal(body, &ev); err != nil {
		// Unsigned garbage is refused as unauthenticated, not parsed further.
		return nil, unauthorized("Mailgun webhook: no signature in a body that is not JSON")
	}
	s := ev.Signature
	mac := hmac.New(sha256.New, []byte(w.opt.MailgunKey))
	mac.Write([]byte(s.Timestamp + s.Token))
	want := hex.EncodeToString(mac.Sum(nil))
	if s.Token == "" || !hmac.Equal([]byte(strings.ToLower(s.Signature)), []byte(want)) {
		return nil, unauthorized("Mailgun webhook: signature does not verify")
	}
	if err := w.fresh(s.Timestamp); err != nil {
		return nil, err
	}
	if !w.firstUse(s.Token) {
		return nil, unauthorized("Mailgun webhook: token used before (a replay)")
	}
	if ev.EventData == nil {
		return nil, herald.Errorf(herald.EINVALID, "Mailgun webhook: no event-data")
	}
	d := ev.EventData
	var kind herald.BounceKind
	switch {
	case d.Event == "failed" && d.Severity == "permanent":
		kind = herald.BounceHard
	case d.Event == "failed":
		kind = herald.BounceSoft
	case d.Event == "complained" || d.Event == "unsubscribed":
		kind = herald.BounceComplaint
	default:
		res.Ignored++
		return nil, nil
	}
	return []herald.Bounce{{Email: d.Recipient, Kind: kind,
		Reason: strings.TrimSpace(fmt.Sprintf("%s %s %d %s", d.Event, d.Reason, d.DeliveryStatus.Code, d.DeliveryStatus.Message))}}, nil
}

func (w *Webhooks) fresh(ts string) error {
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return unauthorized("signed timestamp %q is not a number", ts)
	}
	if d := w.opt.Now().Sub(time.Unix(sec, 0)); d > w.opt.MaxAge || d < -w.opt.MaxAge {
		return unauthorized("signed timestamp is %s away from now (more than %s)", d.Round(time.Second), w.opt.MaxAge)
	}
	return nil
}

// firstUse remembers tokens for MaxAge and says whether this is new.
func (w *Webhooks) firstUse(token string) bool {
	now := w.opt.Now()
	w.mu.Lock()
	defer w.mu.Unlock()
	if _, seen := w.tokens[token]; seen {
		return false
	}
	if len(w.tokens) > 10000 {
		for k, at := range w.tokens {
			if now.Sub(at) > w.opt.MaxAge {
				delete(w.tokens, k)
			}
		}
	}
	w.tokens[token] = now
	return true
}

// --- SendGrid ---

// sendGrid checks the Signed Event Webhook's ECDSA signature over the
// timestamp header and the body, and reads the events: a bounce is hard
// (type "blocked" soft), a drop for a bounced or invalid address hard, a
// spam report or unsubscribe a complaint, a deferral soft.
func (w *Webhooks) sendGrid(h http.Header, body []byte, res *herald.WebhookResult) ([]herald.Bounce, error) {
	sig, err := base64.StdEncoding.DecodeString(h.Get("X-Twilio-Email-Event-Webhook-Signature"))
	ts := h.Get("X-Twilio-Email-Event-Webhook-Timestamp")
	if err != nil || len(sig) == 0 || ts == "" {
		return nil, unauthorized("SendGrid webhook: signature or timestamp header missing")
	}
	sum := sha256.Sum256(append([]byte(ts), body...))
	if !ecdsa.VerifyASN1(w.sendgrid, sum[:], sig) {
		return nil, unauthorized("SendGrid webhook: signature does not verify")
	}
	if err := w.fresh(ts); err != nil {
		return nil, err
	}
	var evs []struct {
		Email  string `json:"email"`
		Event  string `json:"event"`
		Type   string `json:"type"`
		Reason string `json:"reason"`
		Status string `json:"status"`
	}
	if err := json.Unmarshal(body, &evs); err != nil {
		return nil, malformed("SendGrid", err)
	}
	var out []herald.Bounce
	for _, e := range evs {
		var kind herald.BounceKind
		switch e.Event {
		case "bounce":
			kind = herald.BounceHard
			if e.Type == "blocked" {
				kind = herald.BounceSoft
			}
		case "dropped":
			switch e.Reason {
			case "Bounced Address", "Invalid", "Invalid SMTPAPI header":
				kind = herald.BounceHard
			case "Spam Reporting Address", "Unsubscribed Address":
				kind = herald.BounceComplaint
			}
		case "spamreport", "unsubscribe", "group_unsubscribe":
			kind = herald.BounceComplaint
		case "deferred":
			kind = herald.BounceSoft
		}
		if kind == "" {
			res.Ignored++
			continue
		}
		out = append(out, herald.Bounce{Email: e.Email, Kind: kind, Reason: strings.TrimSpace(e.Event + " " + e.Type + " " + e.Status + " " + e.Reason)})
	}
	return out, nil
}
