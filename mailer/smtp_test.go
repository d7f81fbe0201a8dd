package mailer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/herald-dev/herald"
	"github.com/herald-dev/herald/internal/smtptest"
	"github.com/herald-dev/herald/internal/testmail"
)

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// tWriter sends log lines to t.Log, so they show only for failing tests.
type tWriter struct{ t *testing.T }

func (w tWriter) Write(b []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimSpace(string(b)))
	return len(b), nil
}

func newTransport(t *testing.T, srv *smtptest.Server, mod func(*SMTPConfig)) *SMTPTransport {
	t.Helper()
	cfg := SMTPConfig{
		Host:        srv.Host(),
		Port:        srv.Port(),
		TLS:         TLSNone,
		Connections: 2,
		Timeout:     5 * time.Second,
	}
	if mod != nil {
		mod(&cfg)
	}
	tr := NewSMTPTransport(cfg, testLogger(t))
	t.Cleanup(func() { tr.Close() })
	return tr
}

func testMessage(t testing.TB, to string) *herald.Message {
	t.Helper()
	e := sampleEmail()
	e.To = to
	e.MessageID = ""
	m, err := Compose(e)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func sendErr(t *testing.T, err error) *herald.SendError {
	t.Helper()
	var se *herald.SendError
	if !errors.As(err, &se) {
		t.Fatalf("error %v (%T) is not a *herald.SendError", err, err)
	}
	return se
}

func TestSMTPDelivery(t *testing.T) {
	srv := smtptest.Start(t)
	tr := newTransport(t, srv, nil)
	m := testMessage(t, "reader@example.com")
	if err := tr.Send(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	got := srv.WaitFor(t, 1, 5*time.Second)[0]
	if got.From != "digest@blog.example.org" || len(got.To) != 1 || got.To[0] != "reader@example.com" {
		t.Errorf("envelope %q -> %q", got.From, got.To)
	}
	if !bytes.Equal(got.Data, m.Raw) {
		t.Errorf("data differs:\n%s\nwant\n%s", got.Data, m.Raw)
	}
	// A line starting with a dot survives dot-stuffing.
	m2 := *m
	m2.Raw = append(bytes.Clone(m.Raw), ".hidden line\r\n.\r\n"...)
	if err := tr.Send(context.Background(), &m2); err != nil {
		t.Fatal(err)
	}
	if got := srv.WaitFor(t, 2, 5*time.Second)[1]; !bytes.Equal(got.Data, m2.Raw) {
		t.Errorf("dot-stuffed data differs: %q", got.Data[len(got.Data)-30:])
	}
}

func TestSMTPPoolReuse(t *testing.T) {
	srv := smtptest.Start(t)
	tr := newTransport(t, srv, func(c *SMTPConfig) { c.Connections = 3 })
	for i := range 10 {
		if err := tr.Send(context.Background(), testMessage(t, fmt.Sprintf("r%d@example.com", i))); err != nil {
			t.Fatal(err)
		}
	}
	if n := srv.Connections(); n != 1 {
		t.Errorf("10 sequential messages used %d connections, want 1", n)
	}
	var wg sync.WaitGroup
	for g := range 10 {
		wg.Go(func() {
			for i := range 5 {
				if err := tr.Send(context.Background(), testMessage(t, fmt.Sprintf("g%d-%d@example.com", g, i))); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	srv.WaitFor(t, 60, 5*time.Second)
	if n := srv.Connections(); n > 3 {
		t.Errorf("60 messages used %d connections, want at most 3", n)
	}
	if n := tr.IdleConnections(); n < 1 || n > 3 {
		t.Errorf("%d idle connections", n)
	}
}

func TestSMTPTemporaryReply(t *testing.T) {
	srv := smtptest.Start(t)
	tr := newTransport(t, srv, nil)
	srv.FailNext(1, 451, "greylisted, try later")
	err := tr.Send(context.Background(), testMessage(t, "a@example.com"))
	se := sendErr(t, err)
	if !se.Temporary || se.Code != 451 || herald.IsPermanent(err) || !strings.Contains(err.Error(), "greylisted") {
		t.Errorf("got %#v: %v", se, err)
	}
	if err := tr.Send(context.Background(), testMessage(t, "a@example.com")); err != nil {
		t.Fatalf("after 451: %v", err)
	}
}

func TestSMTPPermanentReply(t *testing.T) {
	srv := smtptest.Start(t)
	tr := newTransport(t, srv, nil)

	srv.FailNext(1, 550, "content rejected")
	err := tr.Send(context.Background(), testMessage(t, "a@example.com"))
	if se := sendErr(t, err); se.Temporary || se.Code != 550 || !herald.IsPermanent(err) {
		t.Errorf("DATA 550: %#v", se)
	}

	srv.RejectRecipient(func(addr string) (int, string, bool) {
		return 550, "no such mailbox", strings.HasPrefix(addr, "gone@")
	})
	err = tr.Send(context.Background(), testMessage(t, "gone@example.com"))
	if se := sendErr(t, err); se.Temporary || se.Code != 550 || !strings.Contains(err.Error(), "rcpt") {
		t.Errorf("RCPT 550: %#v %v", se, err)
	}
	srv.RejectRecipient(func(addr string) (int, string, bool) { return 452, "mailbox full", true })
	err = tr.Send(context.Background(), testMessage(t, "full@example.com"))
	if se := sendErr(t, err); !se.Temporary || se.Code != 452 {
		t.Errorf("RCPT 452: %#v", se)
	}
	srv.RejectRecipient(nil)
	if err := tr.Send(context.Background(), testMessage(t, "here@example.com")); err != nil {
		t.Fatal(err)
	}
	if srv.Count() != 1 {
		t.Errorf("count %d", srv.Count())
	}
}

func TestSMTPRefused(t *testing.T) {
	srv := smtptest.Start(t)
	tr := newTransport(t, srv, nil)
	if err := tr.Send(context.Background(), testMessage(t, "a@example.com")); err != nil {
		t.Fatal(err)
	}
	if err := srv.SetRefuse(true); err != nil {
		t.Fatal(err)
	}
	// The pooled connection was cut and a new dial is refused.
	err := tr.Send(context.Background(), testMessage(t, "a@example.com"))
	if se := sendErr(t, err); !se.Temporary || se.Code != 0 {
		t.Errorf("refused: %#v %v", se, err)
	}
	if err := srv.SetRefuse(false); err != nil {
		t.Fatal(err)
	}
	if err := tr.Send(context.Background(), testMessage(t, "a@example.com")); err != nil {
		t.Fatalf("after the server came back: %v", err)
	}
	srv.WaitFor(t, 2, 5*time.Second)
}

func TestSMTPDroppedAfterData(t *testing.T) {
	srv := smtptest.Start(t)
	tr := newTransport(t, srv, nil)
	srv.DropAfterData(1)
	err := tr.Send(context.Background(), testMessage(t, "a@example.com"))
	if se := sendErr(t, err); !se.Temporary || se.Code != 0 {
		t.Errorf("dropped: %#v %v", se, err)
	}
	if err := tr.Send(context.Background(), testMessage(t, "a@example.com")); err != nil {
		t.Fatalf("after drop: %v", err)
	}
	if srv.Connections() != 2 || srv.Dropped() != 1 || srv.Count() != 1 {
		t.Errorf("connections %d dropped %d count %d", srv.Connections(), srv.Dropped(), srv.Count())
	}
}

func TestSMTPIdleRetirement(t *testing.T) {
	srv := smtptest.Start(t)
	tr := newTransport(t, srv, func(c *SMTPConfig) { c.IdleTimeout = 100 * time.Millisecond })
	if err := tr.Send(context.Background(), testMessage(t, "a@example.com")); err != nil {
		t.Fatal(err)
	}
	if tr.IdleConnections() != 1 {
		t.Fatalf("%d idle connections", tr.IdleConnections())
	}
	waitUntil(t, 5*time.Second, "idle connection retired", func() bool {
		return tr.IdleConnections() == 0 && srv.ActiveConnections() == 0
	})
	if err := tr.Send(context.Background(), testMessage(t, "a@example.com")); err != nil {
		t.Fatal(err)
	}
	if srv.Connections() != 2 {
		t.Errorf("connections %d, want 2", srv.Connections())
	}
}

// A relay that hangs up on idle clients before our IdleTimeout: the dead
// pooled connection is noticed at MAIL, the other idle ones are dropped
// too, and the message goes on a new connection.
func TestSMTPStaleConnection(t *testing.T) {
	srv := smtptest.Start(t, smtptest.WithReadTimeout(300*time.Millisecond))
	tr := newTransport(t, srv, func(c *SMTPConfig) { c.IdleTimeout = time.Minute })
	srv.SetDelay(500 * time.Millisecond) // so two sends need two connections
	var wg sync.WaitGroup
	for _, m := range []*herald.Message{testMessage(t, "a@example.com"), testMessage(t, "b@example.com")} {
		wg.Go(func() {
			if err := tr.Send(context.Background(), m); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	srv.SetDelay(0)
	if srv.Connections() != 2 || tr.IdleConnections() != 2 {
		t.Fatalf("connections %d, idle %d", srv.Connections(), tr.IdleConnections())
	}
	waitUntil(t, 5*time.Second, "server hung up", func() bool { return srv.ActiveConnections() == 0 })
	if err := tr.Send(context.Background(), testMessage(t, "a@example.com")); err != nil {
		t.Fatalf("send after the relay hung up: %v", err)
	}
	if srv.Connections() != 3 || srv.Count() != 3 || tr.IdleConnections() != 1 {
		t.Errorf("connections %d count %d idle %d", srv.Connections(), srv.Count(), tr.IdleConnections())
	}
}

func TestSMTPAuth(t *testing.T) {
	srv := smtptest.Start(t, smtptest.WithAuth("herald", "s3cret"))
	ok := newTransport(t, srv, func(c *SMTPConfig) { c.Username, c.Password = "herald", "s3cret" })
	if err := ok.Send(context.Background(), testMessage(t, "a@example.com")); err != nil {
		t.Fatal(err)
	}
	// Wrong credentials and missing ones are our fault, not the reader's:
	// temporary, so nobody is marked bounced.
	wrong := newTransport(t, srv, func(c *SMTPConfig) { c.Username, c.Password = "herald", "nope" })
	err := wrong.Send(context.Background(), testMessage(t, "a@example.com"))
	if se := sendErr(t, err); !se.Temporary || se.Code != 535 {
		t.Errorf("wrong password: %#v %v", se, err)
	}
	none := newTransport(t, srv, nil)
	err = none.Send(context.Background(), testMessage(t, "a@example.com"))
	if se := sendErr(t, err); !se.Temporary || se.Code/100 != 5 {
		t.Errorf("no auth: %#v %v", se, err)
	}
	// A username for a relay without AUTH is a configuration error.
	plain := smtptest.Start(t)
	tr := newTransport(t, plain, func(c *SMTPConfig) { c.Username, c.Password = "u", "p" })
	err = tr.Send(context.Background(), testMessage(t, "a@example.com"))
	if se := sendErr(t, err); !se.Temporary || !strings.Contains(err.Error(), "AUTH") {
		t.Errorf("AUTH missing: %v", err)
	}
	if srv.Count() != 1 || plain.Count() != 0 {
		t.Errorf("counts %d %d", srv.Count(), plain.Count())
	}
}

func TestSMTPStartTLS(t *testing.T) {
	srv := smtptest.Start(t, smtptest.WithTLS(), smtptest.WithAuth("u", "p"))
	tr := newTransport(t, srv, func(c *SMTPConfig) {
		c.TLS, c.TLSConfig, c.Username, c.Password = TLSStartTLS, srv.ClientTLSConfig(), "u", "p"
		c.HelloName = "herald.example.org"
	})
	if err := tr.Send(context.Background(), testMessage(t, "a@example.com")); err != nil {
		t.Fatal(err)
	}
	// An untrusted certificate fails, temporarily.
	untrusted := newTransport(t, srv, func(c *SMTPConfig) { c.TLS = TLSStartTLS })
	err := untrusted.Send(context.Background(), testMessage(t, "a@example.com"))
	if se := sendErr(t, err); !se.Temporary {
		t.Errorf("untrusted: %#v", se)
	}
	// STARTTLS required but not offered.
	plain := smtptest.Start(t)
	noTLS := newTransport(t, plain, func(c *SMTPConfig) { c.TLS = TLSStartTLS })
	err = noTLS.Send(context.Background(), testMessage(t, "a@example.com"))
	if se := sendErr(t, err); !se.Temporary || !strings.Contains(err.Error(), "STARTTLS") {
		t.Errorf("no STARTTLS: %v", err)
	}
	if plain.Count() != 0 || srv.Count() != 1 {
		t.Errorf("counts %d %d", plain.Count(), srv.Count())
	}
}

func TestSMTPImplicitTLS(t *testing.T) {
	srv := smtptest.Start(t, smtptest.WithImplicitTLS())
	tr := newTransport(t, srv, func(c *SMTPConfig) { c.TLS, c.TLSConfig = TLSImplicit, srv.ClientTLSConfig() })
	for range 3 {
		if err := tr.Send(context.Background(), testMessage(t, "a@example.com")); err != nil {
			t.Fatal(err)
		}
	}
	if srv.Connections() != 1 {
		t.Errorf("connections %d", srv.Connections())
	}
}

func TestSMTPTimeout(t *testing.T) {
	srv := smtptest.Start(t)
	tr := newTransport(t, srv, func(c *SMTPConfig) { c.Timeout = 200 * time.Millisecond })
	srv.SetDelay(time.Hour) // without the timeout, Send waits that long
	errc := make(chan error, 1)
	go func() { errc <- tr.Send(context.Background(), testMessage(t, "a@example.com")) }()
	var err error
	select {
	case err = <-errc:
	case <-time.After(time.Minute):
		t.Fatal("Send is still waiting for the server: the 200ms timeout did not fire")
	}
	if se := sendErr(t, err); !se.Temporary {
		t.Errorf("timeout: %#v", se)
	}
}

func TestSMTPContext(t *testing.T) {
	srv := smtptest.Start(t)
	tr := newTransport(t, srv, func(c *SMTPConfig) { c.Connections = 1 })
	const delay = 2 * time.Second
	srv.SetDelay(delay)
	done := make(chan error, 1)
	go func() { done <- tr.Send(context.Background(), testMessage(t, "slow@example.com")) }()
	waitUntil(t, 5*time.Second, "first send connected", func() bool { return srv.Connections() == 1 })

	// The only connection is busy: a short ctx gives up waiting for it.
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := tr.Send(ctx, testMessage(t, "b@example.com"))
	if se := sendErr(t, err); !se.Temporary || !errors.Is(err, context.DeadlineExceeded) ||
		!strings.Contains(err.Error(), "waiting for a connection") {
		t.Errorf("waiting: %v", err)
	}
	if d := time.Since(start); d > delay*3/4 {
		t.Errorf("gave up after %v", d)
	}
	if err := <-done; err != nil {
		t.Fatalf("slow send: %v", err)
	}

	// A ctx ending mid-transaction cuts the connection at once.
	ctx, cancel = context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start = time.Now()
	err = tr.Send(ctx, testMessage(t, "c@example.com"))
	if se := sendErr(t, err); !se.Temporary || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("cancelled: %v", err)
	}
	if d := time.Since(start); d > delay*3/4 {
		t.Errorf("cancelled send returned after %v", d)
	}
	srv.SetDelay(0)
	if err := tr.Send(context.Background(), testMessage(t, "d@example.com")); err != nil {
		t.Fatal(err)
	}
}

func TestSMTPRate(t *testing.T) {
	srv := smtptest.Start(t)
	tr := newTransport(t, srv, func(c *SMTPConfig) { c.Rate = 20 })
	start := time.Now()
	for range 5 {
		if err := tr.Send(context.Background(), testMessage(t, "a@example.com")); err != nil {
			t.Fatal(err)
		}
	}
	// 20/s with a burst of one: four gaps of 50ms.
	if d := time.Since(start); d < 190*time.Millisecond {
		t.Errorf("5 messages at 20/s took %v", d)
	}
}

func TestSMTPClose(t *testing.T) {
	srv := smtptest.Start(t)
	tr := newTransport(t, srv, nil)
	if err := tr.Send(context.Background(), testMessage(t, "a@example.com")); err != nil {
		t.Fatal(err)
	}
	if err := tr.Close(); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 5*time.Second, "connection closed", func() bool { return srv.ActiveConnections() == 0 })
	err := tr.Send(context.Background(), testMessage(t, "a@example.com"))
	if !errors.Is(err, ErrClosed) || herald.IsPermanent(err) {
		t.Errorf("after Close: %v", err)
	}
	if err := tr.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestSMTPBadEnvelope(t *testing.T) {
	srv := smtptest.Start(t)
	tr := newTransport(t, srv, nil)
	for _, m := range []*herald.Message{
		{From: "a@example.org", To: "b@example.org\r\nRCPT TO:<c@example.org>", Raw: []byte("x\r\n")},
		{From: "", To: "b@example.org", Raw: []byte("x\r\n")},
		{From: "a@example.org", To: "b@example.org"},
	} {
		err := tr.Send(context.Background(), m)
		if !herald.IsPermanent(err) {
			t.Errorf("%q: %v", m.To, err)
		}
	}
	if srv.Connections() != 0 {
		t.Error("dialled for a bad envelope")
	}
}

func TestSMTPUTF8(t *testing.T) {
	srv := smtptest.Start(t)
	tr := newTransport(t, srv, nil)
	m := testMessage(t, "zoë@example.com")
	if err := tr.Send(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	if got := srv.WaitFor(t, 1, 5*time.Second)[0]; got.To[0] != "zoë@example.com" {
		t.Errorf("recipient %q", got.To[0])
	}
	// A relay without SMTPUTF8 can never take it: permanent, no retry.
	old := smtptest.Start(t, smtptest.WithoutSMTPUTF8())
	tr2 := newTransport(t, old, nil)
	err := tr2.Send(context.Background(), m)
	if !herald.IsPermanent(err) || !strings.Contains(err.Error(), "SMTPUTF8") {
		t.Errorf("without SMTPUTF8: %v", err)
	}
	if err := tr2.Send(context.Background(), testMessage(t, "zoe@example.com")); err != nil {
		t.Errorf("ASCII address: %v", err)
	}
}

func TestSMTPUnreachable(t *testing.T) {
	srv := smtptest.Start(t)
	srv.SetRefuse(true)
	tr := newTransport(t, srv, nil)
	err := tr.Send(context.Background(), testMessage(t, "a@example.com"))
	if se := sendErr(t, err); !se.Temporary || se.Code != 0 || !strings.Contains(err.Error(), "dial") {
		t.Errorf("%v", err)
	}
}

func waitUntil(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting: %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestFileTransport(t *testing.T) {
	dir := t.TempDir() + "/outbox/nested"
	tr, err := NewFileTransport(dir)
	if err != nil {
		t.Fatal(err)
	}
	m := testMessage(t, "a@example.com")
	m.Kind = herald.KindConfirm
	m2 := testMessage(t, "b@example.com")
	for _, msg := range []*herald.Message{m, m2} {
		if err := tr.Send(context.Background(), msg); err != nil {
			t.Fatal(err)
		}
	}
	files := readDir(t, dir)
	if len(files) != 2 {
		t.Fatalf("files %v", files)
	}
	// Named by what and to whom; the same message, readable.
	found := 0
	want := testmail.MustParse(t, m.Raw)
	for name, data := range files {
		if !strings.HasSuffix(name, ".eml") || strings.HasPrefix(name, ".") || strings.ContainsAny(name, "<>") {
			t.Errorf("file name %q", name)
		}
		if strings.Contains(name, "-confirm-a@example.com-") {
			found++
			got := testmail.MustParse(t, data)
			if got.Text != want.Text || got.HTML != want.HTML || got.Header.Get("Message-Id") != m.MessageID || got.Header.Get("Subject") != want.Header.Get("Subject") {
				t.Errorf("the file's message differs from the one sent:\n%s", data)
			}
		} else if !strings.Contains(name, "-email-b@example.com-") {
			t.Errorf("file name %q names no kind or recipient", name)
		}
	}
	if found != 1 {
		t.Errorf("message not found by kind and address in %v", keys(files))
	}
	if err := tr.Close(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := tr.Send(ctx, m); herald.IsPermanent(err) || err == nil {
		t.Errorf("cancelled ctx: %v", err)
	}
}

// What `cat` shows of an .eml file: the link as it is, not broken by
// quoted-printable ("=3D", soft line breaks), and accents as they are.
func TestFileTransportWritesReadableText(t *testing.T) {
	link := "https://news.example.org/confirm?token=" + strings.Repeat("AbC0123456", 12) + "&x=1"
	e := sampleEmail()
	e.Subject = "Confirm your subscription to Café Ünïcode"
	e.Text = "Welcome to Café Ünïcode.\n\nConfirm by opening this link:\n\n" + link + "\n"
	e.HTML = "<p>Welcome to Café Ünïcode.</p><p><a href=\"" + link + "\">Confirm</a> = yes</p>\n"
	m, err := Compose(e)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(m.Raw, []byte("=3D")) {
		t.Fatal("the composed message is not quoted-printable: this test tests nothing")
	}
	dir := t.TempDir()
	tr, _ := NewFileTransport(dir)
	if err := tr.Send(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	for _, data := range readDir(t, dir) {
		if !bytes.Contains(data, []byte("\r\n"+link+"\r\n")) || !bytes.Contains(data, []byte("Welcome to Café Ünïcode.")) {
			t.Fatalf("the link or the accents are not as written:\n%s", data)
		}
		if bytes.Contains(data, []byte("quoted-printable")) || !bytes.Contains(data, []byte("Content-Transfer-Encoding: 8bit")) {
			t.Fatalf("text parts not 8bit:\n%s", data)
		}
		got, want := testmail.MustParse(t, data), testmail.MustParse(t, m.Raw)
		if got.Text != want.Text || got.HTML != want.HTML {
			t.Fatalf("a mail client reads a different message:\n%q\n%q", got.Text, want.Text)
		}
	}
	// A DKIM-signed message is written as signed.
	signed := append([]byte("DKIM-Signature: v=1; a=rsa-sha256; d=example.org; s=x; b=abc\r\n"), m.Raw...)
	if got := readable(signed); !bytes.Equal(got, signed) {
		t.Fatal("a signed message was rewritten")
	}
	// A line too long for 8bit keeps its encoding; garbage stays garbage.
	e.Text = strings.Repeat("x", 1200)
	long, err := Compose(e)
	if err != nil {
		t.Fatal(err)
	}
	if got := readable(long.Raw); !bytes.Equal(got, long.Raw) {
		t.Fatal("a part with a 1200-byte line was rewritten as 8bit")
	}
	for _, junk := range []string{"", "no header", "Content-Type: multipart/alternative\r\n\r\nbody", "Content-Type: multipart/alternative; boundary=x\r\n\r\n--x\r\nbroken"} {
		if got := readable([]byte(junk)); string(got) != junk {
			t.Errorf("readable(%q) = %q", junk, got)
		}
	}
}

func TestFileSafe(t *testing.T) {
	for in, want := range map[string]string{
		"<abc@example.org>":                    "abc@example.org",
		"<../../etc/passwd@x>":                 ".._.._etc_passwd@x",
		"<a b/c\\d\x00@ö.org>":                 "a_b_c_d_@_.org",
		"":                                     "",
		"<" + strings.Repeat("x", 200) + "@y>": strings.Repeat("x", 80),
	} {
		got := fileSafe(in)
		if want == "" {
			if len(got) != 16 {
				t.Errorf("fileSafe(%q) = %q, want random hex", in, got)
			}
			continue
		}
		if got != want {
			t.Errorf("fileSafe(%q) = %q, want %q", in, got, want)
		}
	}
}

func readDir(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := make(map[string][]byte)
	for _, e := range entries {
		info, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		if perm := info.Mode().Perm(); perm != 0o600 {
			t.Errorf("%s has mode %v, want 0600", e.Name(), perm)
		}
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out[e.Name()] = data
	}
	return out
}

func keys[V any](m map[string]V) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	return ks
}
