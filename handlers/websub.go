package handlers

import (
	"errors"
	"io"
	"net/http"
	"strconv"

	"github.com/gorilla/mux"

	"github.com/herald-dev/herald"
	"github.com/herald-dev/herald/api"
)

// MaxPushBody is the largest WebSub push accepted: a feed body, as big as
// a polled one may be.
const MaxPushBody = 10 << 20

// registerFeeds adds the WebSub callback routes and the manual send of
// a silent post.
func (s *Server) registerFeeds(r, v1 *mux.Router) {
	r.HandleFunc("/websub/{feed}", s.websubVerify).Methods(http.MethodGet)
	r.HandleFunc("/websub/{feed}", s.websubPush).Methods(http.MethodPost)
	v1.HandleFunc("/posts/{id}/send", s.apiSendPost).Methods(http.MethodPost)
}

// websubVerify echoes hub.challenge as text/plain (W3C WebSub 5.3).
func (s *Server) websubVerify(w http.ResponseWriter, r *http.Request) {
	challenge, err := s.deps.Push.VerifyIntent(r.Context(), mux.Vars(r)["feed"], r.URL.Query())
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
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxPushBody))
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		s.jsonError(w, r, herald.Errorf(herald.ETOOLARGE, "the pushed content is larger than %d MiB", MaxPushBody>>20))
		return
	} else if err != nil {
		s.jsonError(w, r, herald.Errorf(herald.EMALFORMED, "could not read the pushed content: %v", err))
		return
	}
	res, err := s.deps.Push.Push(r.Context(), mux.Vars(r)["feed"], r.Header.Get("X-Hub-Signature"), r.Header.Get("Content-Type"), b)
	if err != nil {
		s.jsonError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, api.PushResult{Result: res})
}

// apiSendPost makes a silent post (backlog, older than max_age) go out:
// it becomes the newest post, for every reader's next email.
func (s *Server) apiSendPost(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseUint(mux.Vars(r)["id"], 10, 64)
	if err != nil || id == 0 {
		s.jsonError(w, r, herald.Errorf(herald.EINVALID, "post id must be a positive number").WithField("id"))
		return
	}
	p, err := s.deps.Posts.SendPost(r.Context(), id)
	if err != nil {
		s.jsonError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, api.PostSent{Post: p})
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
