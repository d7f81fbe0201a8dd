package main

import (
	"bytes"
	"fmt"
	"io"
	"log"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-smtp"
)

// sink is an SMTP server on loopback (emersion/go-smtp, the library
// herald's own test server uses) that reads every message to the end and
// throws it away. It counts what it accepted, notes when the first and
// the latest message arrived, and keeps one sample message, which the raw
// client of P1 then pushes as its pre-built message.
type sink struct {
	srv  *smtp.Server
	ln   net.Listener
	port int
	done chan struct{}

	count atomic.Int64
	bytes atomic.Int64
	first atomic.Int64 // unix nanos of the first message since reset
	last  atomic.Int64 // unix nanos of the latest message

	mu     sync.Mutex
	sample []byte
	conns  int
}

func newSink() (*sink, error) {
	s := &sink{done: make(chan struct{})}
	srv := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		s.mu.Lock()
		s.conns++
		s.mu.Unlock()
		return &sinkSession{s: s}, nil
	}))
	srv.Domain = "sink.localhost"
	srv.AllowInsecureAuth = true
	srv.ReadTimeout = 5 * time.Minute
	srv.WriteTimeout = time.Minute
	srv.MaxRecipients = 100
	srv.EnableSMTPUTF8 = true
	srv.ErrorLog = log.New(io.Discard, "", 0)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("bench: sink: %w", err)
	}
	s.srv, s.ln = srv, ln
	s.port = ln.Addr().(*net.TCPAddr).Port
	go func() {
		defer close(s.done)
		_ = srv.Serve(ln)
	}()
	return s, nil
}

func (s *sink) Close() {
	_ = s.srv.Close()
	<-s.done
}

// reset zeroes the counters; the sample is kept.
func (s *sink) reset() {
	s.count.Store(0)
	s.bytes.Store(0)
	s.first.Store(0)
	s.last.Store(0)
	s.mu.Lock()
	s.conns = 0
	s.mu.Unlock()
}

func (s *sink) connections() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conns
}

// takeSample returns the kept message and forgets it, so the next one
// that arrives is kept.
func (s *sink) takeSample() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.sample
	s.sample = nil
	return m
}

type sinkSession struct {
	s   *sink
	buf bytes.Buffer
}

func (se *sinkSession) Mail(string, *smtp.MailOptions) error { return nil }
func (se *sinkSession) Rcpt(string, *smtp.RcptOptions) error { return nil }
func (se *sinkSession) Reset()                               {}
func (se *sinkSession) Logout() error                        { return nil }

func (se *sinkSession) sampleWanted() bool {
	se.s.mu.Lock()
	defer se.s.mu.Unlock()
	return se.s.sample == nil
}

func (se *sinkSession) Data(r io.Reader) error {
	s := se.s
	var n int64
	var err error
	if s.count.Load() < 4 && se.sampleWanted() {
		se.buf.Reset()
		n, err = io.Copy(&se.buf, r)
		if err == nil {
			s.mu.Lock()
			if s.sample == nil {
				s.sample = bytes.Clone(se.buf.Bytes())
			}
			s.mu.Unlock()
		}
	} else {
		n, err = io.Copy(io.Discard, r)
	}
	if err != nil {
		return err
	}
	now := time.Now().UnixNano()
	s.first.CompareAndSwap(0, now)
	s.last.Store(now)
	s.bytes.Add(n)
	s.count.Add(1)
	return nil
}
