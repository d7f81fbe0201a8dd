package mailer

import (
	"bytes"
	"net/mail"
	"strings"
	"testing"
)

// TestNamesWithABackslash: a non-ASCII display name with a backslash
// (a reader's name from the form; the fuzz target found "\\\u0086") must
// give To and From headers that parse back to the same name and address.
// net/mail Q-encodes such a name with the backslash raw, which neither
// RFC 2047 nor net/mail's own parser accepts.
func TestNamesWithABackslash(t *testing.T) {
	for _, name := range []string{"\\\u0086", `Jo \ Ünal`, `Ünal\`, `Zoë\"`, `plain \ ascii`, "Zoë"} {
		check := func(kind string, raw []byte, header, wantAddr string) {
			t.Helper()
			msg, err := mail.ReadMessage(bytes.NewReader(raw))
			if err != nil {
				t.Fatalf("%s, name %q: %v", kind, name, err)
			}
			a, err := mail.ParseAddress(msg.Header.Get(header))
			if err != nil || a.Name != name || a.Address != wantAddr {
				t.Errorf("%s, name %q: %s %q parses to %v, %v", kind, name, header, msg.Header.Get(header), a, err)
			}
		}
		e := sampleEmail()
		e.ToName = name
		e.From = `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(name) + `" <digest@blog.example.org>`
		m, err := Compose(e)
		if err != nil {
			t.Fatalf("Compose, name %q: %v", name, err)
		}
		check("Compose", m.Raw, "To", e.To)
		check("Compose", m.Raw, "From", "digest@blog.example.org")

		tpl, err := NewTemplate(e)
		if err != nil {
			t.Fatalf("NewTemplate, name %q: %v", name, err)
		}
		tm, err := tpl.Compose(&Recipient{To: "reader@example.com", ToName: name})
		if err != nil {
			t.Fatalf("Template, name %q: %v", name, err)
		}
		check("Template", tm.Raw, "To", "reader@example.com")
		check("Template", tm.Raw, "From", "digest@blog.example.org")
	}
}
