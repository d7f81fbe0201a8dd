package adminui

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// memResponse is an in-memory http.ResponseWriter for in-process API calls.
type memResponse struct {
	code   int
	header http.Header
	body   bytes.Buffer
	wrote  bool
	over   bool
}

func newMemResponse() *memResponse { return &memResponse{code: http.StatusOK, header: http.Header{}} }

func (m *memResponse) Header() http.Header { return m.header }

func (m *memResponse) WriteHeader(code int) {
	if !m.wrote {
		m.code, m.wrote = code, true
	}
}

func (m *memResponse) Write(b []byte) (int, error) {
	m.WriteHeader(http.StatusOK)
	if m.body.Len()+len(b) > maxAPIBodyBytes {
		m.over = true
		return 0, errors.New("adminui: API response too large")
	}
	return m.body.Write(b)
}

// apiError is an API answer other than success.
type apiError struct {
	Status  int
	Message string
}

func (e *apiError) Error() string { return fmt.Sprintf("adminui: API %d: %s", e.Status, e.Message) }

// unavailable: the route does not exist (yet) or its feature is off.
func (e *apiError) unavailable() bool {
	switch e.Status {
	case http.StatusNotImplemented, http.StatusMethodNotAllowed:
		return true
	case http.StatusNotFound:
		return strings.Contains(e.Message, "no such API route")
	}
	return false
}

func isUnavailable(err error) bool {
	var ae *apiError
	return errors.As(err, &ae) && ae.unavailable()
}

func apiStatus(err error) int {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae.Status
	}
	return 0
}

// userMessage is what to tell the admin about err.
func userMessage(err error) string {
	var ae *apiError
	if errors.As(err, &ae) {
		if ae.unavailable() {
			return "This feature is not available in this herald yet."
		}
		return ae.Message
	}
	return "Something went wrong inside herald; the log has the details."
}

// newAPIRequest builds an admin API request carrying the admin token and
// the admin's address, in the context of the page request r.
func (u *UI) newAPIRequest(r *http.Request, method, path, contentType string, body io.Reader) (*http.Request, error) {
	req, err := http.NewRequestWithContext(r.Context(), method, "http://herald.internal"+path, body)
	if err != nil {
		return nil, fmt.Errorf("adminui: API request %s %s: %w", method, path, err)
	}
	req.Host = r.Host
	req.RemoteAddr = r.RemoteAddr
	req.Header.Set("Authorization", "Bearer "+u.opt.Token)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "herald-adminui")
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	return req, nil
}

// call runs one API request in-process and returns the raw answer; any
// status of 400 or more becomes an *apiError.
func (u *UI) call(r *http.Request, method, path, contentType string, body io.Reader) (*memResponse, error) {
	req, err := u.newAPIRequest(r, method, path, contentType, body)
	if err != nil {
		return nil, err
	}
	res := newMemResponse()
	u.opt.API.ServeHTTP(res, req)
	if res.over {
		return nil, fmt.Errorf("adminui: %s %s: answer larger than %d bytes", method, path, maxAPIBodyBytes)
	}
	if res.code >= 400 {
		return res, errorFrom(res.code, res.header, res.body.Bytes())
	}
	return res, nil
}

func errorFrom(code int, h http.Header, body []byte) error {
	msg := ""
	if strings.Contains(h.Get("Content-Type"), "json") {
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(body, &e) == nil {
			msg = e.Error
		}
	}
	if msg == "" {
		msg = strings.TrimSpace(string(body))
		if len(msg) > 300 {
			msg = msg[:300] + "…"
		}
	}
	if msg == "" {
		msg = http.StatusText(code)
	}
	return &apiError{Status: code, Message: msg}
}

// getJSON GETs path and decodes the JSON answer into v.
func (u *UI) getJSON(r *http.Request, path string, v any) error {
	res, err := u.call(r, http.MethodGet, path, "", nil)
	if err != nil {
		return err
	}
	return decodeAPI(res, path, v)
}

// sendJSON sends in as JSON and decodes the answer into out (if not nil).
func (u *UI) sendJSON(r *http.Request, method, path string, in, out any) (int, error) {
	b, err := json.Marshal(in)
	if err != nil {
		return 0, fmt.Errorf("adminui: encode %s: %w", path, err)
	}
	res, err := u.call(r, method, path, "application/json", bytes.NewReader(b))
	if err != nil {
		return apiStatus(err), err
	}
	if out != nil && res.body.Len() > 0 {
		if err := decodeAPI(res, path, out); err != nil {
			return res.code, err
		}
	}
	return res.code, nil
}

func decodeAPI(res *memResponse, path string, v any) error {
	if err := json.Unmarshal(res.body.Bytes(), v); err != nil {
		return fmt.Errorf("adminui: decode answer of %s: %w", path, err)
	}
	return nil
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// streamWriter passes a successful API answer straight through to the
// browser (the CSV export can be large) and keeps an error answer back so
// the UI can show it as a page.
type streamWriter struct {
	w       http.ResponseWriter
	header  http.Header
	code    int
	wrote   bool
	passing bool
	errBody bytes.Buffer
}

func (s *streamWriter) Header() http.Header { return s.header }

func (s *streamWriter) WriteHeader(code int) {
	if s.wrote {
		return
	}
	s.code, s.wrote = code, true
	if code >= 200 && code < 300 {
		s.passing = true
		for _, k := range []string{"Content-Type", "Content-Disposition", "Content-Length", "Last-Modified"} {
			if v := s.header.Get(k); v != "" {
				s.w.Header().Set(k, v)
			}
		}
		s.w.WriteHeader(code)
	}
}

func (s *streamWriter) Write(b []byte) (int, error) {
	s.WriteHeader(http.StatusOK)
	if s.passing {
		return s.w.Write(b)
	}
	if s.errBody.Len() < 64<<10 {
		s.errBody.Write(b)
	}
	return len(b), nil
}

func (s *streamWriter) Flush() {
	if !s.passing {
		return
	}
	if f, ok := s.w.(http.Flusher); ok {
		f.Flush()
	}
}
