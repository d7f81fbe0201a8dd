package handlers

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"net/url"
	"strings"

	"github.com/gorilla/mux"

	"github.com/herald-dev/herald"
	"github.com/herald-dev/herald/api"
)

// requireAdmin: 403 when no token is configured, 401 without the right one.
// The comparison is constant-time over hashes, so neither the token's
// content nor its length leaks through timing.
func (s *Server) requireAdmin(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.adminEnabled() {
			writeJSON(w, http.StatusForbidden, api.ErrorBody{Error: "the admin API is disabled: set admin.token (or HERALD_ADMIN_TOKEN)"})
			return
		}
		auth := r.Header.Get("Authorization")
		tok, ok := strings.CutPrefix(auth, "Bearer ")
		if !ok || !s.tokenMatches(tok) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="herald"`)
			writeJSON(w, http.StatusUnauthorized, api.ErrorBody{Error: "missing or wrong admin token (Authorization: Bearer <admin.token>)"})
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (s *Server) adminEnabled() bool { return s.opt.AdminToken != "" }

func (s *Server) tokenMatches(tok string) bool {
	a := sha256.Sum256([]byte(tok))
	b := sha256.Sum256([]byte(s.opt.AdminToken))
	return subtle.ConstantTimeCompare(a[:], b[:]) == 1
}

// emailVar reads the {email} path segment.
func emailVar(r *http.Request) string {
	raw := mux.Vars(r)["email"]
	if u, err := url.PathUnescape(raw); err == nil {
		raw = u
	}
	return raw
}

func (s *Server) apiListSubscribers(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f := herald.SubscriberFilter{Query: q.Get("q"), Status: herald.Status(q.Get("status"))}
	switch q.Get("order") {
	case "", "oldest":
	case "newest":
		f.Newest = true
	default:
		s.jsonError(w, r, herald.Errorf(herald.EINVALID, "order must be oldest or newest").WithField("order"))
		return
	}
	limit, after, err := pageArgs(r, 0, "after")
	if err != nil {
		s.jsonError(w, r, err)
		return
	}
	f.Limit, f.After = limit, after
	subs, next, err := s.deps.Subscriptions.ListSubscribers(r.Context(), f)
	if err != nil {
		s.jsonError(w, r, err)
		return
	}
	if subs == nil {
		subs = []*herald.Subscriber{}
	}
	writeJSON(w, http.StatusOK, api.SubscriberList{Subscribers: subs, Next: nextString(next)})
}

func (s *Server) apiCreateSubscriber(w http.ResponseWriter, r *http.Request) {
	b, err := readBody(w, r)
	if err != nil {
		s.jsonError(w, r, err)
		return
	}
	var in herald.SubscribeRequest
	if err := decodeJSON(b, &in); err != nil {
		s.jsonError(w, r, err)
		return
	}
	sub, err := s.deps.Subscriptions.AddSubscriber(r.Context(), in)
	if herald.ErrorCode(err) == herald.ECONFLICT && sub != nil {
		writeJSON(w, http.StatusConflict, api.SubscriberExists{
			ErrorBody: api.ErrorBody{Error: herald.ErrorMessage(err), Field: herald.ErrorField(err)}, Subscriber: sub,
		})
		return
	} else if err != nil {
		s.jsonError(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, sub)
}

func (s *Server) apiGetSubscriber(w http.ResponseWriter, r *http.Request) {
	sub, err := s.deps.Subscriptions.Subscriber(r.Context(), emailVar(r))
	if err != nil {
		s.jsonError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, sub)
}

func (s *Server) apiDeleteSubscriber(w http.ResponseWriter, r *http.Request) {
	if err := s.deps.Subscriptions.DeleteSubscriber(r.Context(), emailVar(r)); err != nil {
		s.jsonError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// apiUpdateSubscriber: PATCH /api/v1/subscribers/{email} changes the
// fields the body has (name, frequency, topics, timezone, paused_until);
// 200 with the reader, 422 naming a bad field.
func (s *Server) apiUpdateSubscriber(w http.ResponseWriter, r *http.Request) {
	b, err := readBody(w, r)
	if err != nil {
		s.jsonError(w, r, err)
		return
	}
	var in herald.SubscriberPatch
	if err := decodeJSON(b, &in); err != nil {
		s.jsonError(w, r, err)
		return
	}
	sub, err := s.deps.Subscriptions.UpdateSubscriber(r.Context(), emailVar(r), in)
	if err != nil {
		s.jsonError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, sub)
}

// apiResendConfirmation: POST /api/v1/subscribers/{email}/resend.
func (s *Server) apiResendConfirmation(w http.ResponseWriter, r *http.Request) {
	sub, err := s.deps.Subscriptions.ResendConfirmation(r.Context(), emailVar(r))
	if err != nil {
		s.jsonError(w, r, err)
		return
	}
	writeJSON(w, http.StatusAccepted, sub)
}

type adminUIKey struct{}

// AdminUI marks ctx as an API call the admin web UI makes for a page
// (package adminui), so what it starts is labelled "admin". Only code in
// this process can set it: no request from outside carries it.
func AdminUI(ctx context.Context) context.Context { return context.WithValue(ctx, adminUIKey{}, true) }

// FromAdminUI says whether ctx was marked by AdminUI.
func FromAdminUI(ctx context.Context) bool { b, _ := ctx.Value(adminUIKey{}).(bool); return b }
