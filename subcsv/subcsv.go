// Package subcsv reads and writes subscriber lists as CSV: herald's own
// export, and the exports of Mailchimp and listmonk for an import. It
// maps columns and words onto herald's; what an import does with the rows
// is the subscription service's.
package subcsv

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"errors"
	"io"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/herald-dev/herald"
)

// maxRow caps one record, so an unclosed quote can't make the reader
// buffer the rest of a large file.
const maxRow = 1 << 20

// Header is what the export writes and the import reads back. Topics are
// separated by ';' in their cell; paused_until is empty unless the reader
// is paused.
var Header = []string{"email", "name", "frequency", "status", "created_at", "confirmed_at", "topics", "timezone", "paused_until", "language"}

// TopicSep separates the topics in a cell.
const TopicSep = ";"

// Writer writes subscribers in herald's export format.
type Writer struct {
	cw  *csv.Writer
	rec []string
}

// NewWriter writes the header line to w (buffered until Flush).
func NewWriter(w io.Writer) *Writer {
	cw := csv.NewWriter(w)
	_ = cw.Write(Header) // an error sticks, and Flush reports it
	return &Writer{cw: cw, rec: make([]string, len(Header))}
}

// Write adds one subscriber.
func (w *Writer) Write(sub *herald.Subscriber) {
	w.rec[0] = escape(sub.Email)
	w.rec[1] = escape(sub.Name)
	w.rec[2] = string(sub.Frequency)
	w.rec[3] = string(sub.Status)
	w.rec[4] = formatTime(sub.CreatedAt)
	w.rec[5] = ""
	if sub.ConfirmedAt != nil {
		w.rec[5] = formatTime(*sub.ConfirmedAt)
	}
	w.rec[6] = escape(strings.Join(sub.Topics, TopicSep))
	w.rec[7] = sub.Timezone
	w.rec[8] = ""
	if sub.PausedUntil != nil {
		w.rec[8] = formatTime(*sub.PausedUntil)
	}
	w.rec[9] = sub.Language
	_ = w.cw.Write(w.rec)
}

// Flush writes what is buffered and reports the first error of any write.
func (w *Writer) Flush() error {
	w.cw.Flush()
	return w.cw.Error()
}

func formatTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

// escape keeps a spreadsheet from running a value as a formula: one
// that starts with = + - @ or a tab or CR gets a leading apostrophe, which
// the import takes off again.
func escape(v string) string {
	if v != "" && strings.ContainsRune("=+-@\t\r", rune(v[0])) {
		return "'" + v
	}
	return v
}

func unescape(v string) string {
	if len(v) >= 2 && v[0] == '\'' && strings.ContainsRune("=+-@\t\r", rune(v[1])) {
		return v[1:]
	}
	return v
}

// Reader reads subscriber rows from a CSV file: a header line naming
// the columns (case-insensitively; herald's own, Mailchimp's and
// listmonk's names), then one row per subscriber. A UTF-8 BOM, CRLF line
// ends, quoted fields and extra columns are fine; ';' or tab separators
// are recognised from the header line.
type Reader struct {
	cr   *csv.Reader
	lim  *rowLimiter
	cols columns
}

// columns holds the index of each known column, -1 when absent.
type columns struct {
	email, name, first, last, frequency, status, created, confirmed, unsub, clean int
	topics, timezone, paused, language                                            int
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
	// herald's readers' choices.
	"topics": "topics", "timezone": "timezone", "time zone": "timezone", "paused_until": "paused",
	// The reader's language: herald's, and listmonk's and Mailchimp's names for it.
	"language": "language", "lang": "language",
}

// NewReader reads the header line. Errors are EMALFORMED or EINVALID
// with a message that says what is wrong with the file.
func NewReader(r io.Reader) (*Reader, error) {
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
	c := &Reader{cr: cr, lim: lim}
	rec, err := cr.Read()
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		return nil, herald.Errorf(herald.EMALFORMED, "the header line is not valid CSV: %v", pe.Err)
	} else if err != nil {
		return nil, readError(err)
	}
	lim.mark = cr.InputOffset()
	c.cols = columns{-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1}
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
		case "topics":
			c.cols.topics = i
		case "timezone":
			c.cols.timezone = i
		case "paused":
			c.cols.paused = i
		case "language":
			c.cols.language = i
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
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

// readError passes herald's errors on (a body over its size limit is the
// caller's ETOOLARGE) and makes any other a malformed file.
func readError(err error) error {
	var he *herald.Error
	if errors.As(err, &he) {
		return err
	}
	return herald.Errorf(herald.EMALFORMED, "could not read the file: %v", err)
}

// Next returns the next row: io.EOF at the end, a *RowError for a row
// that is wrong (reading can go on), any other error when the file can't
// be read further. Blank rows are passed over.
func (c *Reader) Next() (herald.ImportRow, error) {
	for {
		rec, err := c.cr.Read()
		c.lim.mark = c.cr.InputOffset()
		if errors.Is(err, io.EOF) {
			return herald.ImportRow{}, io.EOF
		}
		var pe *csv.ParseError
		if errors.As(err, &pe) {
			return herald.ImportRow{}, &herald.RowError{Line: pe.StartLine, Msg: "not valid CSV: " + pe.Err.Error()}
		} else if err != nil {
			return herald.ImportRow{}, readError(err)
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
			return herald.ImportRow{}, &herald.RowError{Line: line, Msg: herald.ErrorMessage(err)}
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

func (c *Reader) row(rec []string, line int) (herald.ImportRow, error) {
	row := herald.ImportRow{Line: line}
	email, err := herald.NormalizeEmail(unescape(field(rec, c.cols.email)))
	if err != nil {
		return row, err
	}
	row.Email = email
	name := unescape(field(rec, c.cols.name))
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
	row.Language = field(rec, c.cols.language)
	if ts := unescape(field(rec, c.cols.topics)); ts != "" {
		for _, t := range strings.Split(ts, TopicSep) {
			if t = strings.TrimSpace(t); t != "" {
				row.Topics = append(row.Topics, t)
			}
		}
	}
	// Checked by the import, against the site's topics and the zones.
	row.Timezone = field(rec, c.cols.timezone)
	if p := field(rec, c.cols.paused); p != "" {
		t, err := time.Parse(time.RFC3339, p)
		if err != nil {
			return row, herald.Errorf(herald.EINVALID, "paused_until %q is not an RFC 3339 time such as 2030-01-02T15:04:05Z", truncate(p, 40)).WithField("paused_until")
		}
		row.PausedUntil = t.UTC()
	}
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

// rowLimiter fails a read when one record grows past maxRow.
type rowLimiter struct {
	r    io.Reader
	read int64
	mark int64 // where the last record ended
}

func (l *rowLimiter) Read(p []byte) (int, error) {
	if l.read-l.mark > maxRow {
		return 0, herald.Errorf(herald.ETOOLARGE, "a row is longer than %d KiB (an unclosed quote?) after byte %d", maxRow>>10, l.mark)
	}
	n, err := l.r.Read(p)
	l.read += int64(n)
	return n, err
}
