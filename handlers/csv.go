package handlers

import (
	"bufio"
	"bytes"
	"container/heap"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/mux"

	"github.com/herald-dev/herald"
)

// CSV import and export of subscribers (SPEC §3, GET/POST
// /api/v1/subscribers.csv).
//
// Export pages through the store (ScanSubscribers) and streams; import
// streams the body through encoding/csv, checks each row on the reading
// goroutine and hands good rows to a pool of workers whose writes bbolt
// batches into shared commits. Memory stays flat whatever the file's size:
// nothing is kept per row. A repeated address is recognised by the store
// itself: its record was written after the import began.

const (
	// MaxImportBody caps a CSV import's body.
	MaxImportBody = 512 << 20
	// maxImportRow caps one record, so an unclosed quote can't make the
	// reader buffer the rest of a 512 MiB file.
	maxImportRow = 1 << 20
	// maxInvalidListed is how many bad rows the report lists (the first
	// ones by line); invalid_total counts them all.
	maxInvalidListed = 1000
	// importWorkers write rows concurrently, so bbolt's Batch shares one
	// commit (two fsyncs) between many of them. bbolt commits a batch at
	// once when it reaches MaxBatchSize (default 1000), else after
	// MaxBatchDelay (10ms): as many workers as that size keeps batches
	// full. Measured on 100k rows: 32 workers 2.7k rows/s, 128 10k,
	// 512 34k, 1000 140k.
	importWorkers = 1000
	// exportPage is how many subscribers one read transaction of the
	// export reads.
	exportPage = 1000
)

// csvHeader is what the export writes and the import reads back.
var csvHeader = []string{"email", "name", "frequency", "status", "created_at", "confirmed_at"}

func (s *Server) registerCSV(api *mux.Router) {
	api.HandleFunc("/subscribers.csv", s.exportCSV).Methods(http.MethodGet)
	api.HandleFunc("/subscribers.csv", s.importCSV).Methods(http.MethodPost)
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
	page, err := s.deps.Store.ScanSubscribers(ctx, 0, exportPage)
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
	cw := csv.NewWriter(w)
	_ = cw.Write(csvHeader)
	rec := make([]string, len(csvHeader))
	n := 0
	for len(page) > 0 {
		for _, sub := range page {
			rec[0] = csvEscape(sub.Email)
			rec[1] = csvEscape(sub.Name)
			rec[2] = string(sub.Frequency)
			rec[3] = string(sub.Status)
			rec[4] = formatTime(sub.CreatedAt)
			rec[5] = ""
			if sub.ConfirmedAt != nil {
				rec[5] = formatTime(*sub.ConfirmedAt)
			}
			_ = cw.Write(rec)
		}
		n += len(page)
		cw.Flush()
		if err := cw.Error(); err != nil {
			s.log.Warn("handlers: csv export cut off", "rows", n, "err", err)
			abort()
		}
		page, err = s.deps.Store.ScanSubscribers(ctx, page[len(page)-1].ID, exportPage)
		if err != nil {
			if ctx.Err() == nil {
				s.log.Error("handlers: csv export", "rows", n, "err", err)
			}
			abort()
		}
	}
	cw.Flush() // the header, when there is no one
	s.log.Info("handlers: csv export", "rows", n)
}

func formatTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

// csvEscape keeps a spreadsheet from running a value as a formula: one
// that starts with = + - @ or a tab or CR gets a leading apostrophe, which
// the import takes off again.
func csvEscape(v string) string {
	if v != "" && strings.ContainsRune("=+-@\t\r", rune(v[0])) {
		return "'" + v
	}
	return v
}

func csvUnescape(v string) string {
	if len(v) >= 2 && v[0] == '\'' && strings.ContainsRune("=+-@\t\r", rune(v[1])) {
		return v[1:]
	}
	return v
}

// ImportReport is the answer to a CSV import.
type ImportReport struct {
	Added   int `json:"added"`
	Updated int `json:"updated"`
	Skipped int `json:"skipped"`
	// Invalid lists the first maxInvalidListed bad rows by line.
	Invalid []ImportProblem `json:"invalid"`
	// InvalidTotal counts every bad row.
	InvalidTotal int `json:"invalid_total"`
	// Confirmations counts the added rows that went through the opt-in
	// (a confirmation email was queued).
	Confirmations int `json:"confirmations"`
	// Rows counts the data rows read (blank rows aside).
	Rows int `json:"rows"`
}

// ImportProblem is one row that was not imported.
type ImportProblem struct {
	Line  int    `json:"line"`
	Error string `json:"error"`
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
	body := http.MaxBytesReader(w, r.Body, MaxImportBody)
	im := &importer{
		store: s.deps.Store, subs: s.deps.Subs, log: s.log, now: s.opt.Now,
		defaultFreq: s.opt.DefaultFrequency, confirmed: confirmed,
	}
	start := time.Now()
	rep, err := im.run(r.Context(), body)
	if err != nil && r.Context().Err() != nil {
		if rep != nil {
			s.log.Warn("handlers: csv import: the client went away", "rows", rep.Rows, "added", rep.Added, "updated", rep.Updated)
		}
		return
	}
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			err = herald.Errorf(herald.ETOOLARGE, "the file is larger than %d MiB: split it", MaxImportBody>>20)
		}
		if rep == nil { // nothing was imported
			s.jsonError(w, r, err)
			return
		}
		// Stopped part-way: the rows before were imported; say so.
		s.logIfInternal(r, err)
		s.log.Warn("handlers: csv import stopped", "rows", rep.Rows, "added", rep.Added, "updated", rep.Updated, "err", err)
		writeJSON(w, statusFor(herald.ErrorCode(err)), struct {
			Error string `json:"error"`
			*ImportReport
		}{"the import stopped part-way (rows before it were imported): " + herald.ErrorMessage(err), rep})
		return
	}
	s.log.Info("handlers: csv import", "rows", rep.Rows, "added", rep.Added, "updated", rep.Updated,
		"skipped", rep.Skipped, "invalid", rep.InvalidTotal, "confirmations", rep.Confirmations,
		"confirmed", confirmed, "dur", time.Since(start).Round(time.Millisecond))
	writeJSON(w, http.StatusOK, rep)
}

// ImportRow is one row of an import file, checked and normalised.
// Empty fields mean "not given".
type ImportRow struct {
	Line      int
	Email     string
	Name      string
	Frequency herald.Frequency
	// Status is the file's status mapped onto herald's: confirmed
	// (confirmed, subscribed, enabled), pending (pending, unconfirmed),
	// unsubscribed (unsubscribed, blocklisted, disabled, or a Mailchimp
	// UNSUB_TIME) or bounced (bounced, cleaned, or a Mailchimp CLEAN_TIME).
	Status      herald.Status
	CreatedAt   time.Time
	ConfirmedAt time.Time
}

// RowError is a row the import refuses; reading goes on after it.
type RowError struct {
	Line int
	Msg  string
}

func (e *RowError) Error() string { return fmt.Sprintf("line %d: %s", e.Line, e.Msg) }

// CSVReader reads subscriber rows from a CSV file: a header line naming
// the columns (case-insensitively; herald's own, Mailchimp's and
// listmonk's names), then one row per subscriber. A UTF-8 BOM, CRLF line
// ends, quoted fields and extra columns are fine; ';' or tab separators
// are recognised from the header line.
type CSVReader struct {
	cr   *csv.Reader
	lim  *rowLimiter
	cols columns
	line int
}

// columns holds the index of each known column, -1 when absent.
type columns struct {
	email, name, first, last, frequency, status, created, confirmed, unsub, clean int
}

// headerNames maps header names (lower-cased, trimmed) to columns.
var headerNames = map[string]string{
	"email": "email", "e-mail": "email", "email address": "email", "email_address": "email", "e-mail address": "email",
	"name": "name", "full name": "name", "full_name": "name",
	"first name": "first", "first_name": "first", "firstname": "first", "fname": "first",
	"last name": "last", "last_name": "last", "lastname": "last", "lname": "last",
	"frequency": "frequency",
	"status":    "status",
	// herald's and listmonk's; Mailchimp's OPTIN_TIME and CONFIRM_TIME.
	"created_at": "created", "optin_time": "created",
	"confirmed_at": "confirmed", "confirm_time": "confirmed",
	// Mailchimp exports each status to its own file and says so with these.
	"unsub_time": "unsub", "clean_time": "clean",
}

// NewCSVReader reads the header line. Errors are EMALFORMED or EINVALID
// with a message that says what is wrong with the file.
func NewCSVReader(r io.Reader) (*CSVReader, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	head, err := br.Peek(64 << 10)
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, bufio.ErrBufferFull) {
		return nil, readError(err)
	}
	switch {
	case bytes.HasPrefix(head, []byte{0xEF, 0xBB, 0xBF}):
		_, _ = br.Discard(3)
		head = head[3:]
	case bytes.HasPrefix(head, []byte{0xFF, 0xFE}), bytes.HasPrefix(head, []byte{0xFE, 0xFF}):
		return nil, herald.Errorf(herald.EMALFORMED, "the file is UTF-16: save it as CSV in UTF-8")
	}
	if len(bytes.TrimSpace(head)) == 0 {
		return nil, herald.Errorf(herald.EINVALID, "the file is empty: want a header line (email,name,frequency,status) and a row per subscriber")
	}
	lim := &rowLimiter{r: br}
	cr := csv.NewReader(lim)
	cr.FieldsPerRecord = -1
	cr.ReuseRecord = true
	if first, _, _ := bytes.Cut(head, []byte("\n")); bytes.IndexByte(first, ',') < 0 {
		if bytes.IndexByte(first, ';') >= 0 {
			cr.Comma = ';'
		} else if bytes.IndexByte(first, '\t') >= 0 {
			cr.Comma = '\t'
		}
	}
	c := &CSVReader{cr: cr, lim: lim}
	rec, err := cr.Read()
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		return nil, herald.Errorf(herald.EMALFORMED, "the header line is not valid CSV: %v", pe.Err)
	} else if err != nil {
		return nil, readError(err)
	}
	lim.mark = cr.InputOffset()
	c.cols = columns{-1, -1, -1, -1, -1, -1, -1, -1, -1, -1}
	seen := map[string]string{}
	for i, raw := range rec {
		h := strings.ToLower(strings.TrimSpace(raw))
		col, ok := headerNames[h]
		if !ok {
			continue // extra columns are ignored
		}
		if prev, dup := seen[col]; dup {
			return nil, herald.Errorf(herald.EINVALID, "the header has two %s columns (%q and %q): keep one", col, prev, strings.TrimSpace(raw))
		}
		seen[col] = strings.TrimSpace(raw)
		switch col {
		case "email":
			c.cols.email = i
		case "name":
			c.cols.name = i
		case "first":
			c.cols.first = i
		case "last":
			c.cols.last = i
		case "frequency":
			c.cols.frequency = i
		case "status":
			c.cols.status = i
		case "created":
			c.cols.created = i
		case "confirmed":
			c.cols.confirmed = i
		case "unsub":
			c.cols.unsub = i
		case "clean":
			c.cols.clean = i
		}
	}
	if c.cols.email < 0 {
		names := make([]string, 0, len(rec))
		for _, h := range rec {
			if len(names) == 8 {
				names = append(names, "…")
				break
			}
			names = append(names, strconv.Quote(truncate(h, 40)))
		}
		return nil, herald.Errorf(herald.EINVALID,
			"no email column in the header line (%s): the first line must name the columns, e.g. email,name,frequency,status (Mailchimp's \"Email Address\" works too)",
			strings.Join(names, ", ")).WithField("email")
	}
	return c, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !isRuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

func isRuneStart(b byte) bool { return b&0xC0 != 0x80 }

func readError(err error) error {
	var mbe *http.MaxBytesError
	var he *herald.Error
	switch {
	case errors.As(err, &mbe), errors.As(err, &he):
		return err
	}
	return herald.Errorf(herald.EMALFORMED, "could not read the file: %v", err)
}

// Next returns the next row: io.EOF at the end, a *RowError for a row
// that is wrong (reading can go on), any other error when the file can't
// be read further. Blank rows are passed over.
func (c *CSVReader) Next() (ImportRow, error) {
	for {
		rec, err := c.cr.Read()
		c.lim.mark = c.cr.InputOffset()
		if errors.Is(err, io.EOF) {
			return ImportRow{}, io.EOF
		}
		var pe *csv.ParseError
		if errors.As(err, &pe) {
			return ImportRow{}, &RowError{Line: pe.StartLine, Msg: "not valid CSV: " + pe.Err.Error()}
		} else if err != nil {
			return ImportRow{}, readError(err)
		}
		line, _ := c.cr.FieldPos(0)
		blank := true
		for _, f := range rec {
			if strings.TrimSpace(f) != "" {
				blank = false
				break
			}
		}
		if blank {
			continue
		}
		row, err := c.row(rec, line)
		if err != nil {
			return ImportRow{}, &RowError{Line: line, Msg: herald.ErrorMessage(err)}
		}
		return row, nil
	}
}

func field(rec []string, i int) string {
	if i < 0 || i >= len(rec) {
		return ""
	}
	return strings.TrimSpace(rec[i])
}

func (c *CSVReader) row(rec []string, line int) (ImportRow, error) {
	row := ImportRow{Line: line}
	email, err := herald.NormalizeEmail(csvUnescape(field(rec, c.cols.email)))
	if err != nil {
		return row, err
	}
	row.Email = email
	name := csvUnescape(field(rec, c.cols.name))
	if name == "" {
		name = strings.TrimSpace(field(rec, c.cols.first) + " " + field(rec, c.cols.last))
	}
	if row.Name, err = herald.CleanName(name); err != nil {
		return row, err
	}
	if f := strings.ToLower(field(rec, c.cols.frequency)); f != "" {
		if row.Frequency, err = herald.ParseFrequency(f); err != nil {
			return row, err
		}
	}
	if row.Status, err = mapStatus(field(rec, c.cols.status)); err != nil {
		return row, err
	}
	// Mailchimp: the unsubscribed and cleaned exports carry these times.
	if field(rec, c.cols.clean) != "" {
		row.Status = herald.StatusBounced
	} else if field(rec, c.cols.unsub) != "" && row.Status != herald.StatusBounced {
		row.Status = herald.StatusUnsubscribed
	}
	row.CreatedAt = parseTime(field(rec, c.cols.created))
	row.ConfirmedAt = parseTime(field(rec, c.cols.confirmed))
	return row, nil
}

// mapStatus maps herald's, Mailchimp's and listmonk's status words.
func mapStatus(s string) (herald.Status, error) {
	switch strings.ToLower(s) {
	case "":
		return "", nil
	case "confirmed", "subscribed", "enabled":
		return herald.StatusConfirmed, nil
	case "pending", "unconfirmed":
		return herald.StatusPending, nil
	case "unsubscribed", "blocklisted", "blacklisted", "disabled":
		return herald.StatusUnsubscribed, nil
	case "bounced", "cleaned":
		return herald.StatusBounced, nil
	}
	return "", herald.Errorf(herald.EINVALID, "unknown status %q (want confirmed, pending, unsubscribed or bounced)", truncate(s, 40)).WithField("status")
}

// timeLayouts: herald's (RFC 3339), listmonk's (Go's time.String) and
// Mailchimp's ("2006-01-02 15:04:05", UTC).
var timeLayouts = []string{
	time.RFC3339Nano,
	"2006-01-02 15:04:05.999999999 -0700 MST",
	"2006-01-02 15:04:05.999999999 -0700",
	"2006-01-02 15:04:05",
	"2006-01-02T15:04:05",
	"2006-01-02",
}

// parseTime reads a sign-up or confirmation time; one it can't read is
// left out (the import then uses the time of the import), not an error.
func parseTime(s string) time.Time {
	if s == "" {
		return time.Time{}
	}
	for _, l := range timeLayouts {
		if t, err := time.Parse(l, s); err == nil {
			if t.Year() < 1990 || t.After(time.Now().Add(24*time.Hour)) {
				return time.Time{}
			}
			return t.UTC()
		}
	}
	return time.Time{}
}

// rowLimiter fails a read when one record grows past maxImportRow.
type rowLimiter struct {
	r    io.Reader
	read int64
	mark int64 // where the last record ended
}

func (l *rowLimiter) Read(p []byte) (int, error) {
	if l.read-l.mark > maxImportRow {
		return 0, herald.Errorf(herald.ETOOLARGE, "a row is longer than %d KiB (an unclosed quote?) after byte %d", maxImportRow>>10, l.mark)
	}
	n, err := l.r.Read(p)
	l.read += int64(n)
	return n, err
}

// importer applies rows to the store.
type importer struct {
	store       herald.SubscriberStore
	subs        Subscriptions
	log         *slog.Logger
	now         func() time.Time
	defaultFreq herald.Frequency
	confirmed   bool

	rows, added, updated, skipped, confirmations atomic.Int64

	// start is when the import began, on the store's clock (real time):
	// a reader written since then was written by an earlier row of this
	// file (or changed by the reader just now), and is left alone.
	start time.Time

	mu           sync.Mutex
	invalid      problemHeap
	invalidTotal int
	inFlight     map[string]struct{} // addresses handed to a worker, not done yet
}

// run imports the rows of body. A nil report with an error: nothing was
// imported (the header is wrong). A report with an error: the import
// stopped part-way.
func (im *importer) run(ctx context.Context, body io.Reader) (*ImportReport, error) {
	cr, err := NewCSVReader(body)
	if err != nil {
		return nil, err
	}
	im.start = time.Now()
	im.inFlight = make(map[string]struct{}, 3*importWorkers)
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	rows := make(chan ImportRow, 2*importWorkers)
	var wg sync.WaitGroup
	for range importWorkers {
		wg.Go(func() {
			for row := range rows {
				if ctx.Err() != nil {
					continue // drain
				}
				if err := im.apply(ctx, row); err != nil {
					cancel(err)
				}
				im.mu.Lock()
				delete(im.inFlight, row.Email)
				im.mu.Unlock()
			}
		})
	}
	var readErr error
read:
	for {
		row, err := cr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		var re *RowError
		if errors.As(err, &re) {
			im.rows.Add(1)
			im.addInvalid(re.Line, re.Msg)
			continue
		} else if err != nil {
			readErr = err
			break
		}
		im.rows.Add(1)
		// A repeated address: the first row wins, later ones are skipped.
		// Two rows for one address are never written at once; once the
		// first is written, apply sees that the record is newer than the
		// import.
		im.mu.Lock()
		_, dup := im.inFlight[row.Email]
		if !dup {
			im.inFlight[row.Email] = struct{}{}
		}
		im.mu.Unlock()
		if dup {
			im.skipped.Add(1)
			continue
		}
		select {
		case rows <- row:
		case <-ctx.Done():
			break read
		}
	}
	close(rows)
	wg.Wait()
	if readErr == nil {
		readErr = context.Cause(ctx)
	}
	return im.report(), readErr
}

// outcome of one row.
const (
	outSkipped = iota + 1
	outAdded
	outUpdated
	outOptIn
)

// apply imports one row. Problems with the row are recorded as invalid;
// the error returned is a real fault that stops the import.
func (im *importer) apply(ctx context.Context, row ImportRow) error {
	now := im.now()
	freq := row.Frequency
	var outcome int
	_, err := im.store.MutateSubscriber(ctx, row.Email, func(cur *herald.Subscriber) (*herald.Subscriber, []*herald.OutboxMessage, error) {
		outcome = 0 // this may run more than once
		next := *cur
		if cur.Status == "" { // a new reader
			next.Name = row.Name
			next.Frequency = freq
			if next.Frequency == "" {
				next.Frequency = im.defaultFreq
			}
			next.Source = "import"
			next.CreatedAt = row.CreatedAt // zero: the store fills in now
			next.UpdatedAt = now
			switch {
			case row.Status == herald.StatusUnsubscribed:
				// A migration keeps the unsubscribe: the address is known
				// and stays silent.
				next.Status = herald.StatusUnsubscribed
				t := now
				next.UnsubscribedAt = &t
			case row.Status == herald.StatusBounced:
				next.Status = herald.StatusBounced
			case im.confirmed && (row.Status == "" || row.Status == herald.StatusConfirmed):
				next.Status = herald.StatusConfirmed
				t := now
				if !row.ConfirmedAt.IsZero() {
					t = row.ConfirmedAt
				}
				next.ConfirmedAt = &t
			default:
				outcome = outOptIn // the subscription service does it, with its email
				return nil, nil, nil
			}
			outcome = outAdded
			return &next, nil, nil
		}
		if !cur.UpdatedAt.Before(im.start) {
			// Written since the import began: by an earlier row of this
			// file, or by the reader a moment ago. Either way it stands.
			outcome = outSkipped
			return nil, nil, nil
		}
		// A known reader: name and frequency may change, the status only
		// downwards (an unsubscribe or bounce in the file is honoured;
		// nothing in a file makes anyone confirmed or pending again).
		changed := false
		if row.Name != "" && row.Name != cur.Name {
			next.Name, changed = row.Name, true
		}
		if freq != "" && freq != cur.Frequency {
			next.Frequency, changed = freq, true
		}
		live := cur.Status == herald.StatusConfirmed || cur.Status == herald.StatusPending
		switch {
		case live && row.Status == herald.StatusUnsubscribed:
			next.Status, changed = herald.StatusUnsubscribed, true
			t := now
			next.UnsubscribedAt = &t
		case live && row.Status == herald.StatusBounced:
			next.Status, changed = herald.StatusBounced, true
		}
		outcome = outUpdated
		if !changed {
			// Saved all the same, so that its UpdatedAt marks it as done
			// by this import and a later row for it is skipped.
			outcome = outSkipped
		}
		next.UpdatedAt = now
		return &next, nil, nil
	})
	if outcome == outOptIn && herald.ErrorCode(err) == herald.ENOTFOUND {
		// The store answered "not found" for the record not saved.
		_, err = im.subs.Subscribe(ctx, herald.SubscribeRequest{
			Email: row.Email, Name: row.Name, Frequency: string(freq), Source: "import",
		})
		if err == nil {
			im.added.Add(1)
			im.confirmations.Add(1)
			return nil
		}
		if herald.ErrorCode(err) == herald.ERATELIMIT {
			im.addInvalid(row.Line, "not imported: the hourly cap on confirmation emails (security.confirmations_per_hour) was reached; import the rest later, or with confirmed=true if these readers opted in elsewhere")
			return nil
		}
	}
	if err != nil {
		if ctx.Err() != nil {
			return context.Cause(ctx)
		}
		switch herald.ErrorCode(err) {
		case herald.EINTERNAL, herald.EUNAVAILABLE:
			return fmt.Errorf("handlers: import line %d: %w", row.Line, err)
		}
		im.addInvalid(row.Line, herald.ErrorMessage(err))
		return nil
	}
	switch outcome {
	case outAdded:
		im.added.Add(1)
	case outUpdated:
		im.updated.Add(1)
	case outSkipped:
		im.skipped.Add(1)
	}
	return nil
}

func (im *importer) addInvalid(line int, msg string) {
	im.mu.Lock()
	defer im.mu.Unlock()
	im.invalidTotal++
	p := ImportProblem{Line: line, Error: msg}
	if im.invalid.Len() < maxInvalidListed {
		heap.Push(&im.invalid, p)
	} else if line < im.invalid[0].Line {
		im.invalid[0] = p // keep the first ones by line
		heap.Fix(&im.invalid, 0)
	}
}

func (im *importer) report() *ImportReport {
	im.mu.Lock()
	defer im.mu.Unlock()
	inv := append([]ImportProblem{}, im.invalid...)
	sort.Slice(inv, func(i, j int) bool { return inv[i].Line < inv[j].Line })
	return &ImportReport{
		Added: int(im.added.Load()), Updated: int(im.updated.Load()), Skipped: int(im.skipped.Load()),
		Invalid: inv, InvalidTotal: im.invalidTotal, Confirmations: int(im.confirmations.Load()),
		Rows: int(im.rows.Load()),
	}
}

// problemHeap is a max-heap by line: the root is the last line kept.
type problemHeap []ImportProblem

func (h problemHeap) Len() int           { return len(h) }
func (h problemHeap) Less(i, j int) bool { return h[i].Line > h[j].Line }
func (h problemHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *problemHeap) Push(x any)        { *h = append(*h, x.(ImportProblem)) }
func (h *problemHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}
