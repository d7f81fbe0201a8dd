package smtptest

import (
	"crypto/tls"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

const body = "From: a@example.org\r\nTo: b@example.org\r\nSubject: hi\r\n\r\nhello\r\n"

func dial(t *testing.T, s *Server) *smtp.Client {
	t.Helper()
	c, err := smtp.Dial(s.Addr())
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	c.CommandTimeout = 5 * time.Second
	c.SubmissionTimeout = 5 * time.Second
	t.Cleanup(func() { c.Close() })
	return c
}

func send(c *smtp.Client, to string) error {
	return c.SendMail("a@example.org", []string{to}, strings.NewReader(body))
}

func smtpCode(err error) int {
	var se *smtp.SMTPError
	if errors.As(err, &se) {
		return se.Code
	}
	return 0
}

func TestDelivery(t *testing.T) {
	s := Start(t)
	if s.Host() != "127.0.0.1" || s.Port() == 0 || s.Addr() != fmt.Sprintf("127.0.0.1:%d", s.Port()) {
		t.Fatalf("address: %q %q %d", s.Addr(), s.Host(), s.Port())
	}
	c := dial(t, s)
	for i := range 3 {
		if err := send(c, fmt.Sprintf("r%d@example.org", i)); err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
	}
	msgs := s.WaitFor(t, 3, 5*time.Second)
	if len(msgs) != 3 {
		t.Fatalf("got %d messages", len(msgs))
	}
	m := msgs[1]
	if m.From != "a@example.org" || len(m.To) != 1 || m.To[0] != "r1@example.org" {
		t.Errorf("envelope: %+v", m)
	}
	if string(m.Data) != body {
		t.Errorf("data = %q", m.Data)
	}
	if m.Received.IsZero() {
		t.Error("Received not set")
	}
	if s.Connections() != 1 || s.Count() != 3 {
		t.Errorf("connections %d, count %d", s.Connections(), s.Count())
	}
	// Messages returns copies.
	msgs[0].To[0] = "changed"
	if s.Messages()[0].To[0] == "changed" {
		t.Error("Messages shares its slices")
	}
	s.Reset()
	if s.Count() != 0 || len(s.Messages()) != 0 || s.Connections() != 0 {
		t.Error("Reset kept state")
	}
}

func TestFailNext(t *testing.T) {
	s := Start(t)
	c := dial(t, s)
	s.FailNext(2, 451, "try later")
	for range 2 {
		if err := send(c, "b@example.org"); smtpCode(err) != 451 || !strings.Contains(err.Error(), "try later") {
			t.Fatalf("want 451, got %v", err)
		}
	}
	if err := send(c, "b@example.org"); err != nil {
		t.Fatalf("third send: %v", err)
	}
	s.FailNext(1, 550, "no such user")
	if err := send(c, "b@example.org"); smtpCode(err) != 550 {
		t.Fatalf("want 550, got %v", err)
	}
	if s.Count() != 1 {
		t.Errorf("count = %d, want 1", s.Count())
	}
}

func TestRejectRecipient(t *testing.T) {
	s := Start(t)
	s.RejectRecipient(func(addr string) (int, string, bool) {
		if strings.HasPrefix(addr, "gone") {
			return 550, "mailbox unavailable", true
		}
		return 0, "", false
	})
	c := dial(t, s)
	if err := send(c, "gone@example.org"); smtpCode(err) != 550 {
		t.Fatalf("want 550, got %v", err)
	}
	if err := c.Reset(); err != nil {
		t.Fatal(err)
	}
	if err := send(c, "here@example.org"); err != nil {
		t.Fatal(err)
	}
	s.RejectRecipient(nil)
	if err := send(c, "gone@example.org"); err != nil {
		t.Fatal(err)
	}
}

func TestDropAfterData(t *testing.T) {
	s := Start(t)
	s.DropAfterData(1)
	c := dial(t, s)
	err := send(c, "b@example.org")
	if err == nil || smtpCode(err) != 0 {
		t.Fatalf("want a connection error, got %v", err)
	}
	if s.Dropped() != 1 || s.Count() != 0 {
		t.Errorf("dropped %d count %d", s.Dropped(), s.Count())
	}
	c2 := dial(t, s)
	if err := send(c2, "b@example.org"); err != nil {
		t.Fatalf("after drop: %v", err)
	}
}

func TestRefuse(t *testing.T) {
	s := Start(t)
	c := dial(t, s)
	if err := send(c, "b@example.org"); err != nil {
		t.Fatal(err)
	}
	if err := s.SetRefuse(true); err != nil {
		t.Fatal(err)
	}
	if c2, err := smtp.Dial(s.Addr()); err == nil {
		c2.Close()
		t.Fatal("dial succeeded while refusing")
	}
	// The open connection was cut too.
	if err := send(c, "b@example.org"); err == nil {
		t.Fatal("send on a cut connection succeeded")
	}
	if err := s.SetRefuse(false); err != nil {
		t.Fatal(err)
	}
	c3 := dial(t, s)
	if err := send(c3, "b@example.org"); err != nil {
		t.Fatalf("after refuse: %v", err)
	}
	s.WaitFor(t, 2, 5*time.Second)
}

func TestDelay(t *testing.T) {
	s := Start(t)
	s.SetDelay(200 * time.Millisecond)
	c := dial(t, s)
	start := time.Now()
	if err := send(c, "b@example.org"); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 200*time.Millisecond {
		t.Errorf("answered after %v, want >= 200ms", d)
	}
	s.SetDelay(0)
}

func TestDiscard(t *testing.T) {
	s := Start(t)
	s.Discard(true)
	c := dial(t, s)
	for range 5 {
		if err := send(c, "b@example.org"); err != nil {
			t.Fatal(err)
		}
	}
	if s.Count() != 5 || len(s.Messages()) != 0 {
		t.Errorf("count %d, kept %d", s.Count(), len(s.Messages()))
	}
	s.WaitFor(t, 5, time.Second)
}

func TestAuth(t *testing.T) {
	s := Start(t, WithAuth("user", "secret"))
	c := dial(t, s)
	if ok, _ := c.Extension("AUTH"); !ok {
		t.Fatal("AUTH not advertised")
	}
	if err := send(c, "b@example.org"); smtpCode(err) != 502 {
		t.Fatalf("unauthenticated MAIL: want 502, got %v", err)
	}
	c2 := dial(t, s)
	if err := c2.Auth(sasl.NewPlainClient("", "user", "wrong")); smtpCode(err) != 535 {
		t.Fatalf("wrong password: want 535, got %v", err)
	}
	if s.AuthFailures() != 1 {
		t.Errorf("AuthFailures = %d", s.AuthFailures())
	}
	c3 := dial(t, s)
	if err := c3.Auth(sasl.NewPlainClient("", "user", "secret")); err != nil {
		t.Fatal(err)
	}
	if err := send(c3, "b@example.org"); err != nil {
		t.Fatal(err)
	}
}

func TestStartTLS(t *testing.T) {
	s := Start(t, WithTLS(), WithAuth("u", "p"))
	cfg := s.ClientTLSConfig()
	cfg.ServerName = s.Host()
	c, err := smtp.DialStartTLS(s.Addr(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, ok := c.TLSConnectionState(); !ok {
		t.Fatal("not TLS")
	}
	if err := c.Auth(sasl.NewPlainClient("", "u", "p")); err != nil {
		t.Fatal(err)
	}
	if err := send(c, "b@example.org"); err != nil {
		t.Fatal(err)
	}
	// Without the server's certificate the handshake fails.
	c2, err := smtp.DialStartTLS(s.Addr(), &tls.Config{ServerName: s.Host()})
	if err == nil {
		err = c2.Noop()
		c2.Close()
	}
	if err == nil {
		t.Fatal("untrusted certificate accepted")
	}
}

func TestImplicitTLS(t *testing.T) {
	s := Start(t, WithImplicitTLS())
	cfg := s.ClientTLSConfig()
	cfg.ServerName = s.Host()
	c, err := smtp.DialTLS(s.Addr(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := send(c, "b@example.org"); err != nil {
		t.Fatal(err)
	}
	if ok, _ := c.Extension("STARTTLS"); ok {
		t.Error("STARTTLS offered inside TLS")
	}
	s.WaitFor(t, 1, 5*time.Second)
}

func TestReadTimeout(t *testing.T) {
	s := Start(t, WithReadTimeout(100*time.Millisecond))
	c := dial(t, s)
	if err := c.Noop(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for s.ActiveConnections() > 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := s.ActiveConnections(); n != 0 {
		t.Fatalf("%d connections still open after the read timeout", n)
	}
}

func TestConcurrent(t *testing.T) {
	s := Start(t)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := smtp.Dial(s.Addr())
			if err != nil {
				t.Error(err)
				return
			}
			defer c.Close()
			for j := range 5 {
				if err := send(c, fmt.Sprintf("r%d-%d@example.org", i, j)); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	// Settings change while clients send.
	s.SetDelay(time.Millisecond)
	s.Discard(false)
	wg.Wait()
	s.WaitFor(t, 40, 5*time.Second)
	if s.Connections() != 8 {
		t.Errorf("connections = %d", s.Connections())
	}
}

// fakeTB records a failure instead of stopping the goroutine.
type fakeTB struct {
	testing.TB
	failed string
}

func (f *fakeTB) Helper() {}
func (f *fakeTB) Fatalf(format string, args ...any) {
	f.failed = fmt.Sprintf(format, args...)
}

func TestWaitForTimeout(t *testing.T) {
	s := Start(t)
	ft := &fakeTB{TB: t}
	start := time.Now()
	if got := s.WaitFor(ft, 1, 100*time.Millisecond); got != nil {
		t.Errorf("got %v", got)
	}
	if time.Since(start) < 100*time.Millisecond {
		t.Error("returned early")
	}
	if !strings.Contains(ft.failed, "for 1 messages, 0 arrived") {
		t.Errorf("failure message %q", ft.failed)
	}
}

func TestNewClose(t *testing.T) {
	s, err := New()
	if err != nil {
		t.Fatal(err)
	}
	c, err := smtp.Dial(s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	s.SetDelay(time.Hour)
	errc := make(chan error, 1)
	go func() { errc <- send(c, "b@example.org") }()
	deadline := time.Now().Add(time.Minute)
	for s.Waiting() == 0 { // the message is read, its answer held
		if time.Now().After(deadline) {
			t.Fatal("the message never reached the delay")
		}
		time.Sleep(5 * time.Millisecond)
	}
	done := make(chan struct{})
	go func() { s.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Close hung on a delayed DATA")
	}
	if err := <-errc; err == nil {
		t.Error("send succeeded on a closed server")
	}
	s.Close() // twice is fine
	if err := s.SetRefuse(false); err == nil {
		t.Error("SetRefuse on a closed server succeeded")
	}
}

// Hold keeps every answer until Release; Waiting counts the held ones.
func TestHoldAndRelease(t *testing.T) {
	s := Start(t)
	s.Hold()
	errc := make(chan error, 2)
	for _, to := range []string{"a@example.org", "b@example.org"} {
		c := dial(t, s)
		go func() { errc <- send(c, to) }()
	}
	deadline := time.Now().Add(time.Minute)
	for s.Waiting() < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("%d messages held, want 2", s.Waiting())
		}
		time.Sleep(5 * time.Millisecond)
	}
	if n := s.Count(); n != 0 {
		t.Fatalf("%d messages accepted while held", n)
	}
	s.Release()
	for range 2 {
		select {
		case err := <-errc:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(time.Minute):
			t.Fatal("a released message was not answered")
		}
	}
	if s.Count() != 2 || s.Waiting() != 0 {
		t.Fatalf("count %d, waiting %d", s.Count(), s.Waiting())
	}
}
