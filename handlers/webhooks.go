package handlers

import (
	"net/http"

	"github.com/gorilla/mux"
)

// registerWebhooks serves POST /webhooks/{ses,postmark,mailgun,sendgrid}.
// They carry no admin token: each provider authenticates its own way (a
// bad signature is 401 and changes nothing).
func (s *Server) registerWebhooks(r *mux.Router) {
	r.HandleFunc("/webhooks/{provider:[a-z]+}", s.webhook).Methods(http.MethodPost)
}

func (s *Server) webhook(w http.ResponseWriter, r *http.Request) {
	b, err := readBody(w, r)
	if err != nil {
		s.jsonError(w, r, err)
		return
	}
	res, err := s.deps.Webhooks.Webhook(r.Context(), mux.Vars(r)["provider"], r.Header, b)
	if err != nil {
		s.jsonError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, res)
}
