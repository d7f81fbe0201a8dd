package main

import (
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/herald-dev/herald"
	"github.com/herald-dev/herald/relay"
)

func TestRelayConfig(t *testing.T) {
	// [smtp] alone is one relay.
	cfg, err := LoadConfig(writeConfig(t, "[mail]\ntransport = \"smtp\"\n[smtp]\nhost = \"mail.example.org\"\nconnections = 3\n"), noenv)
	if err != nil {
		t.Fatal(err)
	}
	rs := cfg.relayList()
	if len(rs) != 1 || rs[0].Host != "mail.example.org" || rs[0].Weight != 1 || cfg.sendWorkers() != 3 {
		t.Fatalf("[smtp] as a relay: %+v, workers %d", rs, cfg.sendWorkers())
	}
	tr, routes, err := newTransport(context.Background(), cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	if _, ok := tr.(*relay.Set); !ok || len(routes.Routes()) != 1 {
		t.Fatalf("transport %T, routes %+v", tr, routes.Routes())
	}

	env := map[string]string{"RELAY_B_PW": "from-env"}
	cfg, err = LoadConfig(writeConfig(t, `[mail]
transport = "smtp"
[[relays]]
host = "a.example.net"
weight = 3
[[relays]]
name = "backup"
host = "b.example.net"
port = 2525
connections = 2
password_env = "RELAY_B_PW"
`), func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	rs = cfg.relayList()
	if len(rs) != 2 || rs[0].Port != 587 || rs[0].Connections != 4 || rs[0].Weight != 3 || rs[1].Password != "from-env" || relayName(rs[1]) != "backup" {
		t.Fatalf("relays: %+v", rs)
	}
	if cfg.sendWorkers() != 6 {
		t.Fatalf("workers %d, want 4+2", cfg.sendWorkers())
	}
	if m := cfg.Masked(); m.Relays[1].Password != "********" || cfg.Relays[1].Password != "from-env" {
		t.Fatal("check-config would print a relay password")
	}
	_, routes, err = newTransport(context.Background(), cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if r := routes.Routes(); r[0].Name != "smtp:a.example.net:587" || r[1].Name != "backup" || r[0].Weight != 3 {
		t.Fatalf("routes %+v", r)
	}
}

func TestDeliveryConfigErrors(t *testing.T) {
	cases := map[string]string{
		"[mail]\ntransport = \"smtp\"\n[[relays]]\nhost = \"a\"\nweight = -1\n":              "relays[0].weight",
		"[mail]\ntransport = \"smtp\"\n[[relays]]\nhost = \"\"\n":                            "relays[0].host",
		"[mail]\ntransport = \"smtp\"\n[[relays]]\nhost = \"a\"\ntls = \"ssl\"\n":            "relays[0].tls",
		"[mail]\ntransport = \"smtp\"\n[[relays]]\nhost = \"a\"\n[[relays]]\nhost = \"a\"\n": "listed twice",
		"[mail]\ntransport = \"smtp\"\n[[relays]]\nhost = \"a\"\nhots = \"b\"\n":             "unknown key",
		"[mail]\ntransport = \"ses\"\n":                                                      "ses.region",
		"[mail]\ntransport = \"mailgun\"\n":                                                  "mail.transport",
		"[ses]\nendpoint = \"localhost:8005\"\n":                                             "ses.endpoint",
		"[mail]\nrelay_backoff = \"0s\"\n":                                                   "mail.relay_backoff",
		"[bounces]\nmailbox = \"pop3://u@h/INBOX\"\n":                                        "bounces.mailbox",
		"[bounces]\nmailbox = \"imaps://u:secret@h/INBOX\"\n":                                "HERALD_BOUNCE_PASSWORD",
		"[bounces]\nreturn_path = \"not an address\"\n":                                      "bounces.return_path",
		"[bounces]\nsns_topics = [\"herald-bounces\"]\n":                                     "bounces.sns_topics",
		"[bounces]\npostmark_user = \"pm\"\n":                                                "bounces.postmark_user",
		"[bounces]\nsendgrid_public_key = \"bm90IGEga2V5\"\n":                                "bounces.sendgrid_public_key",
	}
	for body, want := range cases {
		_, err := LoadConfig(writeConfig(t, body), noenv)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want an error naming %s", body, err, want)
		}
	}
}

func TestSESConfig(t *testing.T) {
	cfg, err := LoadConfig(writeConfig(t, "[mail]\ntransport = \"ses\"\n[ses]\nregion = \"eu-west-1\"\nrate = 7\n"), noenv)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.sendWorkers() != 8 || !strings.Contains(cfg.mailSummary(), "Amazon SES in eu-west-1") {
		t.Fatalf("workers %d, summary %q", cfg.sendWorkers(), cfg.mailSummary())
	}
	tr, routes, err := newTransport(context.Background(), cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	if r := routes.Routes(); len(r) != 1 || r[0].Name != "ses:eu-west-1" || r[0].Rate != 7 || r[0].State != herald.RouteUp {
		t.Fatalf("routes %+v", r)
	}
}
