package main

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/herald-dev/herald"
	"github.com/herald-dev/herald/internal/sestest"
	"github.com/herald-dev/herald/mailer"
	"github.com/herald-dev/herald/relay"
	"github.com/herald-dev/herald/ses"
)

// relayMessage is a digest-sized message (about 12 KB, as P1's).
func relayMessage(i int) *herald.Message {
	body := make([]byte, 12<<10)
	for j := range body {
		body[j] = 'a' + byte(j%26)
		if j%76 == 75 {
			body[j-1], body[j] = '\r', '\n'
		}
	}
	raw := fmt.Sprintf("From: Bench <digest@bench.example.org>\r\nTo: r%d@example.net\r\nSubject: bench\r\nMessage-ID: <bench-%d@bench.example.org>\r\n\r\n%s\r\n", i, i, body)
	return &herald.Message{From: "digest@bench.example.org", To: fmt.Sprintf("r%d@example.net", i), MessageID: fmt.Sprintf("<bench-%d@bench.example.org>", i), Raw: []byte(raw)}
}

// push sends through tr with workers goroutines for d and returns the
// messages per second.
func push(tr herald.Transport, workers int, d time.Duration) (float64, error) {
	var n atomic.Int64
	var firstErr error
	var once sync.Once
	deadline := time.Now().Add(d)
	start := time.Now()
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := w; time.Now().Before(deadline); i += workers {
				if err := tr.Send(context.Background(), relayMessage(i)); err != nil {
					once.Do(func() { firstErr = err })
					return
				}
				n.Add(1)
			}
		})
	}
	wg.Wait()
	return float64(n.Load()) / time.Since(start).Seconds(), firstErr
}

func (b *bench) smtpTransport(s *sink) *mailer.SMTPTransport {
	return mailer.NewSMTPTransport(mailer.SMTPConfig{Host: "127.0.0.1", Port: s.port, TLS: mailer.TLSNone,
		Connections: b.o.connections, Timeout: 10 * time.Second}, nil)
}

// twoRelays: the relay set over two sinks against two raw SMTP clients,
// one per sink, pushing at once, in the same run. The machine is shared,
// so the two take turns in short passes, raw-set-set-raw twice (what the
// load does to one side over time it does to the other), and each figure
// is the mean of its passes.
func (b *bench) twoRelays() error {
	second, err := newSink()
	if err != nil {
		return err
	}
	defer second.Close()
	d := b.o.rawDuration / 2
	conns := b.o.connections

	rawA, rawB := b.smtpTransport(b.sink), b.smtpTransport(second)
	defer rawA.Close()
	defer rawB.Close()
	raw := func() (float64, error) {
		var ra, rb float64
		var ea, eb error
		var wg sync.WaitGroup
		wg.Go(func() { ra, ea = push(rawA, conns, d) })
		wg.Go(func() { rb, eb = push(rawB, conns, d) })
		wg.Wait()
		if ea != nil || eb != nil {
			return 0, fmt.Errorf("bench: raw clients: %v %v", ea, eb)
		}
		return ra + rb, nil
	}
	set, err := relay.New([]relay.Relay{
		{Name: "a", Transport: b.smtpTransport(b.sink), Weight: 1, Connections: conns},
		{Name: "b", Transport: b.smtpTransport(second), Weight: 1, Connections: conns},
	}, relay.Options{})
	if err != nil {
		return err
	}
	defer set.Close()
	viaSet := func() (float64, error) { return push(set, set.Connections(), d) }

	var limit, got float64
	var passes []string
	for _, rawTurn := range []bool{true, false, false, true, true, false, false, true} {
		pass, sum, name := viaSet, &got, "set"
		if rawTurn {
			pass, sum, name = raw, &limit, "raw"
		}
		r, err := pass()
		if err != nil {
			return err
		}
		*sum += r / 4
		passes = append(passes, fmt.Sprintf("%s %.0f", name, r))
	}
	ratio := got / limit
	b.add(row{figure: fmt.Sprintf("relay set: 2 sinks × %d connections (msg/s)", conns), herald: fmt.Sprintf("%.0f", got),
		limit: fmt.Sprintf("%.0f (2 raw clients)", limit), ratio: fmt.Sprintf("%.2f", ratio), goal: "≥ 0.8", met: yes(ratio >= 0.8)})
	b.log.Info("two relays", "relay_set", got, "raw", limit, "ratio", ratio, "passes", passes)
	return nil
}

// sesFigure: messages per second through the SES transport to the
// aws-ses-v2-local emulator (the account's rate set far above what the
// emulator takes). No limit to compare with: the emulator is the bound.
func (b *bench) sesFigure() error {
	e, err := sestest.New(sestest.Account(100000))
	if err != nil {
		return fmt.Errorf("bench: the SES figure needs %s (npm install -g aws-ses-v2-local@2.10.2): %w", sestest.Command, err)
	}
	defer e.Close()
	tr, err := ses.New(context.Background(), ses.Options{Region: "eu-west-1", Endpoint: e.Direct,
		Credentials: credentials.NewStaticCredentialsProvider("AKIDBENCH", "secret", "")})
	if err != nil {
		return err
	}
	defer tr.Close()
	d := b.o.rawDuration
	got, err := push(tr, 8, d)
	if err != nil {
		return err
	}
	b.add(row{figure: "SES transport to aws-ses-v2-local, 8 at once (msg/s)", herald: fmt.Sprintf("%.0f", got),
		limit: fmt.Sprintf("rate %.0f/s from GetAccount", tr.Rate()), ratio: "—", goal: "—", met: "—"})
	b.log.Info("ses", "msg_per_s", got)
	return nil
}
