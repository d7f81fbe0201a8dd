package handlers

import (
	"net/http"

	"github.com/gorilla/mux"

	"github.com/herald-dev/herald"
	"github.com/herald-dev/herald/api"
)

func (s *Server) registerBounces(api *mux.Router) {
	api.HandleFunc("/bounces", s.apiBounce).Methods(http.MethodPost)
	api.HandleFunc("/subscribers/{email}/reactivate", s.apiReactivate).Methods(http.MethodPost)
}

// apiBounce takes a relay's bounce or complaint report: hard counts toward
// mail.bounce_limit, soft is only counted, a complaint unsubscribes.
func (s *Server) apiBounce(w http.ResponseWriter, r *http.Request) {
	b, err := readBody(w, r)
	if err != nil {
		s.jsonError(w, r, err)
		return
	}
	var in api.BounceReport
	if err := decodeJSON(b, &in); err != nil {
		s.jsonError(w, r, err)
		return
	}
	kind, err := herald.ParseBounceKind(in.Kind)
	if err != nil {
		s.jsonError(w, r, err)
		return
	}
	sub, err := s.deps.Subscriptions.Bounce(r.Context(), in.Email, kind)
	if err != nil {
		s.jsonError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, api.BounceAnswer{Email: sub.Email, Kind: string(kind), Status: sub.Status, Bounces: sub.Bounces})
}

// apiReactivate: POST /api/v1/subscribers/{email}/reactivate.
func (s *Server) apiReactivate(w http.ResponseWriter, r *http.Request) {
	sub, err := s.deps.Subscriptions.Reactivate(r.Context(), emailVar(r))
	if err != nil {
		s.jsonError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, sub)
}
