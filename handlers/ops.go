package handlers

import (
	"context"
	"net/http"
	"time"

	"github.com/gorilla/mux"

	"github.com/herald-dev/herald"
)

// The operator's routes: stats, backup and metrics, and the route label
// the metrics hook gets for every request.

func (s *Server) registerOps(r, api *mux.Router) {
	api.HandleFunc("/stats", s.apiStats).Methods(http.MethodGet)
	api.HandleFunc("/backup", s.apiBackup).Methods(http.MethodGet)
	r.Handle("/metrics", s.requireAdmin(http.HandlerFunc(s.metrics))).Methods(http.MethodGet, http.MethodHead)
	r.Use(markRoute)
}

// Stats is the answer of GET /api/v1/stats. Parts whose store is not
// wired in are left out.
type Stats struct {
	Subscribers SubscriberStats `json:"subscribers"`
	Posts       *int            `json:"posts,omitempty"`
	Runs        *int            `json:"runs,omitempty"`
	Emails      *EmailStats     `json:"emails,omitempty"`
	// Outbox is how many messages wait in the outbox.
	Outbox *int `json:"outbox,omitempty"`
	// Routes: sent, failed, deferred and set-aside per relay or provider.
	Routes []herald.RouteStats `json:"routes,omitempty"`
}

// SubscriberStats counts subscribers. Every status and frequency is
// present, zero when there are none.
type SubscriberStats struct {
	Total                int                                        `json:"total"`
	ByStatus             map[herald.Status]int                      `json:"by_status"`
	ByFrequency          map[herald.Frequency]int                   `json:"by_frequency"`
	ConfirmedByFrequency map[herald.Frequency]int                   `json:"confirmed_by_frequency"`
	ByStatusAndFrequency map[herald.Status]map[herald.Frequency]int `json:"by_status_and_frequency"`
}

// EmailStats are the store's durable counters of delivered and failed
// emails (every kind).
type EmailStats struct {
	Sent   int64 `json:"sent"`
	Failed int64 `json:"failed"`
}

// CountStats gathers the stats from the stores given (nil ones are left
// out). The admin UI's dashboard can use it too.
func CountStats(ctx context.Context, subs herald.SubscriberStore, posts herald.PostStore, runs herald.RunStore,
	counters herald.CounterStore, outbox herald.OutboxStore) (*Stats, error) {
	m, err := subs.CountSubscribers(ctx)
	if err != nil {
		return nil, err
	}
	st := &Stats{Subscribers: SubscriberStats{
		ByStatus:             map[herald.Status]int{},
		ByFrequency:          map[herald.Frequency]int{},
		ConfirmedByFrequency: map[herald.Frequency]int{},
		ByStatusAndFrequency: m,
	}}
	for _, status := range herald.Statuses {
		st.Subscribers.ByStatus[status] = 0
	}
	for _, f := range herald.Frequencies {
		st.Subscribers.ByFrequency[f] = 0
		st.Subscribers.ConfirmedByFrequency[f] = 0
	}
	for status, byFreq := range m {
		for f, n := range byFreq {
			st.Subscribers.Total += n
			st.Subscribers.ByStatus[status] += n
			st.Subscribers.ByFrequency[f] += n
			if status == herald.StatusConfirmed {
				st.Subscribers.ConfirmedByFrequency[f] += n
			}
		}
	}
	if posts != nil {
		n, err := posts.CountPosts(ctx)
		if err != nil {
			return nil, err
		}
		st.Posts = &n
	}
	if runs != nil {
		n, err := runs.CountRuns(ctx)
		if err != nil {
			return nil, err
		}
		st.Runs = &n
	}
	if counters != nil {
		c, err := counters.Counters(ctx)
		if err != nil {
			return nil, err
		}
		st.Emails = &EmailStats{Sent: c[herald.CounterEmailsSent], Failed: c[herald.CounterEmailsFailed]}
	}
	if outbox != nil {
		n, err := outbox.OutboxDepth(ctx)
		if err != nil {
			return nil, err
		}
		st.Outbox = &n
	}
	return st, nil
}

func (s *Server) apiStats(w http.ResponseWriter, r *http.Request) {
	d := s.deps
	st, err := CountStats(r.Context(), d.Store, d.Posts, d.Runs, d.Counters, d.Outbox)
	if err != nil {
		s.jsonError(w, r, err)
		return
	}
	if d.Routes != nil {
		st.Routes = d.Routes.Routes()
	}
	writeJSON(w, http.StatusOK, st)
}

// apiBackup streams a consistent snapshot of the database (one bbolt read
// transaction) while herald goes on serving.
func (s *Server) apiBackup(w http.ResponseWriter, r *http.Request) {
	if s.deps.Backup == nil {
		s.jsonError(w, r, notAvailable("backup"))
		return
	}
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
	if s.deps.Metrics == nil {
		s.jsonError(w, r, notAvailable("metrics"))
		return
	}
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
