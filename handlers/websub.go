package handlers

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strconv"

	"github.com/gorilla/mux"

	"github.com/herald-dev/herald"
)

// WebSub is the subscriber side of W3C WebSub: the hub's verification of
// intent and its content distribution, for the feed a callback names.
type WebSub interface {
	// VerifyIntent returns the challenge to echo; ENOTFOUND when herald
	// did not ask for what the hub verifies.
	VerifyIntent(ctx context.Context, feedID string, q url.Values) (string, error)
	// Push takes a distributed body; EFORBIDDEN for a bad or missing
	// signature. It returns what the body brought (a poll result).
	Push(ctx context.Context, feedID, signature, contentType string, body []byte) (any, error)
}

// MaxPushBody is the largest WebSub push accepted: a feed body, as big as
// a polled one may be.
const MaxPushBody = 10 << 20

// registerFeeds adds the WebSub callback routes and the manual send of
// a silent post.
func (s *Server) registerFeeds(r, api *mux.Router) {
	r.HandleFunc("/websub/{feed}", s.websubVerify).Methods(http.MethodGet)
	r.HandleFunc("/websub/{feed}", s.websubPush).Methods(http.MethodPost)
	api.HandleFunc("/posts/{id}/send", s.apiSendPost).Methods(http.MethodPost)
}

// websubVerify echoes hub.challenge as text/plain (W3C WebSub 5.3).
func (s *Server) websubVerify(w http.ResponseWriter, r *http.Request) {
	if s.deps.WebSub == nil {
		s.plainError(w, r, herald.Errorf(herald.ENOTFOUND, "WebSub is off"))
		return
	}
	challenge, err := s.deps.WebSub.VerifyIntent(r.Context(), mux.Vars(r)["feed"], r.URL.Query())
	if err != nil {
		s.plainError(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	_, _ = io.WriteString(w, challenge)
}

// websubPush takes a hub's content distribution (W3C WebSub 7).
func (s *Server) websubPush(w http.ResponseWriter, r *http.Request) {
	if s.deps.WebSub == nil {
		s.jsonError(w, r, herald.Errorf(herald.ENOTFOUND, "WebSub is off"))
		return
	}
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxPushBody))
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		s.jsonError(w, r, herald.Errorf(herald.ETOOLARGE, "the pushed content is larger than %d MiB", MaxPushBody>>20))
		return
	} else if err != nil {
		s.jsonError(w, r, herald.Errorf(herald.EMALFORMED, "could not read the pushed content: %v", err))
		return
	}
	res, err := s.deps.WebSub.Push(r.Context(), mux.Vars(r)["feed"], r.Header.Get("X-Hub-Signature"), r.Header.Get("Content-Type"), b)
	if err != nil {
		s.jsonError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"result": res})
}

// apiSendPost makes a silent post (backlog, older than max_age) go out:
// it becomes the newest post, for every reader's next email.
func (s *Server) apiSendPost(w http.ResponseWriter, r *http.Request) {
	if s.deps.Posts == nil {
		s.jsonError(w, r, notAvailable("the posts API"))
		return
	}
	id, err := strconv.ParseUint(mux.Vars(r)["id"], 10, 64)
	if err != nil || id == 0 {
		s.jsonError(w, r, herald.Errorf(herald.EINVALID, "post id must be a positive number").WithField("id"))
		return
	}
	p, err := s.deps.Posts.ReleasePost(r.Context(), id)
	if err != nil {
		s.jsonError(w, r, err)
		return
	}
	if s.deps.Digests != nil {
		s.deps.Digests.NewPosts()
	}
	writeJSON(w, http.StatusOK, map[string]any{"post": p})
}

// plainError answers with the mapped status and the message as text: a
// hub reads the status, a person reading a log reads the text.
func (s *Server) plainError(w http.ResponseWriter, r *http.Request, err error) {
	s.logIfInternal(r, err)
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(statusFor(herald.ErrorCode(err)))
	_, _ = io.WriteString(w, herald.ErrorMessage(err)+"\n")
}
