// Package webhooktest plays the email providers for tests of herald's
// webhooks: SNS (a signing certificate and the subscription link served
// over TLS on loopback, messages signed as SNS signs them), Mailgun's
// HMAC, SendGrid's ECDSA signature and Postmark's basic auth, and event
// bodies shaped as each provider's documentation shows them. Only tests
// import it.
package webhooktest

import (
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
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// Topic is the SNS topic the SES messages come from.
const Topic = "arn:aws:sns:eu-west-1:123456789012:herald-bounces"

// SNS serves a signing certificate and the subscription-confirmation link
// on loopback over TLS, as SNS does, and signs messages with the key of
// that certificate.
type SNS struct {
	Server  *httptest.Server
	key     *rsa.PrivateKey
	CertURL string
	// Confirmed counts the subscription links followed.
	Confirmed atomic.Int32
}

// NewSNS starts the server; it stops when the test ends.
func NewSNS(t testing.TB) *SNS {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "sns.amazonaws.com"},
		NotBefore: now.Add(-24 * 365 * time.Hour), NotAfter: now.Add(24 * 365 * time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	f := &SNS{key: key}
	f.Server = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.HasSuffix(r.URL.Path, ".pem"):
			_, _ = w.Write(certPEM)
		case r.URL.Query().Get("Action") == "ConfirmSubscription":
			f.Confirmed.Add(1)
			_, _ = w.Write([]byte("<ConfirmSubscriptionResponse/>"))
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(f.Server.Close)
	f.CertURL = f.Server.URL + "/SimpleNotificationService-9c6465fa7f48f5cacd23014631ec1136.pem"
	return f
}

// Host is the server's host:port: herald's bounces.sns_cert_host.
func (f *SNS) Host() string { u, _ := url.Parse(f.Server.URL); return u.Host }

// CAFile writes the TLS server's certificate to a file in dir, for a
// process that must trust it (SSL_CERT_FILE).
func (f *SNS) CAFile(t testing.TB, dir string) string {
	t.Helper()
	p := filepath.Join(dir, "sns-ca.pem")
	b := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: f.Server.Certificate().Raw})
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// Signed builds an SNS message of type typ ("Notification" or
// "SubscriptionConfirmation") sent at the time given, signed the way SNS
// signs (version 2: SHA256withRSA over the canonical fields).
func (f *SNS) Signed(t testing.TB, typ, message string, at time.Time) []byte {
	t.Helper()
	m := map[string]string{"Type": typ, "MessageId": "22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324", "TopicArn": Topic,
		"Message": message, "Timestamp": at.UTC().Format(time.RFC3339), "SignatureVersion": "2", "SigningCertURL": f.CertURL}
	var fields []string
	if typ == "Notification" {
		m["Subject"] = "Amazon SES Email Event Notification"
		m["UnsubscribeURL"] = f.Server.URL + "/?Action=Unsubscribe"
		fields = []string{"Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"}
	} else {
		m["Token"] = "2336412f37fb687f5d51e6e2425c464de12884fa"
		m["SubscribeURL"] = f.Server.URL + "/?Action=ConfirmSubscription&TopicArn=" + Topic + "&Token=2336412f"
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
// shows them (what SNS carries in Message).
const (
	SESBounce     = `{"notificationType":"Bounce","bounce":{"feedbackId":"0102017f-1234-abcd-ef01-000000000000-000000","bounceType":"Permanent","bounceSubType":"General","bouncedRecipients":[{"emailAddress":"alice@example.net","action":"failed","status":"5.1.1","diagnosticCode":"smtp; 550 5.1.1 user unknown"}],"timestamp":"2025-03-03T07:20:00.000Z","remoteMtaIp":"203.0.113.25","reportingMTA":"dsn; a8-70.smtp-out.amazonses.com"},"mail":{"timestamp":"2025-03-03T07:19:58.000Z","source":"digest@blog.example.org","sourceArn":"arn:aws:ses:eu-west-1:123456789012:identity/blog.example.org","sourceIp":"198.51.100.4","sendingAccountId":"123456789012","messageId":"0102017f-aaaa-bbbb-cccc-000000000000-000000","destination":["alice@example.net"]}}`
	SESTransient  = `{"eventType":"Bounce","bounce":{"bounceType":"Transient","bounceSubType":"MailboxFull","bouncedRecipients":[{"emailAddress":"bob@example.com","status":"4.2.2"}],"timestamp":"2025-03-03T07:21:00.000Z"},"mail":{"messageId":"x","destination":["bob@example.com"]}}`
	SESComplaint  = `{"notificationType":"Complaint","complaint":{"userAgent":"ExampleCorp Feedback Loop (V0.01)","complainedRecipients":[{"emailAddress":"carol@example.org"}],"complaintFeedbackType":"abuse","arrivalDate":"2025-03-03T07:22:00.000Z","timestamp":"2025-03-03T07:22:01.000Z","feedbackId":"0102017f-ffff"},"mail":{"messageId":"y","destination":["carol@example.org"]}}`
	SESDelivery   = `{"notificationType":"Delivery","mail":{"messageId":"z","destination":["alice@example.net"]},"delivery":{"recipients":["alice@example.net"]}}`
	PostmarkHard  = `{"RecordType":"Bounce","MessageStream":"outbound","ID":4323372036854775807,"Type":"HardBounce","TypeCode":1,"Name":"Hard bounce","Tag":"digest","MessageID":"883953f4-6105-42a2-a16a-77a8eac79483","Metadata":{},"ServerID":23,"Description":"The server was unable to deliver your message (ex: unknown user, mailbox not found).","Details":"smtp;550 5.1.1 The email account that you tried to reach does not exist.","Email":"alice@example.net","From":"digest@blog.example.org","BouncedAt":"2025-03-03T07:20:00Z","DumpAvailable":true,"Inactive":true,"CanActivate":true,"Subject":"My Blog: 3 new posts","Content":""}`
	PostmarkSoft  = `{"RecordType":"Bounce","Type":"SoftBounce","TypeCode":4096,"Name":"Soft bounce","Description":"Unable to temporarily deliver this email.","Email":"bob@example.com","BouncedAt":"2025-03-03T07:21:00Z","Inactive":false}`
	PostmarkSpam  = `{"RecordType":"SpamComplaint","MessageStream":"outbound","ID":42,"Type":"SpamComplaint","TypeCode":512,"Name":"Spam complaint","Tag":"","MessageID":"00000000-0000-0000-0000-000000000000","Description":"The subscriber explicitly marked this message as spam.","Details":"Test spam complaint details","Email":"carol@example.org","From":"digest@blog.example.org","BouncedAt":"2025-03-03T07:22:00Z","Inactive":true}`
	PostmarkAuto  = `{"RecordType":"Bounce","Type":"AutoResponder","TypeCode":32,"Email":"alice@example.net"}`
	MailgunFailed = `{"event":"failed","id":"G9Bn5sl1TC6nu79C8C0bwg","timestamp":1740986400.0,"log-level":"error","severity":"permanent","reason":"bounce","recipient":"alice@example.net","recipient-domain":"example.net","delivery-status":{"attempt-no":1,"code":550,"message":"5.1.1 The email account that you tried to reach does not exist","description":"","mx-host":"mx.example.net","tls":true},"message":{"headers":{"to":"alice@example.net","message-id":"20250303072000.1.abc@blog.example.org","from":"digest@blog.example.org","subject":"My Blog: 3 new posts"}},"flags":{"is-routed":false,"is-authenticated":true,"is-system-test":false,"is-test-mode":false}}`
	MailgunTemp   = `{"event":"failed","severity":"temporary","reason":"generic","recipient":"bob@example.com","delivery-status":{"code":452,"message":"4.2.2 mailbox full"}}`
	MailgunSpam   = `{"event":"complained","recipient":"carol@example.org","timestamp":1740986400.0}`
	MailgunOK     = `{"event":"delivered","recipient":"alice@example.net"}`
	// SendGridEvents is a batch: a bounce, a deferral, a spam report, an
	// open and a bounce for an address herald does not know.
	SendGridEvents = `[
{"email":"alice@example.net","timestamp":1740986400,"smtp-id":"<14c5d75ce93.dfd.64b469@ismtpd-555>","event":"bounce","category":["digest"],"sg_event_id":"6g4ZI7SA-xmRDv57GoPIPw==","sg_message_id":"14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.0","reason":"500 unknown recipient","status":"5.0.0","type":"bounce","bounce_classification":"Invalid Address"},
{"email":"bob@example.com","timestamp":1740986401,"event":"deferred","response":"400 try again later","attempt":"5","sg_event_id":"t7LEShmowp86DTdUW8M-GQ=="},
{"email":"carol@example.org","timestamp":1740986402,"event":"spamreport","sg_event_id":"37nvH5QBz858KGVYCM4uOA=="},
{"email":"alice@example.net","timestamp":1740986403,"event":"open","sg_event_id":"FOTFFO0ecsBE-zxFXfs6WA=="},
{"email":"nobody@example.org","timestamp":1740986404,"event":"bounce","type":"bounce","status":"5.1.1"}
]`
)

// For puts another address in a provider's event body in place of the
// one it names.
func For(body, from, to string) string { return strings.ReplaceAll(body, from, to) }

// MailgunBody is a Mailgun webhook body: eventData under the signature
// Mailgun computes, HMAC-SHA256 of timestamp+token under the signing key.
func MailgunBody(key, token string, ts int64, eventData string) []byte {
	mac := hmac.New(sha256.New, []byte(key))
	mac.Write([]byte(strconv.FormatInt(ts, 10) + token))
	return []byte(fmt.Sprintf(`{"signature":{"timestamp":"%d","token":%q,"signature":%q},"event-data":%s}`,
		ts, token, hex.EncodeToString(mac.Sum(nil)), eventData))
}

// SendGridKey is a Signed Event Webhook key pair; Public is the
// verification key as SendGrid shows it (base64 of the DER public key).
type SendGridKey struct {
	Private *ecdsa.PrivateKey
	Public  string
}

// NewSendGridKey makes a key pair.
func NewSendGridKey(t testing.TB) *SendGridKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return &SendGridKey{Private: k, Public: base64.StdEncoding.EncodeToString(der)}
}

// Sign returns the headers SendGrid sends with body: the ECDSA signature
// of timestamp+body and the timestamp.
func (k *SendGridKey) Sign(ts string, body []byte) http.Header {
	sum := sha256.Sum256(append([]byte(ts), body...))
	sig, _ := ecdsa.SignASN1(rand.Reader, k.Private, sum[:])
	return http.Header{"X-Twilio-Email-Event-Webhook-Signature": {base64.StdEncoding.EncodeToString(sig)},
		"X-Twilio-Email-Event-Webhook-Timestamp": {ts}}
}

// BasicAuth is the Authorization header Postmark sends for the user and
// password put in the webhook's URL.
func BasicAuth(user, pass string) http.Header {
	return http.Header{"Authorization": {"Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))}}
}
