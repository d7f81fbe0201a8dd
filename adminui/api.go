package adminui

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"

	"github.com/herald-dev/herald/api"
	"github.com/herald-dev/herald/handlers"
)

// The UI reads and changes everything through the admin API, with the one
// API client (package api) whose HTTP transport calls the API handler in
// this process: no socket, and answers stream (an export as large as it
// is).

// inProcess is an http.RoundTripper that answers with a handler.
type inProcess struct{ h http.Handler }

// pageKey carries the admin's page request to the API requests made for
// it, so the API sees the admin's address and host.
type pageKey struct{}

// ctx is the context of API calls made for the page request r, marked
// as the admin UI's (a run it starts is labelled "admin").
func ctx(r *http.Request) context.Context {
	return handlers.AdminUI(context.WithValue(r.Context(), pageKey{}, r))
}

func (t inProcess) RoundTrip(req *http.Request) (*http.Response, error) {
	req = req.Clone(req.Context())
	if page, ok := req.Context().Value(pageKey{}).(*http.Request); ok {
		req.RemoteAddr, req.Host = page.RemoteAddr, page.Host
	}
	if req.Body == nil {
		req.Body = http.NoBody
	}
	req.RequestURI = req.URL.RequestURI()
	pr, pw := io.Pipe()
	w := &pipeWriter{header: http.Header{}, body: pw, ready: make(chan struct{})}
	go func() {
		var failed any
		defer func() {
			w.WriteHeader(http.StatusOK) // the handler wrote nothing
			if failed != nil {
				// A handler that cut its answer (http.ErrAbortHandler): the
				// reader sees a broken body, as a client would.
				pw.CloseWithError(fmt.Errorf("adminui: API answer cut off: %v", failed))
			} else {
				pw.Close()
			}
		}()
		defer func() { failed = recover() }()
		t.h.ServeHTTP(w, req)
	}()
	<-w.ready
	return &http.Response{
		Status: fmt.Sprintf("%d %s", w.code, http.StatusText(w.code)), StatusCode: w.code,
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: w.sent, Body: pr, ContentLength: -1, Request: req,
	}, nil
}

// pipeWriter is the handler's side of an in-process answer.
type pipeWriter struct {
	header http.Header
	sent   http.Header // the header as it was when the status was written
	code   int
	body   *io.PipeWriter
	ready  chan struct{} // closed once the status is written
}

func (w *pipeWriter) Header() http.Header { return w.header }

func (w *pipeWriter) WriteHeader(code int) {
	if w.sent != nil {
		return
	}
	w.code, w.sent = code, w.header.Clone()
	close(w.ready)
}

func (w *pipeWriter) Write(b []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	return w.body.Write(b)
}

func (w *pipeWriter) Flush() {}

// userMessage is what to tell the admin about err.
func userMessage(err error) string {
	if api.StatusOf(err) != 0 {
		return err.Error()
	}
	return "Something went wrong inside herald; the log has the details."
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
