package handlers

import (
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/gorilla/mux"

	"github.com/herald-dev/herald"
)

// requireAdmin: 403 when no token is configured, 401 without the right one.
// The comparison is constant-time over hashes, so neither the token's
// content nor its length leaks through timing.
func (s *Server) requireAdmin(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.adminEnabled() {
			writeJSON(w, http.StatusForbidden, map[string]string{"error": "the admin API is disabled: set admin.token (or HERALD_ADMIN_TOKEN)"})
			return
		}
		auth := r.Header.Get("Authorization")
		tok, ok := strings.CutPrefix(auth, "Bearer ")
		if !ok || !s.tokenMatches(tok) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="herald"`)
			writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "missing or wrong admin token (Authorization: Bearer <admin.token>)"})
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

// emailVar reads and normalises the {email} path segment.
func emailVar(r *http.Request) (string, error) {
	raw := mux.Vars(r)["email"]
	if u, err := url.PathUnescape(raw); err == nil {
		raw = u
	}
	return herald.NormalizeEmail(raw)
}

func (s *Server) apiListSubscribers(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f := herald.SubscriberFilter{Query: q.Get("q")}
	if st := q.Get("status"); st != "" {
		if !herald.Status(st).Valid() {
			s.jsonError(w, r, herald.Errorf(herald.EINVALID, "unknown status %q (want pending, confirmed, unsubscribed or bounced)", st).WithField("status"))
			return
		}
		f.Status = herald.Status(st)
	}
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > 1000 {
			s.jsonError(w, r, herald.Errorf(herald.EINVALID, "limit must be a number from 1 to 1000").WithField("limit"))
			return
		}
		f.Limit = n
	}
	if a := q.Get("after"); a != "" {
		n, err := strconv.ParseUint(a, 10, 64)
		if err != nil {
			s.jsonError(w, r, herald.Errorf(herald.EINVALID, "after must be the \"next\" value of the previous page").WithField("after"))
			return
		}
		f.After = n
	}
	subs, next, err := s.deps.Store.ListSubscribers(r.Context(), f)
	if err != nil {
		s.jsonError(w, r, err)
		return
	}
	if subs == nil {
		subs = []*herald.Subscriber{}
	}
	nextStr := ""
	if next != 0 {
		nextStr = strconv.FormatUint(next, 10)
	}
	writeJSON(w, http.StatusOK, map[string]any{"subscribers": subs, "next": nextStr})
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
	email, err := herald.NormalizeEmail(in.Email)
	if err != nil {
		s.jsonError(w, r, err)
		return
	}
	if cur, err := s.deps.Store.SubscriberByEmail(r.Context(), email); err == nil {
		writeJSON(w, http.StatusConflict, map[string]any{"error": "a subscriber with this address exists already", "field": "email", "subscriber": cur})
		return
	} else if herald.ErrorCode(err) != herald.ENOTFOUND {
		s.jsonError(w, r, err)
		return
	}
	in.Source = "api"
	sub, err := s.deps.Subs.Subscribe(r.Context(), in)
	if err != nil {
		s.jsonError(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, sub)
}

func (s *Server) apiGetSubscriber(w http.ResponseWriter, r *http.Request) {
	email, err := emailVar(r)
	if err != nil {
		s.jsonError(w, r, err)
		return
	}
	sub, err := s.deps.Store.SubscriberByEmail(r.Context(), email)
	if err != nil {
		s.jsonError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, sub)
}

func (s *Server) apiDeleteSubscriber(w http.ResponseWriter, r *http.Request) {
	email, err := emailVar(r)
	if err != nil {
		s.jsonError(w, r, err)
		return
	}
	if err := s.deps.Store.DeleteSubscriber(r.Context(), email); err != nil {
		s.jsonError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
