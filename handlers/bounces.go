package handlers

import (
	"context"
	"net/http"

	"github.com/gorilla/mux"

	"github.com/herald-dev/herald"
)

// Bounces is the service behind the bounce webhook and reactivation
// (subscription.Service).
type Bounces interface {
	// Bounce applies a relay's report; an unknown address is ENOTFOUND.
	Bounce(ctx context.Context, email string, kind herald.BounceKind) (*herald.Subscriber, error)
	// Reactivate makes a bounced reader confirmed again (ECONFLICT from
	// any other status).
	Reactivate(ctx context.Context, email string) (*herald.Subscriber, error)
}

func (s *Server) registerBounces(api *mux.Router) {
	api.HandleFunc("/bounces", s.apiBounce).Methods(http.MethodPost)
	api.HandleFunc("/subscribers/{email}/reactivate", s.apiReactivate).Methods(http.MethodPost)
}

// BounceReport is the body of POST /api/v1/bounces.
type BounceReport struct {
	Email string `json:"email"`
	Kind  string `json:"kind"`
}

// bounceAnswer says where the reader stands after a report.
type bounceAnswer struct {
	Email   string        `json:"email"`
	Kind    string        `json:"kind,omitempty"`
	Status  herald.Status `json:"status"`
	Bounces int           `json:"bounces"`
}

// apiBounce takes a relay's bounce or complaint report: hard counts toward
// mail.bounce_limit, soft is only counted, a complaint unsubscribes.
func (s *Server) apiBounce(w http.ResponseWriter, r *http.Request) {
	if s.deps.Bounces == nil {
		s.jsonError(w, r, herald.Errorf(herald.ENOTIMPLEMENTED, "bounce handling is not wired in"))
		return
	}
	b, err := readBody(w, r)
	if err != nil {
		s.jsonError(w, r, err)
		return
	}
	var in BounceReport
	if err := decodeJSON(b, &in); err != nil {
		s.jsonError(w, r, err)
		return
	}
	email, err := herald.NormalizeEmail(in.Email)
	if err != nil {
		s.jsonError(w, r, err)
		return
	}
	kind, err := herald.ParseBounceKind(in.Kind)
	if err != nil {
		s.jsonError(w, r, err)
		return
	}
	sub, err := s.deps.Bounces.Bounce(r.Context(), email, kind)
	if err != nil {
		s.jsonError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, bounceAnswer{Email: sub.Email, Kind: string(kind), Status: sub.Status, Bounces: sub.Bounces})
}

// apiReactivate: POST /api/v1/subscribers/{email}/reactivate.
func (s *Server) apiReactivate(w http.ResponseWriter, r *http.Request) {
	if s.deps.Bounces == nil {
		s.jsonError(w, r, herald.Errorf(herald.ENOTIMPLEMENTED, "bounce handling is not wired in"))
		return
	}
	email, err := emailVar(r)
	if err != nil {
		s.jsonError(w, r, err)
		return
	}
	sub, err := s.deps.Bounces.Reactivate(r.Context(), email)
	if err != nil {
		s.jsonError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, sub)
}
