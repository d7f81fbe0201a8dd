package ses

import (
	"bytes"
	"context"
	"fmt"
	"net/mail"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/emersion/go-msgauth/dkim"

	"github.com/herald-dev/herald"
	"github.com/herald-dev/herald/internal/sestest"
	"github.com/herald-dev/herald/mailer"
)

func newTransport(t *testing.T, e *sestest.Emulator, opt Options) *Transport {
	t.Helper()
	opt.Region = "eu-west-1"
	opt.Endpoint = e.URL
	opt.Credentials = credentials.NewStaticCredentialsProvider("AKIDTEST", "secret", "")
	tr, err := New(context.Background(), opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	return tr
}

func digestEmail(t *testing.T, to string, i int) *herald.Message {
	t.Helper()
	m, err := mailer.Compose(&mailer.Email{
		From: "My Blog <digest@blog.example.org>", To: to, Subject: fmt.Sprintf("Post %d: déjà vu", i),
		Text: "A new post.\r\n", HTML: "<p>A new post.</p>",
		Headers: map[string]string{
			"List-Unsubscribe":      "<https://news.example.org/unsubscribe?token=T" + fmt.Sprint(i) + ">",
			"List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
			"List-Id":               "My Blog <blog.example.org>",
		},
		MessageID: fmt.Sprintf("<run-%d@blog.example.org>", i),
	})
	if err != nil {
		t.Fatal(err)
	}
	m.From = "digest@blog.example.org"
	return m
}

// Messages go to the emulator through the real SDK as raw MIME: the bytes
// that arrive are the signed message herald composed (DKIM verifies,
// List-Unsubscribe and the Message-ID are there), and the emulator parsed
// each into the right sender, recipient and subject.
func TestSendRawThroughEmulator(t *testing.T) {
	e := sestest.Start(t, sestest.Account(14))
	key, txt, err := mailer.GenerateKey("ed25519")
	if err != nil {
		t.Fatal(err)
	}
	signer, err := mailer.NewSigner("blog.example.org", "herald", key)
	if err != nil {
		t.Fatal(err)
	}
	sesTr := newTransport(t, e, Options{ConfigurationSet: "herald-events"})
	tr := mailer.NewSigningTransport(sesTr, signer)
	ctx := context.Background()
	const n = 5
	for i := range n {
		if err := tr.Send(ctx, digestEmail(t, fmt.Sprintf("reader%d@example.net", i), i)); err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
	}
	raws := e.Raw()
	if len(raws) != n {
		t.Fatalf("%d raw messages went over the wire, want %d", len(raws), n)
	}
	for i, raw := range raws {
		vs, err := dkim.VerifyWithOptions(bytes.NewReader(raw), &dkim.VerifyOptions{
			LookupTXT: func(domain string) ([]string, error) { return []string{txt}, nil },
		})
		if err != nil || len(vs) != 1 || vs[0].Err != nil {
			t.Fatalf("message %d: DKIM does not verify after SES: %v %+v", i, err, vs)
		}
		msg, err := mail.ReadMessage(bytes.NewReader(raw))
		if err != nil {
			t.Fatal(err)
		}
		if got := msg.Header.Get("List-Unsubscribe"); got != fmt.Sprintf("<https://news.example.org/unsubscribe?token=T%d>", i) {
			t.Errorf("message %d: List-Unsubscribe %q", i, got)
		}
		if msg.Header.Get("List-Unsubscribe-Post") != "List-Unsubscribe=One-Click" {
			t.Errorf("message %d: no one-click header", i)
		}
		if got := msg.Header.Get("Message-Id"); got != fmt.Sprintf("<run-%d@blog.example.org>", i) {
			t.Errorf("message %d: Message-ID %q", i, got)
		}
	}
	emails, err := e.Emails(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(emails) != n {
		t.Fatalf("the emulator stored %d emails, want %d", len(emails), n)
	}
	for i, em := range emails {
		if !strings.Contains(em.From, "digest@blog.example.org") || len(em.Destination.To) != 1 ||
			!strings.Contains(em.Destination.To[0], fmt.Sprintf("reader%d@example.net", i)) ||
			em.Subject != fmt.Sprintf("Post %d: déjà vu", i) || !strings.Contains(em.Body.Text, "A new post.") {
			t.Errorf("stored email %d: %+v", i, em)
		}
	}
	r := sesTr.Routes()
	if len(r) != 1 || r[0].Name != "ses:eu-west-1" || r[0].Sent != n || r[0].Failed != 0 || r[0].Kind != "ses" {
		t.Fatalf("routes: %+v", r)
	}
}

// The send rate is the account's MaxSendRate, unless set.
func TestRateFromAccount(t *testing.T) {
	e := sestest.Start(t, sestest.Account(37))
	if got := newTransport(t, e, Options{}).Rate(); got != 37 {
		t.Fatalf("rate %v, want the account's 37/s", got)
	}
	if got := newTransport(t, e, Options{Rate: 5}).Rate(); got != 5 {
		t.Fatalf("rate %v, want the configured 5/s", got)
	}
	// An account SES cannot describe: the sandbox rate, and sending works.
	e2 := sestest.Start(t, "")
	tr := newTransport(t, e2, Options{})
	if tr.Rate() != fallbackRate {
		t.Fatalf("rate %v without an account, want %v", tr.Rate(), fallbackRate)
	}
	if err := tr.Send(context.Background(), digestEmail(t, "a@example.net", 1)); err != nil {
		t.Fatal(err)
	}
}

// SES refusing the request: a bad request is permanent (the message can
// never go), anything else temporary; an unreachable SES is temporary.
func TestErrors(t *testing.T) {
	e := sestest.Start(t, sestest.Account(10))
	tr := newTransport(t, e, Options{})
	m := digestEmail(t, "a@example.net", 1)
	m.Raw = []byte("Subject: no from header\r\n\r\nbody\r\n") // the emulator wants a From
	err := tr.Send(context.Background(), m)
	if err == nil || !herald.IsPermanent(err) {
		t.Fatalf("a message SES refuses: %v, want permanent", err)
	}
	e.Close()
	err = tr.Send(context.Background(), digestEmail(t, "a@example.net", 2))
	if err == nil || herald.IsPermanent(err) {
		t.Fatalf("SES unreachable: %v, want temporary", err)
	}
	r := tr.Routes()[0]
	if r.Failed != 1 || r.Deferred != 1 || r.LastError == "" {
		t.Fatalf("routes: %+v", r)
	}
}
