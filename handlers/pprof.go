package handlers

import (
	"net/http"
	"net/http/pprof"

	"github.com/gorilla/mux"
)

// registerPprof serves the runtime profiles of net/http/pprof under
// /debug/pprof/, behind the admin token like /metrics: a CPU, heap or
// block profile of the live process, for `go tool pprof` with
// -http-header "Authorization: Bearer <admin.token>" or curl -H.
// Nothing is sampled until a profile is asked for; the block and mutex
// profiles stay empty unless the runtime's rates are set.
func (s *Server) registerPprof(r *mux.Router) {
	d := r.PathPrefix("/debug/pprof").Subrouter()
	d.Use(s.requireAdmin)
	d.HandleFunc("/cmdline", pprof.Cmdline).Methods(http.MethodGet)
	d.HandleFunc("/profile", pprof.Profile).Methods(http.MethodGet)
	d.HandleFunc("/symbol", pprof.Symbol).Methods(http.MethodGet, http.MethodPost)
	d.HandleFunc("/trace", pprof.Trace).Methods(http.MethodGet)
	d.PathPrefix("/").HandlerFunc(pprof.Index).Methods(http.MethodGet)
}
