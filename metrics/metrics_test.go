package metrics_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/herald-dev/herald"
	"github.com/herald-dev/herald/internal/smtptest"
	"github.com/herald-dev/herald/mailer"
	"github.com/herald-dev/herald/metrics"
	"github.com/herald-dev/herald/relay"
	"github.com/herald-dev/herald/store"
)

func scrape(t *testing.T, m *metrics.Metrics) string {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("scrape: %d %s", rec.Code, rec.Body.String())
	}
	b, _ := io.ReadAll(rec.Body)
	return string(b)
}

func TestStoreAndHooks(t *testing.T) {
	ctx := context.Background()
	db, err := store.Open(ctx, filepath.Join(t.TempDir(), "h.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, a := range []string{"a@example.org", "b@example.org"} {
		if _, err := db.MutateSubscriber(ctx, a, func(cur *herald.Subscriber) (*herald.Subscriber, []*herald.OutboxMessage, error) {
			cur.Status, cur.Frequency = herald.StatusPending, herald.Weekly
			return cur, []*herald.OutboxMessage{{Kind: herald.KindConfirm, To: cur.Email, Raw: []byte("x"), NextAttempt: time.Now()}}, nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := db.UpsertPost(ctx, &herald.Post{GUID: "g", URL: "https://blog.example.org/g", Title: "G", Feed: "api"}); err != nil {
		t.Fatal(err)
	}
	m := metrics.New(metrics.Options{Stats: db, NoRuntime: true})
	m.ObserveHTTP("/api/v1/stats", 200, 20*time.Millisecond)
	m.ObserveHTTP("unmatched", 404, time.Millisecond)
	m.EmailResult(herald.KindConfirm, nil)
	m.EmailResult(herald.KindDigest, &herald.SendError{Temporary: true, Code: 421, Err: errors.New("busy")})
	m.EmailResult(herald.KindDigest, &herald.SendError{Code: 550, Err: errors.New("no such user")})
	m.EmailResult(herald.KindWelcome, errors.New("mailer: message expired"))
	m.FeedPoll("ok")
	m.FeedPoll("error")
	m.RunFinished(&herald.Run{Frequency: herald.Daily, State: herald.RunDone}, 90*time.Second)
	m.RunFinished(nil, time.Second)
	body := scrape(t, m)
	for _, want := range []string{
		`herald_subscribers{frequency="weekly",status="pending"} 2`,
		`herald_subscribers{frequency="daily",status="confirmed"} 0`,
		`herald_outbox_depth 2`,
		`herald_posts_total 1`,
		`herald_emails_total{result="sent"} 0`,
		`herald_http_requests_total{code="200",route="/api/v1/stats"} 1`,
		`herald_http_requests_total{code="404",route="unmatched"} 1`,
		`herald_http_request_duration_seconds_bucket{route="/api/v1/stats",le="0.025"} 1`,
		`herald_emails_sent_total{kind="confirm"} 1`,
		`herald_email_retries_total{kind="digest"} 1`,
		`herald_emails_failed_total{kind="digest"} 1`,
		`herald_emails_failed_total{kind="welcome"} 1`,
		`herald_feed_polls_total{result="error"} 1`,
		`herald_runs_total{frequency="daily",state="done"} 1`,
		`herald_runs_total{frequency="weekly",state="failed"} 0`,
		`herald_run_duration_seconds_sum{frequency="daily"} 90`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("missing %s", want)
		}
	}
	if strings.Contains(body, "go_goroutines") {
		t.Errorf("NoRuntime still has the Go collector")
	}

	// A store that stops answering: the scrape goes on with what it has.
	db.Close()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), "herald_feed_polls_total") {
		t.Fatalf("scrape with a closed store: %d\n%s", rec.Code, rec.Body.String())
	}
}

func TestNoStores(t *testing.T) {
	m := metrics.New(metrics.Options{})
	body := scrape(t, m)
	if strings.Contains(body, "herald_subscribers") || !strings.Contains(body, "go_goroutines") || !strings.Contains(body, `herald_emails_sent_total{kind="digest"} 0`) {
		t.Fatalf("scrape:\n%s", body)
	}
	// Two Metrics do not share a registry.
	m2 := metrics.New(metrics.Options{})
	m.FeedPoll("ok")
	if strings.Contains(scrape(t, m2), "herald_feed_polls_total{") {
		t.Fatal("registries are shared")
	}
}

// The relays' figures come from the same stats read: a relay set over
// two loopback SMTP servers, one refusing connections, after four
// messages.
func TestRouteMetrics(t *testing.T) {
	ctx := context.Background()
	db, err := store.Open(ctx, filepath.Join(t.TempDir(), "h.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	up, down := smtptest.Start(t), smtptest.Start(t)
	if err := down.SetRefuse(true); err != nil {
		t.Fatal(err)
	}
	to := func(s *smtptest.Server) herald.Transport {
		return mailer.NewSMTPTransport(mailer.SMTPConfig{Host: s.Host(), Port: s.Port(), TLS: "none", Connections: 1, Timeout: 5 * time.Second}, nil)
	}
	set, err := relay.New([]relay.Relay{{Name: "up", Transport: to(up)}, {Name: "down", Transport: to(down)}}, relay.Options{FailLimit: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer set.Close()
	for i := range 4 {
		if err := set.Send(ctx, &herald.Message{From: "d@example.org", To: "r@example.net", MessageID: "<m@example.org>",
			Raw: []byte("Subject: x\r\n\r\nx\r\n")}); err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
	}
	m := metrics.New(metrics.Options{Stats: herald.RoutedStats{StatsService: db, Transport: set}, NoRuntime: true})
	body := scrape(t, m)
	for _, want := range []string{
		`herald_route_messages_total{kind="smtp",result="sent",route="up"} 4`,
		`herald_route_messages_total{kind="smtp",result="deferred",route="down"} 2`,
		`herald_route_set_aside{kind="smtp",route="down"} 1`,
		`herald_route_set_aside{kind="smtp",route="up"} 0`,
		`herald_route_set_asides_total{kind="smtp",route="down"} 1`,
		`herald_outbox_depth 0`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %q:\n%s", want, body)
		}
	}
}
