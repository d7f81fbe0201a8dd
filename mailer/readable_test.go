package mailer

import (
	"bytes"
	"testing"

	"github.com/herald-dev/herald/internal/testmail"
)

// FuzzReadable: whatever bytes the file transport is handed, readable
// does not panic, and a message it rewrites reads the same in a mail
// client as the one it was given.
func FuzzReadable(f *testing.F) {
	e := sampleEmail()
	m, err := Compose(e)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(m.Raw)
	f.Add([]byte("Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\na=3Db=\r\nc\r\n"))
	f.Add([]byte("Content-Type: multipart/alternative; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\naGk=\r\n--b--\r\n"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		out := readable(raw)
		if bytes.Equal(out, raw) {
			return
		}
		before, err := testmail.Parse(raw)
		if err != nil {
			return // not one of herald's messages: only "no panic" holds
		}
		after, err := testmail.Parse(out)
		if err != nil {
			t.Fatalf("rewritten message does not parse: %v\n%q", err, out)
		}
		if before.Text != after.Text || before.HTML != after.HTML {
			t.Fatalf("rewritten message reads differently:\n%q\n%q", before.Text, after.Text)
		}
	})
}
