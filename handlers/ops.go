package handlers

import (
	"context"
	"net/http"
	"time"

	"github.com/gorilla/mux"
)

// The operator's routes: stats, backup and metrics, and the route label
// the metrics hook gets for every request.

func (s *Server) registerOps(r, v1 *mux.Router) {
	v1.HandleFunc("/stats", s.apiStats).Methods(http.MethodGet)
	v1.HandleFunc("/backup", s.apiBackup).Methods(http.MethodGet)
	r.Handle("/metrics", s.requireAdmin(http.HandlerFunc(s.metrics))).Methods(http.MethodGet, http.MethodHead)
	r.Use(markRoute)
}

func (s *Server) apiStats(w http.ResponseWriter, r *http.Request) {
	st, err := s.deps.Stats.Stats(r.Context())
	if err != nil {
		s.jsonError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, st)
}

// apiBackup streams a consistent snapshot of the database (one bbolt read
// transaction) while herald goes on serving.
func (s *Server) apiBackup(w http.ResponseWriter, r *http.Request) {
	extendDeadlines(w, 2*time.Hour)
	name := "herald-" + s.opt.Now().UTC().Format("20060102-150405") + ".db"
	h := w.Header()
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Content-Disposition", `attachment; filename="`+name+`"`)
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	cw := &countingWriter{w: w}
	start := time.Now()
	n, err := s.deps.Backup.Backup(r.Context(), cw)
	if err != nil {
		if cw.n == 0 {
			h.Del("Content-Disposition")
			s.jsonError(w, r, err)
			return
		}
		if r.Context().Err() == nil {
			s.log.Error("handlers: backup cut off", "bytes", n, "err", err)
		}
		abort()
	}
	s.log.Info("handlers: backup", "bytes", n, "dur", time.Since(start).Round(time.Millisecond))
}

type countingWriter struct {
	w http.ResponseWriter
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

func (s *Server) metrics(w http.ResponseWriter, r *http.Request) {
	s.deps.Metrics.ServeHTTP(w, r)
}

// The route label for metrics: ServeHTTP puts an empty box in the
// request's context, and markRoute (router middleware, run only when a
// route matched) fills it with the route's path template, so labels stay
// few whatever paths clients make up.

type routeKey struct{}

type routeBox struct{ tpl string }

// unmatchedRoute labels requests no route took (404, 405).
const unmatchedRoute = "unmatched"

func withRouteBox(r *http.Request) (*http.Request, *routeBox) {
	b := &routeBox{}
	return r.WithContext(context.WithValue(r.Context(), routeKey{}, b)), b
}

func markRoute(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if b, ok := r.Context().Value(routeKey{}).(*routeBox); ok {
			if route := mux.CurrentRoute(r); route != nil {
				if tpl, err := route.GetPathTemplate(); err == nil {
					b.tpl = tpl
				}
			}
		}
		next.ServeHTTP(w, r)
	})
}

// observe reports one finished request to the metrics hook.
func (s *Server) observe(b *routeBox, status int, d time.Duration) {
	if s.deps.Observe == nil {
		return
	}
	route := b.tpl
	if route == "" {
		route = unmatchedRoute
	}
	s.deps.Observe(route, status, d)
}
