package handlers

import (
	"encoding/json"
	"errors"

	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"

	"github.com/herald-dev/herald"
)

// readBody reads at most MaxBody bytes; more is ETOOLARGE.
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	body := http.MaxBytesReader(w, r.Body, MaxBody)
	b, err := io.ReadAll(body)
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return nil, herald.Errorf(herald.ETOOLARGE, "request body is larger than %d KiB", MaxBody>>10)
	} else if err != nil {
		return nil, herald.Errorf(herald.EMALFORMED, "could not read the request body: %v", err)
	}
	return b, nil
}

// decodeJSON decodes a JSON object into v, refusing trailing data and
// unknown fields, with a message that says what was wrong.
func decodeJSON(b []byte, v any) error {
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var se *json.SyntaxError
		var te *json.UnmarshalTypeError
		var he *herald.Error
		switch {
		case errors.As(err, &he): // a field's own check (herald.OptionalTime)
			return he
		case errors.Is(err, io.EOF):
			return herald.Errorf(herald.EMALFORMED, "request body is empty; want a JSON object")
		case errors.As(err, &se):
			return herald.Errorf(herald.EMALFORMED, "malformed JSON at byte %d: %v", se.Offset, err)
		case errors.As(err, &te):
			return herald.Errorf(herald.EMALFORMED, "JSON field %q must be a %s", te.Field, te.Type.String())
		case strings.HasPrefix(err.Error(), "json: unknown field"):
			return herald.Errorf(herald.EMALFORMED, "%s", strings.TrimPrefix(err.Error(), "json: "))
		default:
			return herald.Errorf(herald.EMALFORMED, "malformed JSON: %v", err)
		}
	}
	if dec.More() {
		return herald.Errorf(herald.EMALFORMED, "malformed JSON: more than one value in the body")
	}
	return nil
}

// repeatable are the form fields that may come more than once: one per
// ticked checkbox.
var repeatable = map[string]bool{"topics": true}

// parseForm reads an urlencoded (or empty) body. Multipart is refused:
// nothing of ours uploads files through a public form.
func parseForm(w http.ResponseWriter, r *http.Request) (url.Values, error) {
	b, err := readBody(w, r)
	if err != nil {
		return nil, err
	}
	ct := r.Header.Get("Content-Type")
	if ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil {
			return nil, herald.Errorf(herald.EMALFORMED, "unreadable Content-Type %q", ct)
		}
		if mt != "application/x-www-form-urlencoded" && mt != "text/plain" {
			return nil, herald.Errorf(herald.EMALFORMED, "want a form (application/x-www-form-urlencoded) or JSON, got %s", mt)
		}
	}
	vals, err := url.ParseQuery(string(b))
	if err != nil {
		return nil, herald.Errorf(herald.EMALFORMED, "malformed form body: %v", err)
	}
	if err := singleValued(vals); err != nil {
		return nil, err
	}
	return vals, nil
}

// singleValued refuses a field given twice, but for the repeatable ones,
// and bounds those.
func singleValued(vals url.Values) error {
	for k, vs := range vals {
		if len(vs) > 1 && !repeatable[k] {
			return herald.Errorf(herald.EMALFORMED, "form field %q given %d times", k, len(vs))
		}
		if len(vs) > herald.MaxTopics {
			return herald.Errorf(herald.EINVALID, "form field %q given %d times, more than there are topics", k, len(vs)).WithField(k)
		}
	}
	return nil
}

// SubscribeInput is what POST /subscribe accepts, as form or JSON.
type SubscribeInput struct {
	Email     string `json:"email"`
	Name      string `json:"name"`
	Frequency string `json:"frequency"`
	// Topics: the form sends one field per ticked box.
	Topics []string `json:"topics"`
	// Timezone is filled in by the form's script from the browser.
	Timezone string `json:"timezone"`
	// Language is the reader's language: the form's hidden "lang" (the
	// page's language), JSON's "language".
	Language string `json:"language"`
	Website  string `json:"website"` // the honeypot
	// Challenge and Solution answer the sign-up challenge (see
	// herald.Challenge), when one was asked.
	Challenge string `json:"challenge"`
	Solution  string `json:"solution"`
}

// DecodeSubscribe reads a subscribe request from either encoding. Exported
// for the fuzz target's sake as much as for reuse.
func DecodeSubscribe(contentType string, body []byte) (SubscribeInput, error) {
	var in SubscribeInput
	mt, _, _ := mime.ParseMediaType(contentType)
	if mt == "application/json" {
		if err := decodeJSON(body, &in); err != nil {
			return in, err
		}
		return in, nil
	}
	if mt != "" && mt != "application/x-www-form-urlencoded" && mt != "text/plain" {
		return in, herald.Errorf(herald.EMALFORMED, "want a form (application/x-www-form-urlencoded) or JSON, got %s", mt)
	}
	vals, err := url.ParseQuery(string(body))
	if err != nil {
		return in, herald.Errorf(herald.EMALFORMED, "malformed form body: %v", err)
	}
	in.Email, in.Name, in.Frequency, in.Website = vals.Get("email"), vals.Get("name"), vals.Get("frequency"), vals.Get("website")
	in.Topics, in.Timezone = vals["topics"], vals.Get("timezone")
	in.Language = vals.Get("lang")
	in.Challenge, in.Solution = vals.Get("challenge"), vals.Get("solution")
	if err := singleValued(vals); err != nil {
		return in, err
	}
	return in, nil
}
