package mailer

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-msgauth/dkim"

	"github.com/herald-dev/herald/internal/smtptest"
)

func verify(t *testing.T, signed []byte, name, txt string) []*dkim.Verification {
	t.Helper()
	vs, err := dkim.VerifyWithOptions(bytes.NewReader(signed), &dkim.VerifyOptions{
		LookupTXT: func(domain string) ([]string, error) {
			if domain != name {
				return nil, fmt.Errorf("no TXT record for %s", domain)
			}
			return []string{txt}, nil
		},
	})
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	return vs
}

func TestDKIM(t *testing.T) {
	for _, kind := range []string{"rsa", "ed25519"} {
		t.Run(kind, func(t *testing.T) {
			keyPEM, txt, err := GenerateKey(kind)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(txt, "v=DKIM1; k="+kind+"; p=") {
				t.Errorf("TXT record %q", txt)
			}
			s, err := NewSigner("blog.example.org", "herald", keyPEM)
			if err != nil {
				t.Fatal(err)
			}
			if s.DNSRecord() != txt || s.DNSName() != "herald._domainkey.blog.example.org" {
				t.Errorf("DNSRecord %q, DNSName %q", s.DNSRecord(), s.DNSName())
			}
			m, err := Compose(sampleEmail())
			if err != nil {
				t.Fatal(err)
			}
			signed, err := s.Sign(m.Raw)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.HasPrefix(signed, []byte("DKIM-Signature: ")) || !bytes.HasSuffix(signed, m.Raw) {
				t.Fatalf("signature not prepended:\n%s", signed[:300])
			}
			// go-msgauth folds its own field near 78; only 998 is a must.
			for _, line := range bytes.Split(signed, []byte("\r\n")) {
				if len(line) > 998 || bytes.ContainsAny(line, "\r\n") {
					t.Errorf("bad line %q", line)
				}
			}
			vs := verify(t, signed, s.DNSName(), txt)
			if len(vs) != 1 || vs[0].Err != nil {
				t.Fatalf("verification: %+v", vs[0])
			}
			if vs[0].Domain != "blog.example.org" {
				t.Errorf("domain %q", vs[0].Domain)
			}
			for _, h := range []string{"from", "to", "subject", "date", "message-id", "list-unsubscribe",
				"list-unsubscribe-post", "mime-version", "content-type"} {
				found := false
				for _, k := range vs[0].HeaderKeys {
					found = found || strings.EqualFold(k, h)
				}
				if !found {
					t.Errorf("%s not signed (h=%v)", h, vs[0].HeaderKeys)
				}
			}

			// Tampering breaks it: the subject, the one-click header, the body.
			for name, tamper := range map[string]func([]byte) []byte{
				"subject": func(b []byte) []byte {
					return bytes.Replace(b, []byte("Subject: My Blog"), []byte("Subject: Your Blog"), 1)
				},
				"list-unsubscribe": func(b []byte) []byte {
					return bytes.Replace(b, []byte("token=abc>"), []byte("token=evil>"), 1)
				},
				"body": func(b []byte) []byte { return bytes.Replace(b, []byte("First post"), []byte("Fake post"), 1) },
			} {
				vs := verify(t, tamper(bytes.Clone(signed)), s.DNSName(), txt)
				if vs[0].Err == nil {
					t.Errorf("tampered %s still verifies", name)
				}
			}
		})
	}
}

func TestNewSignerKeys(t *testing.T) {
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	_, edKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pkcs8 := func(k any) []byte {
		der, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	}
	pkcs1 := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(rsaKey)})

	for name, key := range map[string][]byte{"rsa pkcs1": pkcs1, "rsa pkcs8": pkcs8(rsaKey), "ed25519": pkcs8(edKey)} {
		s, err := NewSigner("example.org", "sel", key)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		m, _ := Compose(sampleEmail())
		signed, err := s.Sign(m.Raw)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if vs := verify(t, signed, s.DNSName(), s.DNSRecord()); vs[0].Err != nil {
			t.Errorf("%s: %v", name, vs[0].Err)
		}
	}
	bad := map[string][]byte{
		"rsa 1024":    pkcs8(small),
		"not pem":     []byte("hello"),
		"public key":  pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: []byte{1}}),
		"garbage der": pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte{1, 2, 3}}),
	}
	for name, key := range bad {
		if _, err := NewSigner("example.org", "sel", key); err == nil {
			t.Errorf("%s accepted", name)
		}
	}
	if _, err := NewSigner("", "sel", pkcs1); err == nil {
		t.Error("empty domain accepted")
	}
	if _, err := NewSigner("example.org", "a;b", pkcs1); err == nil {
		t.Error("bad selector accepted")
	}
	if _, _, err := GenerateKey("dsa"); err == nil {
		t.Error("GenerateKey(dsa) succeeded")
	}
}

func TestSigningTransport(t *testing.T) {
	key, txt, err := GenerateKey("ed25519")
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewSigner("blog.example.org", "herald", key)
	if err != nil {
		t.Fatal(err)
	}
	srv := smtptest.Start(t)
	tr := NewSigningTransport(newTransport(t, srv, nil), s)
	m := testMessage(t, "a@example.com")
	orig := bytes.Clone(m.Raw)
	if err := tr.Send(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(m.Raw, orig) {
		t.Error("Send changed the caller's message")
	}
	got := srv.WaitFor(t, 1, 5*time.Second)[0]
	if vs := verify(t, got.Data, s.DNSName(), txt); vs[0].Err != nil {
		t.Errorf("delivered message does not verify: %v", vs[0].Err)
	}
	if err := tr.Close(); err != nil {
		t.Fatal(err)
	}
}
