package handlers

import (
	"context"
	"net/http"

	"github.com/gorilla/mux"

	"github.com/herald-dev/herald"
)

// Webhooks takes the email providers' bounce and complaint events
// (bounce.Webhooks): it authenticates each call the provider's way and
// applies what it reports.
type Webhooks interface {
	Handle(ctx context.Context, provider string, h http.Header, body []byte) (*herald.WebhookResult, error)
}

// MountWebhooks serves POST /webhooks/{ses,postmark,mailgun,sendgrid}.
// They carry no admin token: each provider authenticates its own way
// (a bad signature is 401 and changes nothing).
func (s *Server) MountWebhooks(wh Webhooks) {
	s.router.HandleFunc("/webhooks/{provider:[a-z]+}", func(w http.ResponseWriter, r *http.Request) {
		b, err := readBody(w, r)
		if err != nil {
			s.jsonError(w, r, err)
			return
		}
		res, err := wh.Handle(r.Context(), mux.Vars(r)["provider"], r.Header, b)
		if err != nil {
			s.jsonError(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, res)
	}).Methods(http.MethodPost)
}
