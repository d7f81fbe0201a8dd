package bounce

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/herald-dev/herald"
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

type snsFixture struct {
	srv       *httptest.Server
	key       *rsa.PrivateKey
	certURL   string
	confirmed atomic.Int32
}

// newSNS serves a signing certificate and the subscription link on
// loopback over TLS, as SNS does.
func newSNS(t *testing.T) *snsFixture {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "sns.amazonaws.com"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	f := &snsFixture{key: key}
	f.srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.HasSuffix(r.URL.Path, ".pem"):
			w.Write(certPEM)
		case r.URL.Query().Get("Action") == "ConfirmSubscription":
			f.confirmed.Add(1)
			w.Write([]byte("<ConfirmSubscriptionResponse/>"))
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(f.srv.Close)
	f.certURL = f.srv.URL + "/SimpleNotificationService-9c6465fa7f48f5cacd23014631ec1136.pem"
	return f
}

func (f *snsFixture) host() string { u, _ := url.Parse(f.srv.URL); return u.Host }

const topic = "arn:aws:sns:eu-west-1:123456789012:herald-bounces"

// signed builds an SNS message signed the way SNS signs (version 2:
// SHA256withRSA over the canonical fields).
func (f *snsFixture) signed(t *testing.T, typ, message string) []byte {
	t.Helper()
	m := map[string]string{"Type": typ, "MessageId": "22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324", "TopicArn": topic,
		"Message": message, "Timestamp": now.Add(-time.Minute).Format(time.RFC3339), "SignatureVersion": "2", "SigningCertURL": f.certURL}
	var fields []string
	if typ == "Notification" {
		m["Subject"] = "Amazon SES Email Event Notification"
		m["UnsubscribeURL"] = f.srv.URL + "/?Action=Unsubscribe"
		fields = []string{"Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"}
	} else {
		m["Token"] = "2336412f37fb687f5d51e6e2425c464de12884fa"
		m["SubscribeURL"] = f.srv.URL + "/?Action=ConfirmSubscription&TopicArn=" + topic + "&Token=2336412f"
		fields = []string{"Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"}
	}
	var b strings.Builder
	for _, k := range fields {
		b.WriteString(k + "\n" + m[k] + "\n")
	}
	sum := sha256.Sum256([]byte(b.String()))
	sig, err := rsa.SignPKCS1v15(rand.Reader, f.key, crypto.SHA256, sum[:])
	if err != nil {
		t.Fatal(err)
	}
	m["Signature"] = base64.StdEncoding.EncodeToString(sig)
	out, _ := json.Marshal(m)
	return out
}

// SES's bounce and complaint notifications as the SES developer guide
// shows them.
const sesBounce = `{"notificationType":"Bounce","bounce":{"feedbackId":"0102017f-1234-abcd-ef01-000000000000-000000","bounceType":"Permanent","bounceSubType":"General","bouncedRecipients":[{"emailAddress":"alice@example.net","action":"failed","status":"5.1.1","diagnosticCode":"smtp; 550 5.1.1 user unknown"}],"timestamp":"2025-03-03T07:20:00.000Z","remoteMtaIp":"203.0.113.25","reportingMTA":"dsn; a8-70.smtp-out.amazonses.com"},"mail":{"timestamp":"2025-03-03T07:19:58.000Z","source":"digest@blog.example.org","sourceArn":"arn:aws:ses:eu-west-1:123456789012:identity/blog.example.org","sourceIp":"198.51.100.4","sendingAccountId":"123456789012","messageId":"0102017f-aaaa-bbbb-cccc-000000000000-000000","destination":["alice@example.net"]}}`
const sesTransient = `{"eventType":"Bounce","bounce":{"bounceType":"Transient","bounceSubType":"MailboxFull","bouncedRecipients":[{"emailAddress":"bob@example.com","status":"4.2.2"}],"timestamp":"2025-03-03T07:21:00.000Z"},"mail":{"messageId":"x","destination":["bob@example.com"]}}`
const sesComplaint = `{"notificationType":"Complaint","complaint":{"userAgent":"ExampleCorp Feedback Loop (V0.01)","complainedRecipients":[{"emailAddress":"carol@example.org"}],"complaintFeedbackType":"abuse","arrivalDate":"2025-03-03T07:22:00.000Z","timestamp":"2025-03-03T07:22:01.000Z","feedbackId":"0102017f-ffff"},"mail":{"messageId":"y","destination":["carol@example.org"]}}`
const sesDelivery = `{"notificationType":"Delivery","mail":{"messageId":"z","destination":["alice@example.net"]},"delivery":{"recipients":["alice@example.net"]}}`

func sesHooks(t *testing.T, f *snsFixture, rec *recorder) *Webhooks {
	t.Helper()
	w, err := NewWebhooks(WebhookOptions{Subscriptions: rec, Now: func() time.Time { return now },
		SNSTopics: []string{topic}, SNSCertHost: f.host(), HTTPClient: f.srv.Client()})
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func TestSESWebhook(t *testing.T) {
	f := newSNS(t)
	rec := known(t)
	w := sesHooks(t, f, rec)
	ctx := context.Background()

	res, err := w.Webhook(ctx, "ses", nil, f.signed(t, "SubscriptionConfirmation", "You have chosen to subscribe to the topic "+topic))
	if err != nil || !res.Confirmed || f.confirmed.Load() != 1 {
		t.Fatalf("subscription confirmation: %+v %v (confirmed %d)", res, err, f.confirmed.Load())
	}
	for _, msg := range []string{sesBounce, sesTransient, sesComplaint, sesDelivery} {
		if _, err := w.Webhook(ctx, "ses", nil, f.signed(t, "Notification", msg)); err != nil {
			t.Fatal(err)
		}
	}
	checkApplied(t, rec, map[string]herald.BounceKind{"alice@example.net": herald.BounceHard,
		"bob@example.com": herald.BounceSoft, "carol@example.org": herald.BounceComplaint})
}

func TestSESWebhookRefusesForgeries(t *testing.T) {
	f := newSNS(t)
	rec := known(t)
	w := sesHooks(t, f, rec)
	ctx := context.Background()
	good := f.signed(t, "Notification", sesBounce)

	tampered := strings.Replace(string(good), `alice@example.net`, `bob@example.com`, 1)
	_, err := w.Webhook(ctx, "ses", nil, []byte(tampered))
	mustCode(t, err, herald.EUNAUTHORIZED)

	other := newSNS(t) // a certificate from another key, on the trusted host
	var m map[string]string
	json.Unmarshal(other.signed(t, "Notification", sesBounce), &m)
	m["SigningCertURL"] = f.certURL
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
		SNSTopics: []string{"arn:aws:sns:eu-west-1:123456789012:other"}, SNSCertHost: f.host(), HTTPClient: f.srv.Client()})
	_, err = w2.Webhook(ctx, "ses", nil, good)
	mustCode(t, err, herald.EFORBIDDEN)

	_, err = w.Webhook(ctx, "ses", nil, []byte("{not json"))
	mustCode(t, err, herald.EMALFORMED)
	if len(rec.reports()) != 0 || f.confirmed.Load() != 0 {
		t.Fatalf("a refused call changed something: %+v", rec.reports())
	}
}

// --- Postmark ---

// Postmark's bounce and spam complaint webhooks, from its docs.
const postmarkHard = `{"RecordType":"Bounce","MessageStream":"outbound","ID":4323372036854775807,"Type":"HardBounce","TypeCode":1,"Name":"Hard bounce","Tag":"digest","MessageID":"883953f4-6105-42a2-a16a-77a8eac79483","Metadata":{},"ServerID":23,"Description":"The server was unable to deliver your message (ex: unknown user, mailbox not found).","Details":"smtp;550 5.1.1 The email account that you tried to reach does not exist.","Email":"alice@example.net","From":"digest@blog.example.org","BouncedAt":"2025-03-03T07:20:00Z","DumpAvailable":true,"Inactive":true,"CanActivate":true,"Subject":"My Blog: 3 new posts","Content":""}`
const postmarkSoft = `{"RecordType":"Bounce","Type":"SoftBounce","TypeCode":4096,"Name":"Soft bounce","Description":"Unable to temporarily deliver this email.","Email":"bob@example.com","BouncedAt":"2025-03-03T07:21:00Z","Inactive":false}`
const postmarkSpam = `{"RecordType":"SpamComplaint","MessageStream":"outbound","ID":42,"Type":"SpamComplaint","TypeCode":512,"Name":"Spam complaint","Tag":"","MessageID":"00000000-0000-0000-0000-000000000000","Description":"The subscriber explicitly marked this message as spam.","Details":"Test spam complaint details","Email":"carol@example.org","From":"digest@blog.example.org","BouncedAt":"2025-03-03T07:22:00Z","Inactive":true}`
const postmarkAuto = `{"RecordType":"Bounce","Type":"AutoResponder","TypeCode":32,"Email":"alice@example.net"}`

func TestPostmarkWebhook(t *testing.T) {
	rec := known(t)
	w, _ := NewWebhooks(WebhookOptions{Subscriptions: rec, PostmarkUser: "postmark", PostmarkPassword: "s3cret-pass"})
	auth := http.Header{"Authorization": {"Basic " + base64.StdEncoding.EncodeToString([]byte("postmark:s3cret-pass"))}}
	bad := http.Header{"Authorization": {"Basic " + base64.StdEncoding.EncodeToString([]byte("postmark:guess"))}}
	ctx := context.Background()
	for _, h := range []http.Header{nil, bad} {
		_, err := w.Webhook(ctx, "postmark", h, []byte(postmarkHard))
		mustCode(t, err, herald.EUNAUTHORIZED)
	}
	if len(rec.reports()) != 0 {
		t.Fatal("an unauthenticated call was applied")
	}
	for _, b := range []string{postmarkHard, postmarkSoft, postmarkSpam, postmarkAuto} {
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

func mailgunBody(key, token string, ts int64, eventData string) []byte {
	mac := hmac.New(sha256.New, []byte(key))
	mac.Write([]byte(strconv.FormatInt(ts, 10) + token))
	return []byte(fmt.Sprintf(`{"signature":{"timestamp":"%d","token":%q,"signature":%q},"event-data":%s}`,
		ts, token, hex.EncodeToString(mac.Sum(nil)), eventData))
}

// Mailgun's webhook events, from its docs.
const mailgunPermanent = `{"event":"failed","id":"G9Bn5sl1TC6nu79C8C0bwg","timestamp":1740986400.0,"log-level":"error","severity":"permanent","reason":"bounce","recipient":"alice@example.net","recipient-domain":"example.net","delivery-status":{"attempt-no":1,"code":550,"message":"5.1.1 The email account that you tried to reach does not exist","description":"","mx-host":"mx.example.net","tls":true},"message":{"headers":{"to":"alice@example.net","message-id":"20250303072000.1.abc@blog.example.org","from":"digest@blog.example.org","subject":"My Blog: 3 new posts"}},"flags":{"is-routed":false,"is-authenticated":true,"is-system-test":false,"is-test-mode":false}}`
const mailgunTemporary = `{"event":"failed","severity":"temporary","reason":"generic","recipient":"bob@example.com","delivery-status":{"code":452,"message":"4.2.2 mailbox full"}}`
const mailgunComplained = `{"event":"complained","recipient":"carol@example.org","timestamp":1740986400.0}`
const mailgunDelivered = `{"event":"delivered","recipient":"alice@example.net"}`

func TestMailgunWebhook(t *testing.T) {
	rec := known(t)
	const key = "key-3ax6xnjp29jd6fds4gc373sgvjxteol0"
	w, _ := NewWebhooks(WebhookOptions{Subscriptions: rec, MailgunKey: key, Now: func() time.Time { return now }})
	ctx := context.Background()
	ts := now.Add(-time.Minute).Unix()
	// Wrong key, stale timestamp, not JSON: refused, nothing applied.
	_, err := w.Webhook(ctx, "mailgun", nil, mailgunBody("wrong-key", "tok0", ts, mailgunPermanent))
	mustCode(t, err, herald.EUNAUTHORIZED)
	_, err = w.Webhook(ctx, "mailgun", nil, mailgunBody(key, "tok1", now.Add(-time.Hour).Unix(), mailgunPermanent))
	mustCode(t, err, herald.EUNAUTHORIZED)
	_, err = w.Webhook(ctx, "mailgun", nil, []byte("event=failed"))
	mustCode(t, err, herald.EUNAUTHORIZED)
	if len(rec.reports()) != 0 {
		t.Fatal("a refused call was applied")
	}
	for i, ev := range []string{mailgunPermanent, mailgunTemporary, mailgunComplained, mailgunDelivered} {
		if _, err := w.Webhook(ctx, "mailgun", nil, mailgunBody(key, fmt.Sprintf("token-%d-a8ce0edb2dd8301dee6c", i), ts, ev)); err != nil {
			t.Fatal(err)
		}
	}
	checkApplied(t, rec, map[string]herald.BounceKind{"alice@example.net": herald.BounceHard,
		"bob@example.com": herald.BounceSoft, "carol@example.org": herald.BounceComplaint})
	_, err = w.Webhook(ctx, "mailgun", nil, mailgunBody(key, "token-0-a8ce0edb2dd8301dee6c", ts, mailgunPermanent))
	mustCode(t, err, herald.EUNAUTHORIZED) // a replay
}

// --- SendGrid ---

// SendGrid's event webhook body, from its docs.
const sendgridEvents = `[
{"email":"alice@example.net","timestamp":1740986400,"smtp-id":"<14c5d75ce93.dfd.64b469@ismtpd-555>","event":"bounce","category":["digest"],"sg_event_id":"6g4ZI7SA-xmRDv57GoPIPw==","sg_message_id":"14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.0","reason":"500 unknown recipient","status":"5.0.0","type":"bounce","bounce_classification":"Invalid Address"},
{"email":"bob@example.com","timestamp":1740986401,"event":"deferred","response":"400 try again later","attempt":"5","sg_event_id":"t7LEShmowp86DTdUW8M-GQ=="},
{"email":"carol@example.org","timestamp":1740986402,"event":"spamreport","sg_event_id":"37nvH5QBz858KGVYCM4uOA=="},
{"email":"alice@example.net","timestamp":1740986403,"event":"open","sg_event_id":"FOTFFO0ecsBE-zxFXfs6WA=="},
{"email":"nobody@example.org","timestamp":1740986404,"event":"bounce","type":"bounce","status":"5.1.1"}
]`

func TestSendGridWebhook(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
	rec := known(t)
	w, err := NewWebhooks(WebhookOptions{Subscriptions: rec, SendGridKey: base64.StdEncoding.EncodeToString(der), Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	ts := strconv.FormatInt(now.Add(-time.Minute).Unix(), 10)
	sign := func(k *ecdsa.PrivateKey, ts string, body []byte) http.Header {
		sum := sha256.Sum256(append([]byte(ts), body...))
		sig, _ := ecdsa.SignASN1(rand.Reader, k, sum[:])
		return http.Header{"X-Twilio-Email-Event-Webhook-Signature": {base64.StdEncoding.EncodeToString(sig)},
			"X-Twilio-Email-Event-Webhook-Timestamp": {ts}}
	}
	ctx := context.Background()
	body := []byte(sendgridEvents)
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	_, err = w.Webhook(ctx, "sendgrid", sign(other, ts, body), body)
	mustCode(t, err, herald.EUNAUTHORIZED)
	h := sign(key, ts, body)
	_, err = w.Webhook(ctx, "sendgrid", h, []byte(strings.Replace(sendgridEvents, "spamreport", "open", 1)))
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
