package herald

import (
	"context"
	"time"
)

// Route states: how a relay or provider stands with the transport.
const (
	RouteUp       = "up"        // takes mail
	RouteSetAside = "set_aside" // failed repeatedly; gets no mail until its backoff ends
	RouteProbing  = "probing"   // its backoff ended; the next attempt decides
)

// RouteStats is how mail fared through one relay or provider since the
// process started: for /api/v1/stats, /metrics and the dashboard.
type RouteStats struct {
	// Name identifies the route: "smtp:host:port", "ses:region", "file".
	Name string `json:"name"`
	// Kind is "smtp", "ses" or "file".
	Kind   string `json:"kind"`
	Weight int    `json:"weight,omitempty"`
	// Sent counts messages the route accepted; Failed, permanent refusals
	// (the reader's address, not the route); Deferred, temporary failures
	// (the message went to another route or was retried later).
	Sent     int64 `json:"sent"`
	Failed   int64 `json:"failed"`
	Deferred int64 `json:"deferred"`
	// State is RouteUp, RouteSetAside or RouteProbing.
	State string `json:"state"`
	// SetAsideUntil is when a set-aside route is probed again.
	SetAsideUntil *time.Time `json:"set_aside_until,omitempty"`
	// SetAsides counts how often the route was set aside.
	SetAsides int64  `json:"set_asides"`
	LastError string `json:"last_error,omitempty"`
	// Rate is the route's send-rate cap in messages per second (0: none).
	Rate float64 `json:"rate,omitempty"`
}

// RouteReporter is met by transports that can tell how each of their
// routes is doing (the relay set, SES).
type RouteReporter interface {
	Routes() []RouteStats
}

// RoutedStats is a StatsService that adds the transport's routes (kept
// in memory by the transport) to the figures of the one behind (kept in
// the store).
type RoutedStats struct {
	StatsService
	// Transport reports the routes; nil: none (the file transport).
	Transport RouteReporter
}

// Stats is the figures behind with the routes.
func (s RoutedStats) Stats(ctx context.Context) (*Stats, error) {
	st, err := s.StatsService.Stats(ctx)
	if err != nil || s.Transport == nil {
		return st, err
	}
	st.Routes = s.Transport.Routes()
	return st, nil
}

// Bounce is one report, from a provider's webhook or a DSN in the bounce
// mailbox, about mail to one address.
type Bounce struct {
	Email string
	Kind  BounceKind
	// Source names where it came from ("ses", "postmark", "mailgun",
	// "sendgrid", "mailbox").
	Source string
	// Reason is the provider's or the remote server's words, for the log.
	Reason string
}

// WebhookResult is the answer to a provider's webhook call.
type WebhookResult struct {
	// Applied counts reports applied to a reader; Unknown, reports about
	// addresses herald does not know; Ignored, events that are no bounce
	// or complaint (deliveries, opens, auto-replies).
	Applied int `json:"applied"`
	Unknown int `json:"unknown"`
	Ignored int `json:"ignored"`
	// Confirmed is set when an SNS subscription was confirmed.
	Confirmed bool `json:"confirmed,omitempty"`
}

// SentMessage records that a message with this Message-ID went to To:
// what maps a bounce that quotes only the Message-ID back to the reader.
type SentMessage struct {
	MessageID string
	To        string
	At        time.Time
}

// SentLog keeps SentMessages for a few weeks.
type SentLog interface {
	RecordSent(ctx context.Context, ms []SentMessage) error
	// SentTo returns the recipient of the message with the id, "" if
	// none is known.
	SentTo(ctx context.Context, messageID string) (string, error)
}
