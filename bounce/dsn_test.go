package bounce

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/herald-dev/herald"
)

const (
	testReturnPath = "bounces+abcdefgh.someone=example.net@blog.example.org"
	testMessageID  = "<5f2c0e6a9b@blog.example.org>"
)

func corpus(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "dsn", name))
	if err != nil {
		t.Fatal(err)
	}
	return fill(b, testReturnPath, testMessageID)
}

func fill(b []byte, returnPath, msgID string) []byte {
	s := strings.ReplaceAll(string(b), "{{RETURN_PATH}}", returnPath)
	return []byte(strings.ReplaceAll(s, "{{MESSAGE_ID}}", msgID))
}

// Each writer's report, read as it is written.
func TestParseDSN(t *testing.T) {
	cases := []struct {
		file, rcpt, action, status, mta string
		kind                            herald.BounceKind
		msgID                           bool
	}{
		{"postfix.eml", "alice@example.net", "failed", "5.1.1", "mail.blog.example.org", herald.BounceHard, true},
		{"postfix-delayed.eml", "bob@example.com", "delayed", "4.2.2", "mail.blog.example.org", herald.BounceSoft, true},
		{"exim.eml", "carol@example.org", "failed", "5.0.0", "smtp.example.org", herald.BounceHard, true},
		{"exim-plain.eml", "dave@example.org", "failed", "5.0.0", "", herald.BounceHard, true},
		{"gmail.eml", "erin@gmail.com", "failed", "5.1.1", "googlemail.com", herald.BounceHard, true},
		{"m365.eml", "frank@contoso.com", "failed", "5.1.10", "AM0PR02MB1234.eurprd02.prod.outlook.com", herald.BounceHard, true},
	}
	for _, tc := range cases {
		t.Run(tc.file, func(t *testing.T) {
			d, err := ParseDSN(corpus(t, tc.file))
			if err != nil {
				t.Fatal(err)
			}
			if len(d.Recipients) != 1 {
				t.Fatalf("recipients: %+v", d.Recipients)
			}
			r := d.Recipients[0]
			if r.Final != tc.rcpt || r.Action != tc.action || r.Status != tc.status {
				t.Errorf("recipient %+v, want %s %s %s", r, tc.rcpt, tc.action, tc.status)
			}
			if k, ok := r.Kind(); !ok || k != tc.kind {
				t.Errorf("kind %v %v, want %v", k, ok, tc.kind)
			}
			if d.ReportingMTA != tc.mta {
				t.Errorf("reporting MTA %q, want %q", d.ReportingMTA, tc.mta)
			}
			if tc.msgID && d.OriginalMessageID != testMessageID {
				t.Errorf("original Message-ID %q, want %q", d.OriginalMessageID, testMessageID)
			}
			found := false
			for _, to := range d.To {
				found = found || to == testReturnPath
			}
			if !found {
				t.Errorf("the return path is not among the DSN's addressees %v", d.To)
			}
		})
	}
}

func TestParseDSNRefusesOthers(t *testing.T) {
	if _, err := ParseDSN(corpus(t, "autoreply.eml")); !errors.Is(err, ErrNotDSN) {
		t.Fatalf("an auto-reply: %v, want ErrNotDSN", err)
	}
	for _, raw := range []string{"", "not a message", "Content-Type: multipart/report\r\n\r\nno boundary\r\n",
		"Content-Type: multipart/report; boundary=x\r\n\r\n--x\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; a\r\n\r\nAction: failed\r\n--x--\r\n"} {
		if d, err := ParseDSN([]byte(raw)); err == nil {
			t.Errorf("%q parsed as %+v", raw, d)
		}
	}
}

// FuzzParseDSN: no input crashes the parser, and what it returns is
// well formed.
func FuzzParseDSN(f *testing.F) {
	entries, _ := os.ReadDir(filepath.Join("testdata", "dsn"))
	for _, e := range entries {
		f.Add(corpus(f, e.Name()))
	}
	f.Add([]byte("Content-Type: multipart/report; boundary=b\r\n\r\n--b\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n"))
	f.Add([]byte("X-Failed-Recipients: a@b, c\r\n\r\nMessage-ID:\n"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		d, err := ParseDSN(raw)
		if err != nil {
			if d != nil {
				t.Fatal("a DSN with an error")
			}
			return
		}
		if len(d.Recipients) == 0 {
			t.Fatal("a DSN without recipients")
		}
		for _, r := range d.Recipients {
			if !strings.Contains(r.Final, "@") {
				t.Fatalf("recipient without an address: %+v", r)
			}
			if k, ok := r.Kind(); ok && k != herald.BounceHard && k != herald.BounceSoft {
				t.Fatalf("kind %q", k)
			}
		}
	})
}

func TestVERP(t *testing.T) {
	v, err := NewVERP("Bounces <bounces@Blog.Example.org>", []byte("0123456789abcdef"))
	if err != nil {
		t.Fatal(err)
	}
	for _, rcpt := range []string{"alice@example.net", "first.last+tag@sub.example.co.uk", "a=b@example.org"} {
		addr := v.Address(rcpt)
		if !strings.HasPrefix(addr, "bounces+") || !strings.HasSuffix(addr, "@blog.example.org") {
			t.Fatalf("Address(%s) = %s", rcpt, addr)
		}
		if got, ok := v.Recipient(addr); !ok || got != rcpt {
			t.Errorf("Recipient(%s) = %q %v, want %s", addr, got, ok, rcpt)
		}
		if got, ok := v.Recipient("<" + strings.ToUpper(addr) + ">"); !ok || got != strings.ToLower(rcpt) {
			t.Errorf("upper-cased by a relay: %q %v", got, ok)
		}
	}
	forged := strings.Replace(v.Address("alice@example.net"), "alice", "mallory", 1)
	if got, ok := v.Recipient(forged); ok {
		t.Errorf("a forged tag was taken: %s", got)
	}
	for _, bad := range []string{"bounces@blog.example.org", "other+x.a=b@blog.example.org", "bounces+abc@blog.example.org", "", "bounces+abcdefgh.a=b@elsewhere.org"} {
		if got, ok := v.Recipient(bad); ok {
			t.Errorf("Recipient(%q) = %q", bad, got)
		}
	}
	if _, err := NewVERP("bounces+x@blog.example.org", []byte("k")); err == nil {
		t.Error("a return path with a + was taken")
	}
}
