package mailer

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/herald-dev/herald/internal/smtptest"
)

func BenchmarkCompose(b *testing.B) {
	e := sampleEmail()
	for b.Loop() {
		if _, err := Compose(e); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDKIMSign(b *testing.B) {
	for _, kind := range []string{"rsa", "ed25519"} {
		b.Run(kind, func(b *testing.B) {
			key, _, err := GenerateKey(kind)
			if err != nil {
				b.Fatal(err)
			}
			s, err := NewSigner("blog.example.org", "herald", key)
			if err != nil {
				b.Fatal(err)
			}
			m, err := Compose(sampleEmail())
			if err != nil {
				b.Fatal(err)
			}
			for b.Loop() {
				if _, err := s.Sign(m.Raw); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkSMTPSend pushes messages through the pool to a discarding
// loopback server, from many goroutines.
func BenchmarkSMTPSend(b *testing.B) {
	srv := smtptest.Start(b)
	srv.Discard(true)
	tr := NewSMTPTransport(SMTPConfig{
		Host: srv.Host(), Port: srv.Port(), TLS: TLSNone, Connections: 4, Timeout: 5 * time.Second,
	}, slog.New(slog.DiscardHandler))
	defer tr.Close()
	m := testMessage(b, "reader@example.com")
	b.SetBytes(int64(len(m.Raw)))
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := tr.Send(context.Background(), m); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	if srv.Connections() > 4 {
		b.Errorf("%d connections", srv.Connections())
	}
}
