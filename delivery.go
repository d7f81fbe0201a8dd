package herald

import "time"

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
