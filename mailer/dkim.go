package mailer

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"

	"github.com/emersion/go-msgauth/dkim"

	"github.com/herald-dev/herald"
)

// MinRSABits is the smallest RSA key NewSigner accepts (RFC 8301 asks
// signers for 2048).
const MinRSABits = 2048

// signedHeaders are the fields every signature covers. Listed fields that a
// message lacks are signed as absent, so nobody can add them later.
func signedHeaders() []string {
	return []string{
		"From", "To", "Subject", "Date", "Message-ID",
		"List-Unsubscribe", "List-Unsubscribe-Post", "MIME-Version", "Content-Type",
	}
}

// Signer adds a DKIM-Signature to composed messages. It is safe for
// concurrent use.
type Signer struct {
	domain, selector string
	key              crypto.Signer
}

// NewSigner loads a PEM private key (RSA of at least 2048 bits, or
// Ed25519; PKCS#1 or PKCS#8) for signing as domain with selector.
func NewSigner(domain, selector string, keyPEM []byte) (*Signer, error) {
	if err := checkDNSLabel("domain", domain); err != nil {
		return nil, err
	}
	if err := checkDNSLabel("selector", selector); err != nil {
		return nil, err
	}
	key, err := parseKey(keyPEM)
	if err != nil {
		return nil, err
	}
	return &Signer{domain: strings.ToLower(domain), selector: selector, key: key}, nil
}

func checkDNSLabel(what, s string) error {
	if s == "" {
		return fmt.Errorf("mailer: dkim %s is empty", what)
	}
	for _, r := range s {
		if !(r == '-' || r == '.' || r == '_' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
			return fmt.Errorf("mailer: dkim %s %q has a character DNS does not allow", what, s)
		}
	}
	return nil
}

func parseKey(keyPEM []byte) (crypto.Signer, error) {
	block, _ := pem.Decode(keyPEM)
	if block == nil {
		return nil, errors.New("mailer: dkim key: no PEM block found")
	}
	var key any
	var err error
	switch block.Type {
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	default:
		return nil, fmt.Errorf("mailer: dkim key: unsupported PEM block %q (want PRIVATE KEY or RSA PRIVATE KEY)", block.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("mailer: dkim key: %w", err)
	}
	switch k := key.(type) {
	case *rsa.PrivateKey:
		if bits := k.N.BitLen(); bits < MinRSABits {
			return nil, fmt.Errorf("mailer: dkim key: RSA key has %d bits, want at least %d", bits, MinRSABits)
		}
		return k, nil
	case ed25519.PrivateKey:
		return k, nil
	default:
		return nil, fmt.Errorf("mailer: dkim key: unsupported key type %T (want RSA or Ed25519)", key)
	}
}

// Domain is the signing domain (d=).
func (s *Signer) Domain() string { return s.domain }

// Selector is the key selector (s=).
func (s *Signer) Selector() string { return s.selector }

// DNSName is where the public key is published: selector._domainkey.domain.
func (s *Signer) DNSName() string { return s.selector + "._domainkey." + s.domain }

// DNSRecord is the TXT record value for the signer's public key.
func (s *Signer) DNSRecord() string {
	txt, _ := dnsRecord(s.key.Public())
	return txt
}

// Sign returns raw with a DKIM-Signature field in front (relaxed/relaxed,
// SHA-256).
func (s *Signer) Sign(raw []byte) ([]byte, error) {
	var out bytes.Buffer
	out.Grow(len(raw) + 512)
	err := dkim.Sign(&out, bytes.NewReader(raw), &dkim.SignOptions{
		Domain:                 s.domain,
		Selector:               s.selector,
		Signer:                 s.key,
		Hash:                   crypto.SHA256,
		HeaderCanonicalization: dkim.CanonicalizationRelaxed,
		BodyCanonicalization:   dkim.CanonicalizationRelaxed,
		HeaderKeys:             signedHeaders(),
	})
	if err != nil {
		return nil, fmt.Errorf("mailer: dkim sign: %w", err)
	}
	return out.Bytes(), nil
}

// GenerateKey makes a new DKIM key, kind "rsa" (2048 bits) or "ed25519",
// and returns it as PKCS#8 PEM with the DNS TXT record value to publish.
// The RSA record is longer than 255 bytes: DNS zone files must split it
// into several quoted strings.
func GenerateKey(kind string) (pemBytes []byte, dnsTXT string, err error) {
	var key crypto.Signer
	switch strings.ToLower(kind) {
	case "rsa", "":
		key, err = rsa.GenerateKey(rand.Reader, MinRSABits)
	case "ed25519":
		_, key, err = ed25519.GenerateKey(rand.Reader)
	default:
		return nil, "", fmt.Errorf("mailer: unknown dkim key kind %q (want rsa or ed25519)", kind)
	}
	if err != nil {
		return nil, "", fmt.Errorf("mailer: generate dkim key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, "", fmt.Errorf("mailer: encode dkim key: %w", err)
	}
	txt, err := dnsRecord(key.Public())
	if err != nil {
		return nil, "", err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), txt, nil
}

func dnsRecord(pub crypto.PublicKey) (string, error) {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		der, err := x509.MarshalPKIXPublicKey(k)
		if err != nil {
			return "", fmt.Errorf("mailer: encode dkim public key: %w", err)
		}
		return "v=DKIM1; k=rsa; p=" + base64.StdEncoding.EncodeToString(der), nil
	case ed25519.PublicKey:
		// RFC 8463: the raw 32-byte key, not SubjectPublicKeyInfo.
		return "v=DKIM1; k=ed25519; p=" + base64.StdEncoding.EncodeToString(k), nil
	}
	return "", fmt.Errorf("mailer: unsupported dkim public key %T", pub)
}

// SigningTransport signs each message just before a wrapped transport
// sends it, so the outbox keeps unsigned messages and a key rotation
// applies to everything still queued.
type SigningTransport struct {
	herald.Transport
	signer *Signer
}

// NewSigningTransport wraps tr so every message is DKIM-signed by s.
func NewSigningTransport(tr herald.Transport, s *Signer) *SigningTransport {
	return &SigningTransport{Transport: tr, signer: s}
}

// Send signs m and hands it on. A signing failure is temporary: it is our
// fault, not the reader's.
func (t *SigningTransport) Send(ctx context.Context, m *herald.Message) error {
	raw, err := t.signer.Sign(m.Raw)
	if err != nil {
		return &herald.SendError{Temporary: true, Err: err}
	}
	signed := *m
	signed.Raw = raw
	return t.Transport.Send(ctx, &signed)
}
