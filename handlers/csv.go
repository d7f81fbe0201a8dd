package handlers

import (
	"errors"
	"io"
	"mime"
	"net/http"
	"strconv"
	"time"

	"github.com/gorilla/mux"

	"github.com/herald-dev/herald"
	"github.com/herald-dev/herald/api"
	"github.com/herald-dev/herald/subcsv"
)

// CSV export and import of subscribers (GET and POST
// /api/v1/subscribers.csv). Both stream: the export a page of readers at
// a time, the import row by row into the import service (whose rules they
// are: see subscription.Service.Import).

const (
	// MaxImportBody caps a CSV import's body.
	MaxImportBody = 512 << 20
	// exportPage is how many subscribers one read transaction of the
	// export reads.
	exportPage = 1000
)

func (s *Server) registerCSV(v1 *mux.Router) {
	v1.HandleFunc("/subscribers.csv", s.exportCSV).Methods(http.MethodGet)
	v1.HandleFunc("/subscribers.csv", s.importCSV).Methods(http.MethodPost)
}

// extendDeadlines lifts the server's read and write timeouts for a
// request that streams a big body (import, export, backup).
func extendDeadlines(w http.ResponseWriter, d time.Duration) {
	rc := http.NewResponseController(w)
	t := time.Now().Add(d)
	_ = rc.SetReadDeadline(t) // ErrNotSupported on writers that have no deadlines
	_ = rc.SetWriteDeadline(t)
}

// abort cuts the connection of a response already under way, so the
// client sees a truncated body rather than a clean end.
func abort() { panic(http.ErrAbortHandler) }

func (s *Server) exportCSV(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	// The first page comes before the headers, so a store that does not
	// answer still gets a JSON error.
	page, err := s.deps.Subscriptions.ScanSubscribers(ctx, 0, exportPage)
	if err != nil {
		s.jsonError(w, r, err)
		return
	}
	extendDeadlines(w, time.Hour)
	h := w.Header()
	h.Set("Content-Type", "text/csv; charset=utf-8")
	h.Set("Content-Disposition", `attachment; filename="herald-subscribers-`+s.opt.Now().UTC().Format("20060102-150405")+`.csv"`)
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	cw := subcsv.NewWriter(w)
	n := 0
	for len(page) > 0 {
		for _, sub := range page {
			cw.Write(sub)
		}
		n += len(page)
		if err := cw.Flush(); err != nil {
			s.log.Warn("handlers: csv export cut off", "rows", n, "err", err)
			abort()
		}
		page, err = s.deps.Subscriptions.ScanSubscribers(ctx, page[len(page)-1].ID, exportPage)
		if err != nil {
			if ctx.Err() == nil {
				s.log.Error("handlers: csv export", "rows", n, "err", err)
			}
			abort()
		}
	}
	_ = cw.Flush() // the header, when there is no one
	s.log.Info("handlers: csv export", "rows", n)
}

// tooLarge makes a body over its limit herald's ETOOLARGE, for the CSV
// reader to pass on.
type tooLarge struct{ r io.Reader }

func (t tooLarge) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		err = herald.Errorf(herald.ETOOLARGE, "the file is larger than %d MiB: split it", MaxImportBody>>20)
	}
	return n, err
}

func (s *Server) importCSV(w http.ResponseWriter, r *http.Request) {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil {
			s.jsonError(w, r, herald.Errorf(herald.EMALFORMED, "unreadable Content-Type %q", ct))
			return
		}
		switch mt {
		case "text/csv", "application/csv", "text/plain", "application/vnd.ms-excel", "application/octet-stream":
		default:
			s.jsonError(w, r, herald.Errorf(herald.EMALFORMED, "want a CSV file as the body (Content-Type: text/csv), got %s", mt))
			return
		}
	}
	confirmed := false
	if v := r.URL.Query().Get("confirmed"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			s.jsonError(w, r, herald.Errorf(herald.EINVALID, "confirmed must be true or false, got %q", v).WithField("confirmed"))
			return
		}
		confirmed = b
	}
	extendDeadlines(w, 2*time.Hour)
	rows, err := subcsv.NewReader(tooLarge{http.MaxBytesReader(w, r.Body, MaxImportBody)})
	if err != nil { // nothing was imported: the file's header is wrong
		s.jsonError(w, r, err)
		return
	}
	start := time.Now()
	rep, err := s.deps.Imports.Import(r.Context(), rows, confirmed)
	if err != nil && r.Context().Err() != nil {
		s.log.Warn("handlers: csv import: the client went away", "rows", rep.Rows, "added", rep.Added, "updated", rep.Updated)
		return
	}
	if err != nil {
		// Stopped part-way: the rows before were imported; say so.
		s.logIfInternal(r, err)
		s.log.Warn("handlers: csv import stopped", "rows", rep.Rows, "added", rep.Added, "updated", rep.Updated, "err", err)
		writeJSON(w, statusFor(herald.ErrorCode(err)), api.ImportStopped{
			Error:        "the import stopped part-way (rows before it were imported): " + herald.ErrorMessage(err),
			ImportReport: rep,
		})
		return
	}
	s.log.Info("handlers: csv import", "rows", rep.Rows, "added", rep.Added, "updated", rep.Updated,
		"skipped", rep.Skipped, "invalid", rep.InvalidTotal, "confirmations", rep.Confirmations,
		"confirmed", confirmed, "dur", time.Since(start).Round(time.Millisecond))
	writeJSON(w, http.StatusOK, rep)
}
