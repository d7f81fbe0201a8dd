// Package smtptest runs a real SMTP server (emersion/go-smtp) on loopback for
// tests: it records what arrives and misbehaves on cue — refusing
// connections, answering slowly, replying 4xx/5xx, dropping the connection
// after DATA — so the mailer and whole-process tests exercise real SMTP.
package smtptest

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// Message is one message the server accepted.
type Message struct {
	From     string
	To       []string
	Data     []byte
	Received time.Time
}

// Option configures a Server.
type Option func(*config)

type config struct {
	user, pass  string
	auth        bool
	startTLS    bool
	implicitTLS bool
	readTimeout time.Duration
	debug       io.Writer
	maxBytes    int64
	noUTF8      bool
}

// WithAuth requires AUTH PLAIN with these credentials before MAIL.
// Insecure (non-TLS) auth is allowed: the server only listens on loopback.
func WithAuth(user, pass string) Option {
	return func(c *config) { c.user, c.pass, c.auth = user, pass, true }
}

// WithTLS offers STARTTLS with a fresh self-signed certificate for
// 127.0.0.1, ::1 and localhost. Clients trust it through ClientTLSConfig.
func WithTLS() Option { return func(c *config) { c.startTLS = true } }

// WithImplicitTLS makes the listener speak TLS from the first byte (SMTPS),
// with the same self-signed certificate as WithTLS.
func WithImplicitTLS() Option { return func(c *config) { c.implicitTLS = true } }

// WithReadTimeout makes the server hang up on clients that stay silent this
// long (a real server's idle timeout).
func WithReadTimeout(d time.Duration) Option { return func(c *config) { c.readTimeout = d } }

// WithDebug copies the whole SMTP conversation to w.
func WithDebug(w io.Writer) Option { return func(c *config) { c.debug = w } }

// WithMaxMessageBytes limits the size of a message (SIZE extension).
func WithMaxMessageBytes(n int64) Option { return func(c *config) { c.maxBytes = n } }

// WithoutSMTPUTF8 stops the server offering SMTPUTF8 (it does by default),
// like relays that cannot take non-ASCII addresses.
func WithoutSMTPUTF8() Option { return func(c *config) { c.noUTF8 = true } }

// RejectFunc decides the reply to one RCPT address: reject=false accepts it.
type RejectFunc func(addr string) (code int, msg string, reject bool)

// Server is an SMTP server on 127.0.0.1. All its methods are safe for
// concurrent use, and its behaviour may change while clients are connected.
type Server struct {
	cfg       config
	srv       *smtp.Server
	addr      string
	port      int
	serverTLS *tls.Config
	clientTLS *tls.Config

	wg   sync.WaitGroup // Serve loops
	done chan struct{}  // closed by Close: cuts delays short

	mu         sync.Mutex
	ln         net.Listener // nil while refusing
	closed     bool
	conns      map[*trackedConn]struct{}
	accepted   int
	msgs       []Message
	count      int
	changed    chan struct{} // closed and replaced whenever count grows
	delay      time.Duration
	held       chan struct{} // non-nil while Hold holds answers; closed by Release
	waiting    int           // messages read and not answered yet (delay or hold)
	failN      int
	failCode   int
	failMsg    string
	dropN      int
	dropped    int
	discard    bool
	rejectRcpt RejectFunc
	authFailed int
}

// Start starts a server for the test and closes it when the test ends.
func Start(t testing.TB, opts ...Option) *Server {
	t.Helper()
	s, err := New(opts...)
	if err != nil {
		t.Fatalf("smtptest: %v", err)
	}
	t.Cleanup(s.Close)
	return s
}

// New starts a server outside a test (a benchmark sink, a helper process).
// The caller must Close it.
func New(opts ...Option) (*Server, error) {
	s := &Server{
		done:    make(chan struct{}),
		conns:   make(map[*trackedConn]struct{}),
		changed: make(chan struct{}),
	}
	for _, o := range opts {
		o(&s.cfg)
	}
	if s.cfg.startTLS || s.cfg.implicitTLS {
		srvCfg, cliCfg, err := selfSignedTLS()
		if err != nil {
			return nil, fmt.Errorf("smtptest: %w", err)
		}
		s.serverTLS, s.clientTLS = srvCfg, cliCfg
	}

	srv := smtp.NewServer(smtp.BackendFunc(s.newSession))
	srv.Domain = "smtptest.localhost"
	srv.AllowInsecureAuth = true
	srv.ReadTimeout = s.cfg.readTimeout
	srv.WriteTimeout = 10 * time.Second
	srv.MaxMessageBytes = s.cfg.maxBytes
	srv.MaxRecipients = 100
	srv.EnableSMTPUTF8 = !s.cfg.noUTF8
	srv.Debug = s.cfg.debug
	// Clients hanging up mid-conversation is what these tests are about;
	// keep go-smtp from logging each one to stderr.
	srv.ErrorLog = log.New(io.Discard, "", 0)
	if s.cfg.startTLS {
		srv.TLSConfig = s.serverTLS
	}
	s.srv = srv

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("smtptest: listen: %w", err)
	}
	s.addr = ln.Addr().String()
	s.port = ln.Addr().(*net.TCPAddr).Port
	s.mu.Lock()
	s.serveLocked(ln)
	s.mu.Unlock()
	return s, nil
}

// serveLocked starts accepting on ln. s.mu must be held.
func (s *Server) serveLocked(ln net.Listener) {
	var l net.Listener = &trackingListener{Listener: ln, s: s}
	if s.cfg.implicitTLS {
		l = tls.NewListener(l, s.serverTLS)
	}
	s.ln = ln
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		// Serve returns when the listener closes (SetRefuse or Close).
		_ = s.srv.Serve(l)
	}()
}

// Close stops the server and drops every connection. Calling it again is harmless.
func (s *Server) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	close(s.done)
	if s.ln != nil {
		s.ln.Close()
		s.ln = nil
	}
	s.closeConnsLocked()
	s.mu.Unlock()
	// go-smtp's Close also closes listeners we already closed; that error is expected.
	_ = s.srv.Close()
	s.wg.Wait()
}

// Addr is "127.0.0.1:port".
func (s *Server) Addr() string { return s.addr }

// Host is "127.0.0.1".
func (s *Server) Host() string { return "127.0.0.1" }

// Port is the TCP port the server listens on.
func (s *Server) Port() int { return s.port }

// ClientTLSConfig returns a config that trusts the server's self-signed
// certificate (nil without WithTLS or WithImplicitTLS). Each call returns a fresh copy.
func (s *Server) ClientTLSConfig() *tls.Config {
	if s.clientTLS == nil {
		return nil
	}
	return s.clientTLS.Clone()
}

// Messages returns a copy of every message recorded so far, oldest first.
func (s *Server) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Message, len(s.msgs))
	for i, m := range s.msgs {
		m.To = append([]string(nil), m.To...)
		out[i] = m
	}
	return out
}

// Count is how many messages were accepted, including discarded ones.
func (s *Server) Count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.count
}

// WaitFor waits until at least n messages were accepted and returns the
// recorded ones; it fails the test if that takes longer than timeout.
// Call it from the test's goroutine.
func (s *Server) WaitFor(t testing.TB, n int, timeout time.Duration) []Message {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		s.mu.Lock()
		count, ch := s.count, s.changed
		s.mu.Unlock()
		if count >= n {
			return s.Messages()
		}
		select {
		case <-ch:
		case <-deadline.C:
			t.Fatalf("smtptest: waited %v for %d messages, %d arrived", timeout, n, s.Count())
			return nil
		}
	}
}

// Reset forgets the messages and the connection and drop counters.
// Misbehaviour settings stay as they are.
func (s *Server) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.msgs, s.count, s.accepted, s.dropped, s.authFailed = nil, 0, 0, 0, 0
}

// Connections is how many TCP connections were accepted (since Reset).
func (s *Server) Connections() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.accepted
}

// ActiveConnections is how many connections are open now.
func (s *Server) ActiveConnections() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

// Dropped is how many connections DropAfterData has cut (since Reset).
func (s *Server) Dropped() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.dropped
}

// AuthFailures counts rejected AUTH attempts (since Reset).
func (s *Server) AuthFailures() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.authFailed
}

// SetRefuse(true) takes the server down: it closes the listener, so dials
// fail with "connection refused", and drops every open connection.
// SetRefuse(false) listens again on the same port.
func (s *Server) SetRefuse(refuse bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errors.New("smtptest: server closed")
	}
	if refuse {
		if s.ln != nil {
			s.ln.Close()
			s.ln = nil
		}
		s.closeConnsLocked()
		return nil
	}
	if s.ln != nil {
		return nil
	}
	// The old socket may linger a moment after Close; retry briefly.
	var err error
	for range 50 {
		var ln net.Listener
		ln, err = net.Listen("tcp", s.addr)
		if err == nil {
			s.serveLocked(ln)
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("smtptest: listen again on %s: %w", s.addr, err)
}

// Waiting is how many messages are read in full and not answered yet:
// waiting out SetDelay's delay, or held by Hold.
func (s *Server) Waiting() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.waiting
}

// Hold keeps the answer to every message from now on until Release, so a
// test can catch a sender in the middle of its work and change the world
// under it; Waiting says how many are held.
func (s *Server) Hold() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.held == nil {
		s.held = make(chan struct{})
	}
}

// Release answers the held messages and stops holding.
func (s *Server) Release() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.held != nil {
		close(s.held)
		s.held = nil
	}
}

// SetDelay makes the server wait d before answering each DATA.
func (s *Server) SetDelay(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.delay = d
}

// FailNext makes the server answer the next n messages with code and msg
// at the end of DATA (e.g. 451 or 550). n = 0 cancels.
func (s *Server) FailNext(n int, code int, msg string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failN, s.failCode, s.failMsg = n, code, msg
}

// RejectRecipient sets a per-address RCPT policy; nil accepts everyone.
func (s *Server) RejectRecipient(f RejectFunc) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rejectRcpt = f
}

// DropAfterData makes the server read the next n messages in full and then
// close the connection without a reply. The messages are not recorded.
func (s *Server) DropAfterData(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dropN = n
}

// Discard(true) accepts messages without keeping them: only Count grows.
func (s *Server) Discard(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.discard = on
}

// closeConnsLocked cuts every open connection; go-smtp then closes its side,
// which removes them from s.conns. s.mu must be held.
func (s *Server) closeConnsLocked() {
	for c := range s.conns {
		c.Conn.Close()
	}
}

func (s *Server) newSession(c *smtp.Conn) (smtp.Session, error) {
	return &session{s: s, conn: c}, nil
}

type session struct {
	s      *Server
	conn   *smtp.Conn
	authed bool
	from   string
	to     []string
}

func (se *session) AuthMechanisms() []string {
	if !se.s.cfg.auth {
		return nil
	}
	return []string{sasl.Plain}
}

func (se *session) Auth(mech string) (sasl.Server, error) {
	if !se.s.cfg.auth || mech != sasl.Plain {
		return nil, smtp.ErrAuthUnknownMechanism
	}
	return sasl.NewPlainServer(func(identity, username, password string) error {
		if username != se.s.cfg.user || password != se.s.cfg.pass || (identity != "" && identity != username) {
			se.s.mu.Lock()
			se.s.authFailed++
			se.s.mu.Unlock()
			return smtp.ErrAuthFailed
		}
		se.authed = true
		return nil
	}), nil
}

func (se *session) Mail(from string, _ *smtp.MailOptions) error {
	if se.s.cfg.auth && !se.authed {
		return smtp.ErrAuthRequired
	}
	se.from = from
	se.to = nil
	return nil
}

func (se *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	se.s.mu.Lock()
	reject := se.s.rejectRcpt
	se.s.mu.Unlock()
	if reject != nil {
		if code, msg, no := reject(to); no {
			return &smtp.SMTPError{Code: code, Message: msg}
		}
	}
	se.to = append(se.to, to)
	return nil
}

func (se *session) Data(r io.Reader) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s := se.s
	s.mu.Lock()
	delay, held := s.delay, s.held
	s.waiting++
	s.mu.Unlock()
	if delay > 0 {
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-s.done:
		}
		t.Stop()
	}
	if held != nil {
		select {
		case <-held:
		case <-s.done:
		}
	}
	s.mu.Lock()
	s.waiting--
	s.mu.Unlock()
	select {
	case <-s.done:
		return &smtp.SMTPError{Code: 421, Message: "shutting down"}
	default:
	}

	s.mu.Lock()
	if s.ln == nil {
		// Refusing (SetRefuse): the connection is cut under this message,
		// which must not count as received after the cut.
		s.mu.Unlock()
		se.conn.Conn().Close()
		return &smtp.SMTPError{Code: 421, Message: "connection cut"}
	}
	if s.dropN > 0 {
		s.dropN--
		s.dropped++
		s.mu.Unlock()
		// Close the socket under go-smtp: its reply then goes nowhere.
		se.conn.Conn().Close()
		return nil
	}
	defer s.mu.Unlock()
	if s.failN > 0 {
		s.failN--
		return &smtp.SMTPError{Code: s.failCode, Message: s.failMsg}
	}
	s.count++
	if !s.discard {
		s.msgs = append(s.msgs, Message{
			From:     se.from,
			To:       append([]string(nil), se.to...),
			Data:     data,
			Received: time.Now(),
		})
	}
	close(s.changed)
	s.changed = make(chan struct{})
	return nil
}

func (se *session) Reset() { se.from, se.to = "", nil }

func (se *session) Logout() error { return nil }

// trackingListener counts connections and remembers them, so SetRefuse and
// Close can cut them.
type trackingListener struct {
	net.Listener
	s *Server
}

func (l *trackingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	tc := &trackedConn{Conn: c, s: l.s}
	l.s.mu.Lock()
	if l.s.closed {
		l.s.mu.Unlock()
		c.Close()
		return nil, net.ErrClosed
	}
	l.s.accepted++
	l.s.conns[tc] = struct{}{}
	l.s.mu.Unlock()
	return tc, nil
}

type trackedConn struct {
	net.Conn
	s    *Server
	once sync.Once
}

func (c *trackedConn) Close() error {
	c.once.Do(func() {
		c.s.mu.Lock()
		delete(c.s.conns, c)
		c.s.mu.Unlock()
	})
	return c.Conn.Close()
}
