package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/herald-dev/herald"
	"github.com/herald-dev/herald/mailer"
	"github.com/herald-dev/herald/relay"
	"github.com/herald-dev/herald/ses"
)

// RelayConfig is one [[relays]] entry: an SMTP relay of the relay set.
// Zero values take [smtp]'s defaults; weight defaults to 1.
type RelayConfig struct {
	Name     string `toml:"name"`
	Host     string `toml:"host"`
	Port     int    `toml:"port"`
	Username string `toml:"username"`
	Password string `toml:"password"`
	// PasswordEnv names an environment variable holding the password.
	PasswordEnv string   `toml:"password_env"`
	TLS         string   `toml:"tls"`
	Connections int      `toml:"connections"`
	Rate        float64  `toml:"rate"`
	Weight      int      `toml:"weight"`
	Timeout     Duration `toml:"timeout"`
}

// SESConfig is [ses]: the Amazon SES v2 API (mail.transport = "ses").
type SESConfig struct {
	Region           string `toml:"region"`
	Endpoint         string `toml:"endpoint"`
	ConfigurationSet string `toml:"configuration_set"`
	// Rate caps messages per second; 0 = the account's MaxSendRate.
	Rate float64 `toml:"rate"`
	// Connections is how many messages are sent at once.
	Connections int `toml:"connections"`
}

// BouncesConfig is [bounces]: the bounce mailbox, VERP and the secrets
// of the providers' webhooks.
type BouncesConfig struct {
	Mailbox      string   `toml:"mailbox"`
	Password     string   `toml:"password"`
	PollInterval Duration `toml:"poll_interval"`
	MoveTo       string   `toml:"move_to"`
	ReturnPath   string   `toml:"return_path"`
	SNSTopics    []string `toml:"sns_topics"`
	SNSCertHost  string   `toml:"sns_cert_host"`
	PostmarkUser string   `toml:"postmark_user"`
	PostmarkPass string   `toml:"postmark_password"`
	MailgunKey   string   `toml:"mailgun_signing_key"`
	SendGridKey  string   `toml:"sendgrid_public_key"`
}

const defaultRelayWeight = 1

// relayList is the relay set: [[relays]], or [smtp] alone as one relay.
// Each entry has its defaults filled in.
func (c *Config) relayList() []RelayConfig {
	if len(c.Relays) == 0 {
		s := c.SMTP
		return []RelayConfig{{Host: s.Host, Port: s.Port, Username: s.Username, Password: s.Password, TLS: s.TLS,
			Connections: s.Connections, Rate: s.Rate, Weight: defaultRelayWeight, Timeout: s.Timeout}}
	}
	out := make([]RelayConfig, len(c.Relays))
	for i, r := range c.Relays {
		if r.TLS == "" {
			r.TLS = "starttls"
		}
		if r.Port == 0 {
			r.Port = 587
			if r.TLS == "tls" {
				r.Port = 465
			}
		}
		if r.Connections == 0 {
			r.Connections = c.SMTP.Connections
		}
		if r.Weight == 0 {
			r.Weight = defaultRelayWeight
		}
		if r.Timeout.Duration == 0 {
			r.Timeout = c.SMTP.Timeout
		}
		out[i] = r
	}
	return out
}

// relayPasswords takes each relay's password_env from the environment.
func (c *Config) relayPasswords(getenv func(string) string) {
	for i, r := range c.Relays {
		if r.PasswordEnv != "" {
			if v := getenv(r.PasswordEnv); v != "" {
				c.Relays[i].Password = v
			}
		}
	}
}

// relayName is how stats and logs name a relay.
func relayName(r RelayConfig) string {
	if r.Name != "" {
		return r.Name
	}
	return "smtp:" + net.JoinHostPort(r.Host, strconv.Itoa(r.Port))
}

// sendWorkers is how many messages go out at once: the transport's
// connections.
func (c *Config) sendWorkers() int {
	switch c.Mail.Transport {
	case "smtp":
		n := 0
		for _, r := range c.relayList() {
			n += r.Connections
		}
		return max(1, n)
	case "ses":
		return c.SES.Connections
	}
	return c.SMTP.Connections
}

// validateDelivery checks [[relays]], [ses] and [bounces].
func (c *Config) validateDelivery(bad func(key, format string, args ...any)) {
	if c.Mail.RelayFailures < 1 {
		bad("mail.relay_failures", "must be at least 1, got %d", c.Mail.RelayFailures)
	}
	if c.Mail.RelayBackoff.Duration < time.Second || c.Mail.RelayBackoff.Duration > time.Hour {
		bad("mail.relay_backoff", "must be between 1s and 1h, got %s", c.Mail.RelayBackoff.Duration)
	}
	names := map[string]bool{}
	for i, r := range c.relayList() {
		if len(c.Relays) == 0 {
			break // [smtp] is checked on its own
		}
		key := fmt.Sprintf("relays[%d]", i)
		if strings.TrimSpace(r.Host) == "" {
			bad(key+".host", "must not be empty")
		}
		if r.Port < 1 || r.Port > 65535 {
			bad(key+".port", "must be 1-65535, got %d", r.Port)
		}
		switch r.TLS {
		case "starttls", "tls", "none":
		default:
			bad(key+".tls", "want starttls, tls or none, got %q", r.TLS)
		}
		if r.Connections < 1 || r.Connections > 100 {
			bad(key+".connections", "must be between 1 and 100, got %d", r.Connections)
		}
		if r.Rate < 0 {
			bad(key+".rate", "must not be negative, got %g", r.Rate)
		}
		if r.Weight < 1 || r.Weight > 1000 {
			bad(key+".weight", "must be between 1 and 1000, got %d", r.Weight)
		}
		if r.Timeout.Duration <= 0 {
			bad(key+".timeout", "must be positive, got %s", r.Timeout.Duration)
		}
		if n := relayName(r); names[n] {
			bad(key, "%s is listed twice", n)
		} else {
			names[n] = true
		}
	}
	if c.Mail.Transport == "ses" {
		if strings.TrimSpace(c.SES.Region) == "" {
			bad("ses.region", "must not be empty when mail.transport = \"ses\"")
		}
	}
	if c.SES.Endpoint != "" {
		if u, err := url.Parse(c.SES.Endpoint); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad("ses.endpoint", "want an absolute http(s) URL, got %q", c.SES.Endpoint)
		}
	}
	if c.SES.Rate < 0 {
		bad("ses.rate", "must not be negative, got %g", c.SES.Rate)
	}
	if c.SES.Connections < 1 || c.SES.Connections > 100 {
		bad("ses.connections", "must be between 1 and 100, got %d", c.SES.Connections)
	}
	c.validateBounces(bad)
}

// newTransport builds mail.transport: the relay set, SES or files. The
// RouteReporter (nil for files) feeds stats, metrics and the dashboard.
func newTransport(ctx context.Context, cfg *Config, log *slog.Logger) (herald.Transport, herald.RouteReporter, error) {
	switch cfg.Mail.Transport {
	case "smtp":
		var relays []relay.Relay
		for _, r := range cfg.relayList() {
			relays = append(relays, relay.Relay{
				Name: relayName(r), Weight: r.Weight, Connections: r.Connections, Rate: r.Rate,
				Transport: mailer.NewSMTPTransport(mailer.SMTPConfig{
					Host: r.Host, Port: r.Port, Username: r.Username, Password: r.Password,
					TLS: r.TLS, Connections: r.Connections, Rate: r.Rate, Timeout: r.Timeout.Duration,
					HelloName: hostOf(cfg.Server.BaseURL),
				}, log),
			})
		}
		set, err := relay.New(relays, relay.Options{
			Logger: log, FailLimit: cfg.Mail.RelayFailures, Backoff: cfg.Mail.RelayBackoff.Duration,
		})
		if err != nil {
			return nil, nil, err
		}
		return set, set, nil
	case "ses":
		t, err := ses.New(ctx, ses.Options{
			Region: cfg.SES.Region, Endpoint: cfg.SES.Endpoint, ConfigurationSet: cfg.SES.ConfigurationSet,
			Rate: cfg.SES.Rate, Logger: log,
		})
		if err != nil {
			return nil, nil, err
		}
		return t, t, nil
	}
	t, err := mailer.NewFileTransport(cfg.Mail.OutboxDir)
	if err != nil {
		return nil, nil, err
	}
	return t, nil, nil
}

// mailSummary is the start-up line about where mail goes.
func (c *Config) mailSummary() string {
	switch c.Mail.Transport {
	case "smtp":
		rs := c.relayList()
		if len(rs) == 1 {
			return fmt.Sprintf("SMTP to %s:%d (%s) from %s", rs[0].Host, rs[0].Port, rs[0].TLS, c.Mail.From)
		}
		var names []string
		for _, r := range rs {
			names = append(names, fmt.Sprintf("%s (weight %d)", relayName(r), r.Weight))
		}
		return fmt.Sprintf("SMTP over %d relays: %s, from %s", len(rs), strings.Join(names, ", "), c.Mail.From)
	case "ses":
		return fmt.Sprintf("Amazon SES in %s from %s", c.SES.Region, c.Mail.From)
	}
	return "files in " + c.Mail.OutboxDir
}
