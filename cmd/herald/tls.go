package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/mail"
	"net/url"
	"path/filepath"
	"strings"
	"sync"

	"golang.org/x/crypto/acme"
	"golang.org/x/crypto/acme/autocert"
)

// defaultACMEDirectory is Let's Encrypt's production directory.
const defaultACMEDirectory = autocert.DefaultACMEDirectory

// hstsValue is sent on every HTTPS response once herald serves HTTPS
// itself: a year, without includeSubDomains (the blog's other hosts are
// not herald's to promise).
const hstsValue = "max-age=31536000"

// validateTLS checks the [server] keys of HTTPS by itself.
func (c *Config) validateTLS(bad func(key, format string, args ...any)) {
	switch c.Server.TLS {
	case "off", "":
		return
	case "auto":
	default:
		bad("server.tls", "want \"off\" or \"auto\", got %q", c.Server.TLS)
		return
	}
	if len(c.Server.TLSDomains) == 0 {
		bad("server.tls_domains", "must list the domain names to get certificates for when server.tls = \"auto\"")
	}
	domains := map[string]bool{}
	for _, d := range c.Server.TLSDomains {
		if !validDomain(d) {
			bad("server.tls_domains", "%q is not a domain name like \"news.example.org\" (no scheme, port or wildcard)", d)
		}
		domains[strings.ToLower(d)] = true
	}
	if u, err := url.Parse(c.Server.BaseURL); err == nil && u.Host != "" {
		if u.Scheme != "https" {
			bad("server.base_url", "must be https:// when server.tls = \"auto\", got %q", c.Server.BaseURL)
		} else if len(domains) > 0 && !domains[strings.ToLower(u.Hostname())] {
			bad("server.base_url", "host %q is not in server.tls_domains %q: herald would have no certificate for the address in its own links", u.Hostname(), c.Server.TLSDomains)
		}
	}
	for key, addr := range map[string]string{"server.https_listen": c.Server.HTTPSListen, "server.http_listen": c.Server.HTTPListen} {
		if _, _, err := net.SplitHostPort(addr); err != nil {
			bad(key, "want host:port or :port, got %q", addr)
		}
	}
	if u, err := url.Parse(c.Server.ACMEDirectory); err != nil || u.Scheme != "https" || u.Host == "" {
		bad("server.acme_directory", "want the https URL of an ACME directory, got %q", c.Server.ACMEDirectory)
	}
	if c.Server.ACMEEmail != "" {
		if a, err := mail.ParseAddress(c.Server.ACMEEmail); err != nil || a.Name != "" || !strings.Contains(a.Address, "@") {
			bad("server.acme_email", "want a plain address like \"you@example.org\", got %q", c.Server.ACMEEmail)
		}
	}
}

// validDomain accepts a DNS name a public CA will issue for: letters,
// digits and hyphens in dot-separated labels, at least two labels.
func validDomain(d string) bool {
	if len(d) > 253 || net.ParseIP(d) != nil {
		return false
	}
	labels := strings.Split(d, ".")
	if len(labels) < 2 {
		return false
	}
	for _, l := range labels {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
		for _, r := range l {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
				return false
			}
		}
	}
	return true
}

// certDir is where certificates and the ACME account key are kept: beside
// the database, so one volume or state directory holds all of herald.
func (c *Config) certDir() string {
	return filepath.Join(filepath.Dir(c.Store.Path), "certs")
}

// autoTLS serves herald over HTTPS with certificates from ACME
// (TLS-ALPN-01 on the HTTPS port, HTTP-01 on the HTTP port), and answers
// plain HTTP with a redirect to HTTPS.
type autoTLS struct {
	log       *slog.Logger
	m         *autocert.Manager
	domains   map[string]bool
	order     []string
	httpsPort string // ":8443" when base_url names a port, else ""
	httpsLn   net.Listener
	httpLn    net.Listener
	https     *http.Server
	http      *http.Server
	warm      sync.WaitGroup
}

// newAutoTLS opens both listeners; serving starts with start.
func newAutoTLS(cfg *Config, log *slog.Logger) (_ *autoTLS, err error) {
	t := &autoTLS{log: log, domains: map[string]bool{}}
	for _, d := range cfg.Server.TLSDomains {
		d = strings.ToLower(d)
		if !t.domains[d] {
			t.order = append(t.order, d)
		}
		t.domains[d] = true
	}
	if u, err := url.Parse(cfg.Server.BaseURL); err == nil && u.Port() != "" {
		t.httpsPort = ":" + u.Port()
	}
	t.m = &autocert.Manager{
		Prompt:     autocert.AcceptTOS,
		Cache:      loggingCache{autocert.DirCache(cfg.certDir()), log},
		HostPolicy: t.hostPolicy,
		Email:      cfg.Server.ACMEEmail,
		Client:     &acme.Client{DirectoryURL: cfg.Server.ACMEDirectory, UserAgent: "herald/" + version},
	}
	t.httpsLn, err = net.Listen("tcp", cfg.Server.HTTPSListen)
	if err != nil {
		return nil, fmt.Errorf("server.https_listen: %w", err)
	}
	t.httpLn, err = net.Listen("tcp", cfg.Server.HTTPListen)
	if err != nil {
		t.httpsLn.Close()
		return nil, fmt.Errorf("server.http_listen: %w", err)
	}
	return t, nil
}

// hostPolicy allows exactly server.tls_domains: a handshake for any other
// name gets no certificate and starts no ACME order.
func (t *autoTLS) hostPolicy(_ context.Context, host string) error {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h // HTTP-01 on a port other than 80 carries it in Host
	}
	if !t.domains[strings.ToLower(host)] {
		return fmt.Errorf("tls: %q is not in server.tls_domains", host)
	}
	return nil
}

// redirect sends plain HTTP to HTTPS on the same name, for the configured
// names only (no open redirect to any Host a client sends).
func (t *autoTLS) redirect(w http.ResponseWriter, r *http.Request) {
	host := r.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.ToLower(host)
	if !t.domains[host] {
		http.Error(w, "herald serves only "+strings.Join(t.order, ", ")+" here", http.StatusMisdirectedRequest)
		return
	}
	code := http.StatusMovedPermanently
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		code = http.StatusPermanentRedirect // keeps the method and body
	}
	http.Redirect(w, r, "https://"+host+t.httpsPort+r.URL.RequestURI(), code)
}

// start serves HTTPS (app behind HSTS) and the HTTP redirect, and asks for
// each domain's certificate now, so a first start says at once whether
// ACME works instead of at a reader's first visit.
func (t *autoTLS) start(newServer func(http.Handler) *http.Server, app http.Handler, errc chan<- error) {
	t.https = newServer(hsts(app))
	t.https.TLSConfig = t.m.TLSConfig()
	t.http = newServer(t.m.HTTPHandler(http.HandlerFunc(t.redirect)))
	go func() { errc <- t.https.ServeTLS(t.httpsLn, "", "") }()
	go func() { errc <- t.http.Serve(t.httpLn) }()
	for _, d := range t.order {
		t.warm.Go(func() {
			hello := &tls.ClientHelloInfo{
				ServerName:       d,
				SignatureSchemes: []tls.SignatureScheme{tls.ECDSAWithP256AndSHA256},
				SupportedCurves:  []tls.CurveID{tls.CurveP256},
				CipherSuites:     []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256},
			}
			if _, err := t.m.GetCertificate(hello); err != nil {
				t.log.Error("tls: no certificate yet; check that DNS points at this machine and ports 80 and 443 reach herald",
					"domain", d, "err", err)
			}
		})
	}
}

// shutdown stops both servers; the listeners close with them.
func (t *autoTLS) shutdown(ctx context.Context) {
	for _, s := range []*http.Server{t.https, t.http} {
		if s == nil {
			continue
		}
		if err := s.Shutdown(ctx); err != nil {
			t.log.Warn("tls: shutdown", "err", err)
		}
	}
	t.httpsLn.Close()
	t.httpLn.Close()
}

// hsts marks HTTPS responses so browsers never try plain HTTP again.
func hsts(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS != nil {
			w.Header().Set("Strict-Transport-Security", hstsValue)
		}
		h.ServeHTTP(w, r)
	})
}

// loggingCache logs each certificate autocert stores: the only outward
// sign that one was obtained or renewed.
type loggingCache struct {
	autocert.Cache
	log *slog.Logger
}

func (c loggingCache) Put(ctx context.Context, key string, data []byte) error {
	if err := c.Cache.Put(ctx, key, data); err != nil {
		c.log.Error("tls: cannot store certificate", "key", key, "err", err)
		return err
	}
	if strings.HasSuffix(key, "+token") {
		return nil // a TLS-ALPN-01 challenge certificate, not one to serve
	}
	if leaf, err := leafOf(data); err == nil {
		c.log.Info("tls: certificate stored", "domain", key, "not_after", leaf.NotAfter, "issuer", leaf.Issuer.CommonName)
	}
	return nil
}

// leafOf finds the first certificate in autocert's cache entry (a private
// key block, then the chain).
func leafOf(data []byte) (*x509.Certificate, error) {
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			return nil, errors.New("tls: no certificate in cache entry")
		}
		if b.Type == "CERTIFICATE" {
			return x509.ParseCertificate(b.Bytes)
		}
	}
}
