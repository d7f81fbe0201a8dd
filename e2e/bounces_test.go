package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/mail"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/herald-dev/herald/internal/imaptest"
	"github.com/herald-dev/herald/internal/smtptest"
	"github.com/herald-dev/herald/internal/testenv"
	"github.com/herald-dev/herald/internal/webhooktest"
)

// addReaders adds confirmed readers one by one through the admin API.
func (in *instance) addReaders(emails ...string) {
	in.t.Helper()
	for _, e := range emails {
		if r := in.api("POST", "/api/v1/subscribers", fmt.Sprintf(`{"email":%q,"frequency":"daily","confirmed":true}`, e)); r.Status != 201 {
			in.t.Fatalf("add %s: %d %s", e, r.Status, r.Body)
		}
	}
}

// webhook posts a provider's call to /webhooks/{provider}.
func (in *instance) webhook(provider string, h http.Header, body []byte) response {
	in.t.Helper()
	var hdr []string
	for k, vs := range h {
		hdr = append(hdr, k, vs[0])
	}
	return in.do("POST", "/webhooks/"+provider, "application/json", string(body), hdr...)
}

// readerStates is each reader's status and hard-bounce count.
func (in *instance) readerStates(emails ...string) map[string]string {
	in.t.Helper()
	out := map[string]string{}
	for _, e := range emails {
		s := in.subscriber(e)
		out[e] = fmt.Sprintf("%v/%v", s["status"], s["bounces"])
	}
	return out
}

// TestProviderWebhooks: herald runs with every provider's webhook on,
// trusting an SNS signing host served on loopback over TLS (the process
// trusts its certificate through SSL_CERT_FILE). Calls with a bad
// signature, password or key are 401 and change no reader; then SNS's
// subscription confirmation is followed, and a signed Postmark hard
// bounce, SES complaint and bounce (through SNS), Mailgun permanent
// failure and SendGrid spam report leave each reader bounced or
// unsubscribed, and nobody else changed.
func TestProviderWebhooks(t *testing.T) {
	sm := smtptest.Start(t)
	sns := webhooktest.NewSNS(t)
	sg := webhooktest.NewSendGridKey(t)
	const mailgunKey = "key-3ax6xnjp29jd6fds4gc373sgvjxteol0"
	// bounce_limit = 1: one hard bounce makes a reader bounced.
	in := newInstance(t, robustConfig(sm.Port(), "", "[mail]\nbounce_limit = 1", fmt.Sprintf(`[bounces]
sns_topics = [%q]
sns_cert_host = %q
postmark_user = "postmark"
postmark_password = "s3cret-pass"
mailgun_signing_key = %q
sendgrid_public_key = %q`, webhooktest.Topic, sns.Host(), mailgunKey, sg.Public)), "SSL_CERT_FILE="+sns.CAFile(t, t.TempDir()))
	p := in.start()
	defer p.stop()

	const (
		postmark = "alice@example.net"
		sesSpam  = "carol@example.org"
		sesHard  = "sam@example.org"
		mailgun  = "dave@example.org"
		sendgrid = "erin@example.org"
		bystand  = "zoe@example.org"
	)
	all := []string{postmark, sesSpam, sesHard, mailgun, sendgrid, bystand}
	in.addReaders(all...)
	before := in.readerStates(all...)

	now := time.Now()
	ts := strconv.FormatInt(now.Unix(), 10)
	sesBounce := webhooktest.For(webhooktest.SESBounce, "alice@example.net", sesHard)
	signed := sns.Signed(t, "Notification", sesBounce, now)
	mgBody := webhooktest.MailgunBody(mailgunKey, "tok-e2e-1", now.Unix(), webhooktest.For(webhooktest.MailgunFailed, "alice@example.net", mailgun))
	sgBody := []byte(`[{"email":"` + sendgrid + `","timestamp":` + ts + `,"event":"spamreport","sg_event_id":"37nvH5QBz858KGVYCM4uOA=="}]`)

	// Forgeries: each answered 401, none applied.
	forged := []struct {
		provider string
		h        http.Header
		body     []byte
	}{
		{"postmark", webhooktest.BasicAuth("postmark", "guess"), []byte(webhooktest.PostmarkHard)},
		{"postmark", nil, []byte(webhooktest.PostmarkHard)},
		{"ses", nil, []byte(strings.Replace(string(signed), sesHard, bystand, 1))}, // changed after signing
		{"mailgun", nil, webhooktest.MailgunBody("not-the-signing-key-at-all", "tok-e2e-0", now.Unix(), webhooktest.MailgunFailed)},
		{"sendgrid", webhooktest.NewSendGridKey(t).Sign(ts, sgBody), sgBody},
		{"sendgrid", sg.Sign(ts, sgBody), []byte(strings.Replace(string(sgBody), sendgrid, bystand, 1))},
	}
	for _, f := range forged {
		if r := in.webhook(f.provider, f.h, f.body); r.Status != http.StatusUnauthorized {
			t.Fatalf("forged %s call: %d %s, want 401", f.provider, r.Status, r.Body)
		}
	}
	if got := in.readerStates(all...); fmt.Sprint(got) != fmt.Sprint(before) {
		t.Fatalf("forged calls changed readers: %v, was %v", got, before)
	}

	// SNS asks to confirm the subscription first.
	r := in.webhook("ses", nil, sns.Signed(t, "SubscriptionConfirmation", "You have chosen to subscribe to the topic "+webhooktest.Topic, now))
	if r.Status != 200 || !strings.Contains(r.Body, `"confirmed":true`) || sns.Confirmed.Load() != 1 {
		t.Fatalf("SNS subscription confirmation: %d %s (links followed: %d)", r.Status, r.Body, sns.Confirmed.Load())
	}

	calls := []struct {
		provider string
		h        http.Header
		body     []byte
	}{
		{"postmark", webhooktest.BasicAuth("postmark", "s3cret-pass"), []byte(webhooktest.PostmarkHard)},
		{"ses", nil, sns.Signed(t, "Notification", webhooktest.SESComplaint, now)},
		{"ses", nil, signed},
		{"mailgun", nil, mgBody},
		{"sendgrid", sg.Sign(ts, sgBody), sgBody},
	}
	for _, c := range calls {
		r := in.webhook(c.provider, c.h, c.body)
		var res struct{ Applied int }
		if r.Status != 200 || json.Unmarshal([]byte(r.Body), &res) != nil || res.Applied != 1 {
			t.Fatalf("%s call: %d %s, want one report applied", c.provider, r.Status, r.Body)
		}
	}
	// A replayed Mailgun call is refused.
	if r := in.webhook("mailgun", nil, mgBody); r.Status != http.StatusUnauthorized {
		t.Fatalf("replayed Mailgun call: %d %s", r.Status, r.Body)
	}
	want := map[string]string{postmark: "bounced", sesSpam: "unsubscribed", sesHard: "bounced", mailgun: "bounced", sendgrid: "unsubscribed", bystand: "confirmed"}
	for e, st := range want {
		if got := in.status(e); got != st {
			t.Errorf("%s is %s, want %s", e, got, st)
		}
	}
}

// TestBounceMailbox: herald sends a digest to five readers with a VERP
// return path, and is stopped. DSNs for that mail, as Postfix and Exim
// (by the VERP address) and Gmail and Microsoft 365 (quoting the
// Message-ID only) write them, arrive in the bounce mailbox on a go-imap
// server, with a report for a message herald never sent. herald starts
// again and polls the mailbox: the four readers are bounced, the fifth
// is not; the four reports left INBOX for the processed folder, the
// unknown one is left in INBOX and logged.
func TestBounceMailbox(t *testing.T) {
	sm := smtptest.Start(t)
	imap := imaptest.Start(t)
	in := newInstance(t, robustConfig(sm.Port(), "", "[mail]\nbounce_limit = 1", fmt.Sprintf(`[bounces]
mailbox = %q
poll_interval = "10s"
return_path = "bounces@blog.example.org"`, imap.URL())), "HERALD_BOUNCE_PASSWORD="+imaptest.Password)
	readers := map[string]string{ // reader → the DSN their server writes
		"alice@example.net": "postfix.eml",
		"carol@example.org": "exim.eml",
		"erin@gmail.com":    "gmail.eml",
		"frank@contoso.com": "m365.eml",
	}
	const fine = "zoe@example.org"
	p := in.start()
	in.addReaders("alice@example.net", "carol@example.org", "erin@gmail.com", "frank@contoso.com", fine)
	in.addPost("bounce-1", "A post that will bounce")
	if run := in.runAndWait("daily"); run["state"] != "done" || run["sent"] != float64(5) {
		t.Fatalf("run: %v", run)
	}
	p.stop() // the sent log is written at the latest on the way out

	sent := map[string]smtptest.Message{}
	for _, m := range sm.Messages() {
		if strings.Contains(string(m.Data), "A post that will bounce") {
			sent[m.To[0]] = m
		}
	}
	if len(sent) != 5 {
		t.Fatalf("digests sent to %d readers, want 5", len(sent))
	}
	for rcpt, file := range readers {
		m := sent[rcpt]
		if !strings.HasPrefix(m.From, "bounces+") || !strings.HasSuffix(m.From, "@blog.example.org") {
			t.Fatalf("envelope sender to %s is %q, want a VERP address", rcpt, m.From)
		}
		returnPath := m.From
		msg, err := mail.ReadMessage(strings.NewReader(string(m.Data)))
		if err != nil {
			t.Fatal(err)
		}
		msgID := msg.Header.Get("Message-Id")
		if file == "gmail.eml" || file == "m365.eml" {
			returnPath = "bounces@blog.example.org" // the report quotes the Message-ID only
		}
		imap.Append(dsn(t, file, returnPath, msgID))
	}
	imap.Append(dsn(t, "exim-plain.eml", "bounces@blog.example.org", "<never-sent@blog.example.org>"))

	p = in.start()
	defer p.stop()
	testenv.Eventually(t, time.Minute, "the bounce mailbox to be polled", func() bool {
		return len(imap.Subjects("herald-processed")) == 4
	})
	for rcpt := range readers {
		if s := in.subscriber(rcpt); s["status"] != "bounced" {
			t.Errorf("%s: %v, want bounced", rcpt, s)
		}
	}
	if st := in.status(fine); st != "confirmed" {
		t.Errorf("%s is %s, want confirmed", fine, st)
	}
	if left := imap.Subjects("INBOX"); len(left) != 1 {
		t.Fatalf("left in INBOX: %q, want the report for a message herald never sent", left)
	}
	testenv.Eventually(t, 10*time.Second, "the unknown report to be logged", func() bool {
		return strings.Contains(p.Output(), "a report for a message herald did not send") &&
			strings.Contains(p.Output(), "never-sent@blog.example.org")
	})
}

// dsn reads a report from the bounce package's corpus, addressed to
// returnPath about the message msgID.
func dsn(t *testing.T, file, returnPath, msgID string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "bounce", "testdata", "dsn", file))
	if err != nil {
		t.Fatal(err)
	}
	s := strings.ReplaceAll(string(b), "{{RETURN_PATH}}", returnPath)
	return []byte(strings.ReplaceAll(s, "{{MESSAGE_ID}}", msgID))
}
