package handlers

import (
	"testing"

	"github.com/herald-dev/herald"
)

// FuzzDecodeSubscribe: no input panics, and every failure is a client
// error (malformed or too large), never an internal one.
func FuzzDecodeSubscribe(f *testing.F) {
	f.Add("application/x-www-form-urlencoded", []byte("email=a%40b.org&name=Ann&frequency=daily"))
	f.Add("application/json", []byte(`{"email":"a@b.org","name":"Ann","frequency":"weekly","website":""}`))
	f.Add("application/json; charset=utf-8", []byte(`{"email":`))
	f.Add("", []byte("email=%zz"))
	f.Add("multipart/form-data; boundary=x", []byte("--x--"))
	f.Add("text/plain", []byte("email=a@b.org&email=c@d.org"))
	f.Fuzz(func(t *testing.T, ct string, body []byte) {
		in, err := DecodeSubscribe(ct, body)
		if err != nil {
			if c := herald.ErrorCode(err); c != herald.EMALFORMED {
				t.Fatalf("code %q for %q %q: %v", c, ct, body, err)
			}
			return
		}
		// Whatever decodes goes through validation without panicking, and
		// a valid address never carries a line break into a header.
		if e, err := herald.NormalizeEmail(in.Email); err == nil {
			for _, c := range e {
				if c == '\r' || c == '\n' {
					t.Fatalf("address with a line break accepted: %q", e)
				}
			}
		}
		if n, err := herald.CleanName(in.Name); err == nil {
			for _, c := range n {
				if c < 0x20 {
					t.Fatalf("name with a control character accepted: %q", n)
				}
			}
		}
	})
}
