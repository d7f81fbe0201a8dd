package main

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

const tlsOK = `[server]
base_url = "https://news.example.org"
tls = "auto"
tls_domains = ["news.example.org", "www.news.example.org"]
acme_email = "owner@example.org"
`

func TestTLSConfig(t *testing.T) {
	cfg, err := LoadConfig(writeConfig(t, tlsOK), noenv)
	if err != nil {
		t.Fatalf("a good TLS config: %v", err)
	}
	if cfg.Server.HTTPSListen != ":443" || cfg.Server.HTTPListen != ":80" ||
		cfg.Server.ACMEDirectory != "https://acme-v02.api.letsencrypt.org/directory" {
		t.Fatalf("TLS defaults: %+v", cfg.Server)
	}
	for _, tc := range []struct {
		name, from, to, want string
	}{
		{"unknown mode", `tls = "auto"`, `tls = "on"`, "server.tls"},
		{"no domains", `tls_domains = ["news.example.org", "www.news.example.org"]`, `tls_domains = []`, "server.tls_domains"},
		{"url as domain", `"www.news.example.org"`, `"https://www.news.example.org"`, "server.tls_domains"},
		{"domain with port", `"www.news.example.org"`, `"www.news.example.org:443"`, "server.tls_domains"},
		{"wildcard", `"www.news.example.org"`, `"*.news.example.org"`, "server.tls_domains"},
		{"ip", `"www.news.example.org"`, `"192.0.2.1"`, "server.tls_domains"},
		{"single label", `"www.news.example.org"`, `"localhost"`, "server.tls_domains"},
		{"http base_url", `base_url = "https://`, `base_url = "http://`, "server.base_url"},
		{"base_url not covered", `base_url = "https://news.example.org"`, `base_url = "https://blog.example.org"`, "not in server.tls_domains"},
		{"bad email", `acme_email = "owner@example.org"`, `acme_email = "Owner <owner@example.org>"`, "server.acme_email"},
		{"http directory", `acme_email`, "acme_directory = \"http://ca.example.org/dir\"\nacme_email", "server.acme_directory"},
		{"bad https_listen", `acme_email`, "https_listen = \"443\"\nacme_email", "server.https_listen"},
		{"bad http_listen", `acme_email`, "http_listen = \"eighty\"\nacme_email", "server.http_listen"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := LoadConfig(writeConfig(t, strings.Replace(tlsOK, tc.from, tc.to, 1)), noenv)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one about %s", err, tc.want)
			}
		})
	}
	// The base_url check is case-blind, as DNS is.
	if _, err := LoadConfig(writeConfig(t, strings.Replace(tlsOK, "https://news.", "https://NEWS.", 1)), noenv); err != nil {
		t.Fatal(err)
	}
}

// The plain-HTTP side of tls = "auto", as a handler: a redirect for the
// configured names keeps the path and the base_url's port, any other Host
// is refused.
func TestTLSRedirect(t *testing.T) {
	cfg, err := LoadConfig(writeConfig(t, strings.Replace(tlsOK, "https://news.example.org", "https://news.example.org:8443", 1)), noenv)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Server.HTTPSListen, cfg.Server.HTTPListen = "127.0.0.1:0", "127.0.0.1:0"
	cfg.Store.Path = t.TempDir() + "/herald.db"
	at, err := newAutoTLS(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer at.httpsLn.Close()
	defer at.httpLn.Close()
	for _, tc := range []struct {
		method, host, target string
		code                 int
		loc                  string
	}{
		{"GET", "news.example.org", "/confirm?token=x", 301, "https://news.example.org:8443/confirm?token=x"},
		{"GET", "WWW.news.example.org:80", "/", 301, "https://www.news.example.org:8443/"},
		{"POST", "news.example.org", "/subscribe", 308, "https://news.example.org:8443/subscribe"},
		{"GET", "evil.example.net", "/", 421, ""},
		{"GET", "news.example.org.evil.net", "/", 421, ""},
	} {
		req := httptest.NewRequest(tc.method, "http://"+tc.host+tc.target, nil)
		rec := httptest.NewRecorder()
		at.redirect(rec, req)
		if rec.Code != tc.code || rec.Header().Get("Location") != tc.loc {
			t.Errorf("%s %s%s: %d %q, want %d %q", tc.method, tc.host, tc.target, rec.Code, rec.Header().Get("Location"), tc.code, tc.loc)
		}
	}
	for host, ok := range map[string]bool{"news.example.org": true, "news.example.org:5002": true, "NEWS.example.org": true, "example.org": false, "": false} {
		if err := at.hostPolicy(t.Context(), host); (err == nil) != ok {
			t.Errorf("hostPolicy(%q) = %v", host, err)
		}
	}
	rec := httptest.NewRecorder()
	hsts(http.NotFoundHandler()).ServeHTTP(rec, httptest.NewRequest("GET", "http://news.example.org/", nil))
	if rec.Header().Get("Strict-Transport-Security") != "" {
		t.Error("HSTS on a plain HTTP request")
	}
}
