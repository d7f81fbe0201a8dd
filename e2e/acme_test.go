package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/letsencrypt/pebble/v2/ca"
	"github.com/letsencrypt/pebble/v2/db"
	"github.com/letsencrypt/pebble/v2/va"
	"github.com/letsencrypt/pebble/v2/wfe"
	"github.com/miekg/dns"
)

// These tests run Let's Encrypt's test CA, Pebble, in the test process on
// loopback, with a DNS server that answers 127.0.0.1 for every name: a
// herald with server.tls = "auto" gets, serves and renews real ACME
// certificates from it, validated over its own ports.

const acmeDomain = "news.example.org"

// pebbleCA is one Pebble: its directory, the root its certificates chain
// to, and what herald asked of it.
type pebbleCA struct {
	dir      string // ACME directory URL
	certFile string // PEM of the directory's own TLS certificate (for SSL_CERT_FILE)
	roots    *x509.CertPool
	db       *db.MemoryStore

	mu     sync.Mutex
	orders int
	chals  []string // challenge IDs herald asked Pebble to validate
	logbuf bytes.Buffer
}

func (p *pebbleCA) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.logbuf.Write(b)
}

func (p *pebbleCA) orderCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.orders
}

// validChallenges are the types of the challenges that passed.
func (p *pebbleCA) validChallenges() map[string]int {
	p.mu.Lock()
	ids := append([]string(nil), p.chals...)
	p.mu.Unlock()
	got := map[string]int{}
	for _, id := range ids {
		if c := p.db.GetChallengeByID(id); c != nil {
			c.RLock()
			if c.Status == "valid" {
				got[c.Type]++
			}
			c.RUnlock()
		}
	}
	return got
}

// startDNS answers every A query with 127.0.0.1 (and AAAA with nothing),
// over TCP as Pebble's validator asks.
func startDNS(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &dns.Server{Listener: ln, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		for _, q := range r.Question {
			if q.Qtype == dns.TypeA {
				m.Answer = append(m.Answer, &dns.A{
					Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60},
					A:   net.IPv4(127, 0, 0, 1),
				})
			}
		}
		_ = w.WriteMsg(m)
	})}
	go func() { _ = srv.ActivateAndServe() }()
	t.Cleanup(func() { _ = srv.Shutdown() })
	return ln.Addr().String()
}

// startPebble runs a Pebble whose validator reaches HTTP-01 on httpPort
// and TLS-ALPN-01 on tlsPort of 127.0.0.1, issuing certificates valid for
// validity seconds (0: Pebble's default, 90 days).
func startPebble(t *testing.T, httpPort, tlsPort int, validity uint64) *pebbleCA {
	t.Helper()
	// Full speed and no deliberate flakiness: every validation really
	// happens (no reused authorizations), without random sleeps or bad
	// nonces.
	t.Setenv("PEBBLE_VA_NOSLEEP", "1")
	t.Setenv("PEBBLE_WFE_NONCEREJECT", "0")
	t.Setenv("PEBBLE_AUTHZREUSE", "0")
	p := &pebbleCA{}
	logger := log.New(p, "pebble ", log.Lmicroseconds)
	p.db = db.NewMemoryStore()
	authority := ca.New(logger, p.db, "", "ecdsa", 0, 1, map[string]ca.Profile{
		"default": {Description: "test", ValidityPeriod: validity},
	})
	validator := va.New(logger, httpPort, tlsPort, false, startDNS(t), p.db)
	front := wfe.New(logger, p.db, validator, authority, []string{"pebble.letsencrypt.org"}, false, false, 0, 0)
	h := front.Handler()
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			p.mu.Lock()
			if r.URL.Path == "/order-plz" {
				p.orders++
			}
			if id, ok := strings.CutPrefix(r.URL.Path, "/chalZ/"); ok {
				p.chals = append(p.chals, id)
			}
			p.mu.Unlock()
		}
		h.ServeHTTP(w, r)
	}))
	srv.Config.ErrorLog = logger
	srv.StartTLS()
	t.Cleanup(srv.Close)
	t.Cleanup(func() {
		if t.Failed() {
			p.mu.Lock()
			t.Logf("pebble log:\n%s", p.logbuf.String())
			p.mu.Unlock()
		}
	})
	p.dir = srv.URL + "/dir"
	p.certFile = filepath.Join(t.TempDir(), "pebble-wfe.pem")
	if err := os.WriteFile(p.certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	p.roots = x509.NewCertPool()
	p.roots.AddCert(authority.GetRootCert(0).Cert)
	return p
}

// tlsInstance is a herald with server.tls = "auto" against p.
func tlsInstance(t *testing.T, p *pebbleCA, httpPort, httpsPort int) *instance {
	t.Helper()
	return newInstance(t, fmt.Sprintf(`[server]
listen = "{{LISTEN}}"
base_url = "https://%[1]s:%[2]d"
tls = "auto"
tls_domains = ["%[1]s"]
acme_directory = %[3]q
acme_email = "owner@example.org"
https_listen = "127.0.0.1:%[2]d"
http_listen = "127.0.0.1:%[4]d"
[store]
path = "{{DIR}}/herald.db"
[admin]
token = %[5]q
[digest]
daily = ""
weekly = ""
`, acmeDomain, httpsPort, p.dir, httpPort, adminToken),
		// herald trusts Pebble's directory the way any Go program trusts
		// a private CA: by SSL_CERT_FILE.
		"SSL_CERT_FILE="+p.certFile)
}

// httpsClient reaches any name on 127.0.0.1, trusting only Pebble's root.
func httpsClient(roots *x509.CertPool) *http.Client {
	dialer := &net.Dialer{Timeout: 10 * time.Second}
	return &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{
			DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				_, port, _ := net.SplitHostPort(addr)
				return dialer.DialContext(ctx, network, net.JoinHostPort("127.0.0.1", port))
			},
			TLSClientConfig:   &tls.Config{RootCAs: roots},
			DisableKeepAlives: true,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// servedCert does a TLS handshake for name on 127.0.0.1:port and returns
// the leaf, verified against roots (nil: not verified, to see what the
// server does with any name).
func servedCert(port int, name string, roots *x509.CertPool) (*x509.Certificate, error) {
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp",
		fmt.Sprintf("127.0.0.1:%d", port), &tls.Config{ServerName: name, RootCAs: roots, InsecureSkipVerify: roots == nil})
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0], nil
}

// waitCert waits until herald serves a certificate for acmeDomain that ok
// accepts.
func waitCert(t *testing.T, port int, roots *x509.CertPool, ok func(*x509.Certificate) bool, what string) *x509.Certificate {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	var lastErr error
	for time.Now().Before(deadline) {
		leaf, err := servedCert(port, acmeDomain, roots)
		if err == nil && ok(leaf) {
			return leaf
		}
		lastErr = err
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("%s: not within 90s (last error: %v)", what, lastErr)
	return nil
}

// TestHTTPSByACME: herald gets a certificate by TLS-ALPN-01 at start,
// serves HTTPS with HSTS, redirects plain HTTP to HTTPS for its own name
// only, refuses handshakes for names it was not configured for without
// asking the CA, and renews the certificate before it expires.
func TestHTTPSByACME(t *testing.T) {
	httpPort, httpsPort := freePort(t), freePort(t)
	// Certificates valid for 30 s: renewed a third of that before expiry.
	p := startPebble(t, httpPort, httpsPort, 30)
	in := tlsInstance(t, p, httpPort, httpsPort)
	proc := in.start()

	first := waitCert(t, httpsPort, p.roots, func(*x509.Certificate) bool { return true }, "a first certificate")
	if len(first.DNSNames) != 1 || first.DNSNames[0] != acmeDomain {
		t.Fatalf("certificate names %v, want [%s]", first.DNSNames, acmeDomain)
	}
	if got := p.validChallenges(); got["tls-alpn-01"] == 0 {
		t.Fatalf("no TLS-ALPN-01 validation passed: %v", got)
	}
	// herald caches the certificate just after it first serves it.
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		_, err := os.Stat(filepath.Join(in.dir, "certs", acmeDomain))
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("certificate not cached in the data directory: %v", err)
		}
	}

	c := httpsClient(p.roots)
	base := fmt.Sprintf("https://%s:%d", acmeDomain, httpsPort)
	res, err := c.Get(base + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 || res.Header.Get("Strict-Transport-Security") != "max-age=31536000" {
		t.Fatalf("GET /healthz over HTTPS: %d, HSTS %q", res.StatusCode, res.Header.Get("Strict-Transport-Security"))
	}
	res, err = c.Get(base + "/subscribe")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 {
		t.Fatalf("GET /subscribe over HTTPS: %d", res.StatusCode)
	}

	// Plain HTTP: a redirect to the same path on HTTPS, for our name only.
	plain := fmt.Sprintf("http://%s:%d", acmeDomain, httpPort)
	for _, tc := range []struct {
		method string
		code   int
	}{{"GET", 301}, {"HEAD", 301}, {"POST", 308}} {
		req, _ := http.NewRequest(tc.method, plain+"/preferences?token=abc", nil)
		res, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if want := base + "/preferences?token=abc"; res.StatusCode != tc.code || res.Header.Get("Location") != want {
			t.Fatalf("%s over plain HTTP: %d to %q, want %d to %q", tc.method, res.StatusCode, res.Header.Get("Location"), tc.code, want)
		}
		if res.Header.Get("Strict-Transport-Security") != "" {
			t.Fatalf("HSTS sent over plain HTTP")
		}
	}
	req, _ := http.NewRequest("GET", plain+"/", nil)
	req.Host = "evil.example.net"
	res, err = c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusMisdirectedRequest || res.Header.Get("Location") != "" {
		t.Fatalf("plain HTTP for another host: %d to %q, want 421 and no redirect", res.StatusCode, res.Header.Get("Location"))
	}

	// A handshake for a name herald was not configured for fails, and
	// herald does not ask the CA for it.
	orders := p.orderCount()
	for _, name := range []string{"other.example.org", "sub." + acmeDomain, ""} {
		if _, err := servedCert(httpsPort, name, nil); err == nil {
			t.Fatalf("handshake for %q succeeded", name)
		} else if !strings.Contains(err.Error(), "remote error") {
			t.Fatalf("handshake for %q: unexpected error %v", name, err)
		}
	}
	if n := p.orderCount(); n != orders {
		t.Fatalf("handshakes for unknown names started %d ACME orders", n-orders)
	}

	// Renewal: herald replaces the certificate before it expires, while
	// it keeps running, and caches the new one.
	renewed := waitCert(t, httpsPort, p.roots, func(c *x509.Certificate) bool {
		return c.SerialNumber.Cmp(first.SerialNumber) != 0
	}, "a renewed certificate")
	if !renewed.NotAfter.After(first.NotAfter) {
		t.Fatalf("renewed certificate expires %v, not after the first (%v)", renewed.NotAfter, first.NotAfter)
	}
	if !strings.Contains(proc.Output(), "https on 127.0.0.1:") || !strings.Contains(proc.Output(), "tls: certificate stored") {
		t.Fatalf("start-up summary or certificate log missing:\n%s", proc.Output())
	}
	proc.stop()
}

// TestHTTPSByACMEHTTP01: where TLS-ALPN-01 cannot reach herald, the
// certificate comes by HTTP-01 on the plain HTTP port; after a restart
// herald serves the cached certificate without asking the CA again.
func TestHTTPSByACMEHTTP01(t *testing.T) {
	httpPort, httpsPort, deadPort := freePort(t), freePort(t), freePort(t)
	p := startPebble(t, httpPort, deadPort, 0)
	in := tlsInstance(t, p, httpPort, httpsPort)
	proc := in.start()
	first := waitCert(t, httpsPort, p.roots, func(*x509.Certificate) bool { return true }, "a certificate by HTTP-01")
	got := p.validChallenges()
	if got["http-01"] == 0 || got["tls-alpn-01"] != 0 {
		t.Fatalf("validations passed: %v, want HTTP-01 only", got)
	}
	orders := p.orderCount()
	proc.stop()

	proc = in.start()
	again := waitCert(t, httpsPort, p.roots, func(*x509.Certificate) bool { return true }, "the certificate after a restart")
	if again.SerialNumber.Cmp(first.SerialNumber) != 0 {
		t.Fatalf("after a restart herald serves a new certificate, not the cached one")
	}
	if n := p.orderCount(); n != orders {
		t.Fatalf("a restart started %d new ACME orders", n-orders)
	}
	proc.stop()
}
