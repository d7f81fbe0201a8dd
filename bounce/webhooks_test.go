package bounce

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/herald-dev/herald"
	"github.com/herald-dev/herald/internal/webhooktest"
)

var now = time.Date(2025, 3, 3, 7, 30, 0, 0, time.UTC)

func known(t *testing.T) *recorder {
	return readers(t, "alice@example.net", "bob@example.com", "carol@example.org")
}

func checkApplied(t *testing.T, rec *recorder, want map[string]herald.BounceKind) {
	t.Helper()
	got := map[string]herald.BounceKind{}
	for _, b := range rec.reports() {
		got[b.Email] = b.Kind
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("applied %v, want %v", got, want)
	}
}

func mustCode(t *testing.T, err error, code string) {
	t.Helper()
	if herald.ErrorCode(err) != code {
		t.Fatalf("error %v (code %q), want %s", err, herald.ErrorCode(err), code)
	}
}

// --- SNS ---

func sesHooks(t *testing.T, f *webhooktest.SNS, rec *recorder) *Webhooks {
	t.Helper()
	w, err := NewWebhooks(WebhookOptions{Subscriptions: rec, Now: func() time.Time { return now },
		SNSTopics: []string{webhooktest.Topic}, SNSCertHost: f.Host(), HTTPClient: f.Server.Client()})
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func TestSESWebhook(t *testing.T) {
	f := webhooktest.NewSNS(t)
	rec := known(t)
	w := sesHooks(t, f, rec)
	ctx := context.Background()

	res, err := w.Webhook(ctx, "ses", nil, f.Signed(t, "SubscriptionConfirmation", "You have chosen to subscribe to the topic "+webhooktest.Topic, now.Add(-time.Minute)))
	if err != nil || !res.Confirmed || f.Confirmed.Load() != 1 {
		t.Fatalf("subscription confirmation: %+v %v (confirmed %d)", res, err, f.Confirmed.Load())
	}
	for _, msg := range []string{webhooktest.SESBounce, webhooktest.SESTransient, webhooktest.SESComplaint, webhooktest.SESDelivery} {
		if _, err := w.Webhook(ctx, "ses", nil, f.Signed(t, "Notification", msg, now.Add(-time.Minute))); err != nil {
			t.Fatal(err)
		}
	}
	checkApplied(t, rec, map[string]herald.BounceKind{"alice@example.net": herald.BounceHard,
		"bob@example.com": herald.BounceSoft, "carol@example.org": herald.BounceComplaint})
}

func TestSESWebhookRefusesForgeries(t *testing.T) {
	f := webhooktest.NewSNS(t)
	rec := known(t)
	w := sesHooks(t, f, rec)
	ctx := context.Background()
	good := f.Signed(t, "Notification", webhooktest.SESBounce, now.Add(-time.Minute))

	tampered := strings.Replace(string(good), `alice@example.net`, `bob@example.com`, 1)
	_, err := w.Webhook(ctx, "ses", nil, []byte(tampered))
	mustCode(t, err, herald.EUNAUTHORIZED)

	other := webhooktest.NewSNS(t) // a certificate from another key, on the trusted host
	var m map[string]string
	json.Unmarshal(other.Signed(t, "Notification", webhooktest.SESBounce, now.Add(-time.Minute)), &m)
	m["SigningCertURL"] = f.CertURL
	b, _ := json.Marshal(m)
	_, err = w.Webhook(ctx, "ses", nil, b)
	mustCode(t, err, herald.EUNAUTHORIZED)

	json.Unmarshal(good, &m)
	m["SigningCertURL"] = "https://evil.example.com/SimpleNotificationService-1.pem"
	b, _ = json.Marshal(m)
	_, err = w.Webhook(ctx, "ses", nil, b)
	mustCode(t, err, herald.EUNAUTHORIZED)

	// Signed by SNS, but for a topic herald was not told of.
	w2, _ := NewWebhooks(WebhookOptions{Subscriptions: rec, Now: func() time.Time { return now },
		SNSTopics: []string{"arn:aws:sns:eu-west-1:123456789012:other"}, SNSCertHost: f.Host(), HTTPClient: f.Server.Client()})
	_, err = w2.Webhook(ctx, "ses", nil, good)
	mustCode(t, err, herald.EFORBIDDEN)

	_, err = w.Webhook(ctx, "ses", nil, []byte("{not json"))
	mustCode(t, err, herald.EMALFORMED)
	if len(rec.reports()) != 0 || f.Confirmed.Load() != 0 {
		t.Fatalf("a refused call changed something: %+v", rec.reports())
	}
}

// --- Postmark ---

func TestPostmarkWebhook(t *testing.T) {
	rec := known(t)
	w, _ := NewWebhooks(WebhookOptions{Subscriptions: rec, PostmarkUser: "postmark", PostmarkPassword: "s3cret-pass"})
	auth := webhooktest.BasicAuth("postmark", "s3cret-pass")
	bad := webhooktest.BasicAuth("postmark", "guess")
	ctx := context.Background()
	for _, h := range []http.Header{nil, bad} {
		_, err := w.Webhook(ctx, "postmark", h, []byte(webhooktest.PostmarkHard))
		mustCode(t, err, herald.EUNAUTHORIZED)
	}
	if len(rec.reports()) != 0 {
		t.Fatal("an unauthenticated call was applied")
	}
	for _, b := range []string{webhooktest.PostmarkHard, webhooktest.PostmarkSoft, webhooktest.PostmarkSpam, webhooktest.PostmarkAuto} {
		if _, err := w.Webhook(ctx, "postmark", auth, []byte(b)); err != nil {
			t.Fatal(err)
		}
	}
	checkApplied(t, rec, map[string]herald.BounceKind{"alice@example.net": herald.BounceHard,
		"bob@example.com": herald.BounceSoft, "carol@example.org": herald.BounceComplaint})
	_, err := w.Webhook(ctx, "postmark", auth, []byte("[1,2"))
	mustCode(t, err, herald.EMALFORMED)
}

// --- Mailgun ---

func TestMailgunWebhook(t *testing.T) {
	rec := known(t)
	const key = "key-3ax6xnjp29jd6fds4gc373sgvjxteol0"
	w, _ := NewWebhooks(WebhookOptions{Subscriptions: rec, MailgunKey: key, Now: func() time.Time { return now }})
	ctx := context.Background()
	ts := now.Add(-time.Minute).Unix()
	// Wrong key, stale timestamp, not JSON: refused, nothing applied.
	_, err := w.Webhook(ctx, "mailgun", nil, webhooktest.MailgunBody("wrong-key", "tok0", ts, webhooktest.MailgunFailed))
	mustCode(t, err, herald.EUNAUTHORIZED)
	_, err = w.Webhook(ctx, "mailgun", nil, webhooktest.MailgunBody(key, "tok1", now.Add(-time.Hour).Unix(), webhooktest.MailgunFailed))
	mustCode(t, err, herald.EUNAUTHORIZED)
	_, err = w.Webhook(ctx, "mailgun", nil, []byte("event=failed"))
	mustCode(t, err, herald.EUNAUTHORIZED)
	if len(rec.reports()) != 0 {
		t.Fatal("a refused call was applied")
	}
	for i, ev := range []string{webhooktest.MailgunFailed, webhooktest.MailgunTemp, webhooktest.MailgunSpam, webhooktest.MailgunOK} {
		if _, err := w.Webhook(ctx, "mailgun", nil, webhooktest.MailgunBody(key, fmt.Sprintf("token-%d-a8ce0edb2dd8301dee6c", i), ts, ev)); err != nil {
			t.Fatal(err)
		}
	}
	checkApplied(t, rec, map[string]herald.BounceKind{"alice@example.net": herald.BounceHard,
		"bob@example.com": herald.BounceSoft, "carol@example.org": herald.BounceComplaint})
	_, err = w.Webhook(ctx, "mailgun", nil, webhooktest.MailgunBody(key, "token-0-a8ce0edb2dd8301dee6c", ts, webhooktest.MailgunFailed))
	mustCode(t, err, herald.EUNAUTHORIZED) // a replay
}

// --- SendGrid ---

func TestSendGridWebhook(t *testing.T) {
	key := webhooktest.NewSendGridKey(t)
	rec := known(t)
	w, err := NewWebhooks(WebhookOptions{Subscriptions: rec, SendGridKey: key.Public, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	ts := strconv.FormatInt(now.Add(-time.Minute).Unix(), 10)
	ctx := context.Background()
	body := []byte(webhooktest.SendGridEvents)
	other := webhooktest.NewSendGridKey(t)
	_, err = w.Webhook(ctx, "sendgrid", other.Sign(ts, body), body)
	mustCode(t, err, herald.EUNAUTHORIZED)
	h := key.Sign(ts, body)
	_, err = w.Webhook(ctx, "sendgrid", h, []byte(strings.Replace(webhooktest.SendGridEvents, "spamreport", "open", 1)))
	mustCode(t, err, herald.EUNAUTHORIZED) // body changed after signing
	_, err = w.Webhook(ctx, "sendgrid", nil, body)
	mustCode(t, err, herald.EUNAUTHORIZED)
	if len(rec.reports()) != 0 {
		t.Fatal("a refused call was applied")
	}
	res, err := w.Webhook(ctx, "sendgrid", h, body)
	if err != nil {
		t.Fatal(err)
	}
	if *res != (herald.WebhookResult{Applied: 3, Unknown: 1, Ignored: 1}) {
		t.Fatalf("result %+v", res)
	}
	checkApplied(t, rec, map[string]herald.BounceKind{"alice@example.net": herald.BounceHard,
		"bob@example.com": herald.BounceSoft, "carol@example.org": herald.BounceComplaint})
	if _, err := NewWebhooks(WebhookOptions{Subscriptions: rec, SendGridKey: "bm90IGEga2V5"}); err == nil {
		t.Fatal("a SendGrid key that is no key was taken")
	}
}

func TestWebhookNotConfigured(t *testing.T) {
	w, _ := NewWebhooks(WebhookOptions{Subscriptions: known(t)})
	for _, p := range []string{"ses", "postmark", "mailgun", "sendgrid", "other"} {
		_, err := w.Webhook(context.Background(), p, nil, []byte("{}"))
		mustCode(t, err, herald.ENOTFOUND)
	}
}
