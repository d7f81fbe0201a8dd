package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/mail"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/herald-dev/herald"
	"github.com/herald-dev/herald/digest"
	"github.com/herald-dev/herald/templates"
)

// Duration is a Go duration in TOML ("15m", "72h").
type Duration struct{ time.Duration }

// UnmarshalText parses a Go duration; "" is zero (a key turned off).
func (d *Duration) UnmarshalText(b []byte) error {
	if len(b) == 0 {
		d.Duration = 0
		return nil
	}
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("not a duration (want e.g. \"15m\", \"72h\"): %q", string(b))
	}
	d.Duration = v
	return nil
}

// MarshalText prints the duration back ("" for zero, as it is written).
func (d Duration) MarshalText() ([]byte, error) {
	if d.Duration == 0 {
		return []byte{}, nil
	}
	return []byte(d.String()), nil
}

// Config is every key of the config file (config.example.toml documents
// each, with its default).
type Config struct {
	Server   ServerConfig   `toml:"server"`
	Store    StoreConfig    `toml:"store"`
	Site     SiteConfig     `toml:"site"`
	Feeds    []FeedConfig   `toml:"feeds"`
	Digest   DigestConfig   `toml:"digest"`
	Mail     MailConfig     `toml:"mail"`
	SMTP     SMTPConfig     `toml:"smtp"`
	Relays   []RelayConfig  `toml:"relays"`
	SES      SESConfig      `toml:"ses"`
	Bounces  BouncesConfig  `toml:"bounces"`
	Admin    AdminConfig    `toml:"admin"`
	DKIM     DKIMConfig     `toml:"dkim"`
	Archive  ArchiveConfig  `toml:"archive"`
	Log      LogConfig      `toml:"log"`
	Security SecurityConfig `toml:"security"`

	// File is where the config came from ("" = built-in defaults).
	File string `toml:"-"`
}

type ServerConfig struct {
	Listen         string   `toml:"listen"`
	BaseURL        string   `toml:"base_url"`
	TrustedProxies []string `toml:"trusted_proxies"`
	// HTTPS by itself (tls.go): "off" or "auto" (ACME).
	TLS           string   `toml:"tls"`
	TLSDomains    []string `toml:"tls_domains"`
	ACMEDirectory string   `toml:"acme_directory"`
	ACMEEmail     string   `toml:"acme_email"`
	HTTPSListen   string   `toml:"https_listen"`
	HTTPListen    string   `toml:"http_listen"`
}

type StoreConfig struct {
	Path string `toml:"path"`
	// Scheduled backups (backup.go); BackupEvery 0 = off.
	BackupDir   string   `toml:"backup_dir"`
	BackupEvery Duration `toml:"backup_every"`
	BackupKeep  int      `toml:"backup_keep"`
}

type SiteConfig struct {
	Name string `toml:"name"`
	URL  string `toml:"url"`
	// The blog's look (templates.Site): a logo, the colour of links and
	// buttons, the owner's footer text, the default language.
	LogoURL     string `toml:"logo_url"`
	AccentColor string `toml:"accent_color"`
	Footer      string `toml:"footer"`
	Language    string `toml:"language"`
}

type FeedConfig struct {
	URL          string   `toml:"url"`
	PollInterval Duration `toml:"poll_interval"`
	MaxAge       Duration `toml:"max_age"`
}

type DigestConfig struct {
	Timezone         string `toml:"timezone"`
	Daily            string `toml:"daily"`
	Weekly           string `toml:"weekly"`
	DefaultFrequency string `toml:"default_frequency"`
	MaxPosts         int    `toml:"max_posts"`
	// Content is what each post carries: "summary" or "full".
	Content string `toml:"content"`
	// TemplatesDir holds templates that override the built-in ones.
	TemplatesDir string `toml:"templates_dir"`
	// Topics are offered to readers and matched against post categories;
	// LocalTime runs daily and weekly in each reader's own time zone.
	Topics    []string `toml:"topics"`
	LocalTime bool     `toml:"local_time"`
}

type MailConfig struct {
	From        string `toml:"from"`
	ReplyTo     string `toml:"reply_to"`
	Transport   string `toml:"transport"`
	OutboxDir   string `toml:"outbox_dir"`
	Welcome     bool   `toml:"welcome"`
	BounceLimit int    `toml:"bounce_limit"`
	// RetryBackoff is the first wait after a temporary failure; it doubles
	// up to an hour (herald extension).
	RetryBackoff Duration `toml:"retry_backoff"`
	// The relay set (delivery.go): failures in a row that set a relay
	// aside, and how long it is first set aside.
	RelayFailures int      `toml:"relay_failures"`
	RelayBackoff  Duration `toml:"relay_backoff"`
}

type SMTPConfig struct {
	Host        string   `toml:"host"`
	Port        int      `toml:"port"`
	Username    string   `toml:"username"`
	Password    string   `toml:"password"`
	TLS         string   `toml:"tls"`
	Connections int      `toml:"connections"`
	Rate        float64  `toml:"rate"`
	Timeout     Duration `toml:"timeout"`
}

type AdminConfig struct {
	Token string `toml:"token"`
}

type DKIMConfig struct {
	Domain     string `toml:"domain"`
	Selector   string `toml:"selector"`
	PrivateKey string `toml:"private_key"`
}

type ArchiveConfig struct {
	Enabled bool `toml:"enabled"`
}

type LogConfig struct {
	Format string `toml:"format"`
	Level  string `toml:"level"`
}

type SecurityConfig struct {
	Secret                  string   `toml:"secret"`
	ConfirmTTL              Duration `toml:"confirm_ttl"`
	SubscribePerIP          string   `toml:"subscribe_per_ip"`
	ConfirmationsPerAddress string   `toml:"confirmations_per_address"`
	ConfirmationsPerHour    int      `toml:"confirmations_per_hour"`
	// IPv6Prefix is how many leading bits of an IPv6 address make one
	// visitor for the per-visitor limits.
	IPv6Prefix int `toml:"ipv6_prefix"`
	// Challenge: "off", "auto" (under a flood) or "always" ask sign-ups
	// for a proof of work.
	Challenge string `toml:"challenge"`
}

// DefaultConfig is what herald runs on with no config file: everything
// local, mail written to files, so a first `herald serve` just works.
func DefaultConfig() *Config {
	return &Config{
		Server: ServerConfig{Listen: "127.0.0.1:8080", BaseURL: "http://localhost:8080",
			TLS: "off", ACMEDirectory: defaultACMEDirectory, HTTPSListen: ":443", HTTPListen: ":80"},
		Store:  StoreConfig{Path: "data/herald.db", BackupKeep: 7},
		Site:   SiteConfig{Name: "My Blog", URL: "", AccentColor: templates.DefaultAccent, Language: "en"},
		Digest: DigestConfig{Timezone: "UTC", Daily: "0 7 * * *", Weekly: "0 7 * * MON", DefaultFrequency: "daily", MaxPosts: 20, Content: "summary"},
		Mail: MailConfig{From: "herald <herald@localhost.localdomain>", Transport: "file", OutboxDir: "data/outbox", Welcome: true, BounceLimit: 3, RetryBackoff: Duration{30 * time.Second},
			RelayFailures: 3, RelayBackoff: Duration{30 * time.Second}},
		SES:     SESConfig{Connections: 8},
		Bounces: BouncesConfig{PollInterval: Duration{5 * time.Minute}, MoveTo: "herald-processed"},
		SMTP:    SMTPConfig{Host: "localhost", Port: 587, TLS: "starttls", Connections: 4, Timeout: Duration{30 * time.Second}},
		DKIM:    DKIMConfig{Selector: "herald"},
		Archive: ArchiveConfig{Enabled: true},
		Log:     LogConfig{Format: "text", Level: "info"},
		Security: SecurityConfig{
			ConfirmTTL:              Duration{168 * time.Hour},
			SubscribePerIP:          "10/h",
			ConfirmationsPerAddress: "3/24h",
			ConfirmationsPerHour:    1000,
			IPv6Prefix:              64,
			Challenge:               "auto",
		},
	}
}

// defaultPollInterval applies to a [[feeds]] entry without poll_interval.
const defaultPollInterval = 15 * time.Minute

// defaultMaxAge applies to a [[feeds]] entry without max_age.
const defaultMaxAge = 72 * time.Hour

// LoadConfig reads the config: file (may be "" for defaults), then the
// environment's secrets, then validates. Errors name the key, and the
// file and line for syntax errors and unknown keys.
func LoadConfig(file string, getenv func(string) string) (*Config, error) {
	cfg := DefaultConfig()
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("config: %w", err)
		}
		md, err := toml.Decode(string(b), cfg)
		if err != nil {
			var perr toml.ParseError
			if errors.As(err, &perr) {
				return nil, fmt.Errorf("config: %s:%d: %s", file, perr.Position.Line, perr.Message)
			}
			return nil, fmt.Errorf("config: %s: %w", file, err)
		}
		if und := md.Undecoded(); len(und) > 0 {
			var msgs []string
			lines := strings.Split(string(b), "\n")
			for _, k := range und {
				msgs = append(msgs, fmt.Sprintf("%s:%d: unknown key %q", file, keyLine(lines, k), k.String()))
			}
			return nil, fmt.Errorf("config: %s", strings.Join(msgs, "; "))
		}
		cfg.File = file
	}
	if err := applyEnv(cfg, getenv); err != nil {
		return nil, err
	}
	for i := range cfg.Feeds {
		if cfg.Feeds[i].PollInterval.Duration == 0 {
			cfg.Feeds[i].PollInterval = Duration{defaultPollInterval}
		}
		if cfg.Feeds[i].MaxAge.Duration == 0 {
			cfg.Feeds[i].MaxAge = Duration{defaultMaxAge}
		}
	}
	if v := getenv("HERALD_SMTP_PASSWORD"); v != "" {
		cfg.SMTP.Password = v
	}
	if v := getenv("HERALD_ADMIN_TOKEN"); v != "" {
		cfg.Admin.Token = v
	}
	cfg.relayPasswords(getenv)
	if v := getenv("HERALD_BOUNCE_PASSWORD"); v != "" {
		cfg.Bounces.Password = v
	}
	if v := getenv("HERALD_SECRET"); v != "" {
		cfg.Security.Secret = v
	}
	if err := cfg.Validate(); err != nil {
		where := "built-in defaults"
		if file != "" {
			where = file
		}
		return nil, fmt.Errorf("config: %s: %w", where, err)
	}
	return cfg, nil
}

// keyLine finds the line of an undecoded key: the last path element on a
// line of its own table, good enough to point a person at the typo.
func keyLine(lines []string, k toml.Key) int {
	last := k[len(k)-1]
	table := ""
	for i, l := range lines {
		t := strings.TrimSpace(l)
		if strings.HasPrefix(t, "[") {
			table = strings.Trim(t, "[] ")
			if len(k) == 1 && table == last {
				return i + 1
			}
			continue
		}
		name, _, ok := strings.Cut(t, "=")
		if !ok {
			continue
		}
		name = strings.Trim(strings.TrimSpace(name), `"'`)
		if name == last && (len(k) == 1 || table == k[len(k)-2] || strings.HasSuffix(table, "."+k[len(k)-2])) {
			return i + 1
		}
	}
	return 0
}

// Validate checks every key and says which one is wrong.
func (c *Config) Validate() error {
	var errs []string
	bad := func(key, format string, args ...any) {
		errs = append(errs, key+": "+fmt.Sprintf(format, args...))
	}
	if _, _, err := net.SplitHostPort(c.Server.Listen); err != nil {
		bad("server.listen", "want host:port, got %q", c.Server.Listen)
	}
	if u, err := url.Parse(c.Server.BaseURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		bad("server.base_url", "want an absolute http(s) URL, got %q", c.Server.BaseURL)
	}
	for _, p := range c.Server.TrustedProxies {
		if _, err := netip.ParsePrefix(p); err != nil {
			if _, err2 := netip.ParseAddr(p); err2 != nil {
				bad("server.trusted_proxies", "%q is not a CIDR or address", p)
			}
		}
	}
	if strings.TrimSpace(c.Store.Path) == "" {
		bad("store.path", "must not be empty")
	}
	c.validateTLS(bad)
	c.validateBackups(bad)
	if strings.TrimSpace(c.Site.Name) == "" {
		bad("site.name", "must not be empty")
	} else if strings.ContainsAny(c.Site.Name, "\r\n") {
		bad("site.name", "must not contain line breaks")
	}
	if c.Site.URL != "" {
		if u, err := url.Parse(c.Site.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad("site.url", "want an absolute http(s) URL, got %q", c.Site.URL)
		}
	}
	c.validateLook(bad)
	seen := map[string]bool{}
	for i, f := range c.Feeds {
		key := fmt.Sprintf("feeds[%d]", i)
		if u, err := url.Parse(f.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad(key+".url", "want an absolute http(s) URL, got %q", f.URL)
		}
		if seen[f.URL] {
			bad(key+".url", "%q is listed twice", f.URL)
		}
		seen[f.URL] = true
		if f.PollInterval.Duration < 10*time.Second {
			bad(key+".poll_interval", "must be at least 10s, got %s", f.PollInterval.Duration)
		}
		if f.MaxAge.Duration < time.Minute {
			bad(key+".max_age", "must be at least 1m, got %s", f.MaxAge.Duration)
		}
	}
	if _, err := time.LoadLocation(c.Digest.Timezone); err != nil || c.Digest.Timezone == "" {
		bad("digest.timezone", "unknown time zone %q", c.Digest.Timezone)
	}
	for key, expr := range map[string]string{"digest.daily": c.Digest.Daily, "digest.weekly": c.Digest.Weekly} {
		if expr == "" {
			continue // empty = no schedule for that frequency
		}
		if _, err := digest.ParseSchedule(expr); err != nil {
			bad(key, "%q: %v (the time zone is digest.timezone)", expr, err)
		}
	}
	if !herald.Frequency(c.Digest.DefaultFrequency).Valid() {
		bad("digest.default_frequency", "want instant, daily or weekly, got %q", c.Digest.DefaultFrequency)
	}
	if _, err := herald.NewOfferedTopics(c.Digest.Topics); err != nil {
		bad("digest.topics", "%s", herald.ErrorMessage(err))
	}
	if c.Digest.MaxPosts < 1 || c.Digest.MaxPosts > 500 {
		bad("digest.max_posts", "must be between 1 and 500, got %d", c.Digest.MaxPosts)
	}
	if a, err := mail.ParseAddress(c.Mail.From); err != nil || strings.ContainsAny(c.Mail.From, "\r\n") {
		bad("mail.from", "not an address like \"My Blog <digest@blog.example.org>\": %q", c.Mail.From)
	} else if !strings.Contains(a.Address, "@") {
		bad("mail.from", "address has no domain: %q", c.Mail.From)
	}
	switch c.Mail.Transport {
	case "file":
		if strings.TrimSpace(c.Mail.OutboxDir) == "" {
			bad("mail.outbox_dir", "must not be empty when mail.transport = \"file\"")
		}
	case "smtp":
		if c.SMTP.Host == "" && len(c.Relays) == 0 {
			bad("smtp.host", "must not be empty when mail.transport = \"smtp\" (or list [[relays]])")
		}
	case "ses":
	default:
		bad("mail.transport", "want \"file\", \"smtp\" or \"ses\", got %q", c.Mail.Transport)
	}
	c.validateDelivery(bad)
	if c.Mail.RetryBackoff.Duration < 100*time.Millisecond || c.Mail.RetryBackoff.Duration > time.Hour {
		bad("mail.retry_backoff", "must be between 100ms and 1h, got %s", c.Mail.RetryBackoff.Duration)
	}
	if c.Mail.BounceLimit < 1 {
		bad("mail.bounce_limit", "must be at least 1, got %d", c.Mail.BounceLimit)
	}
	if c.SMTP.Port < 1 || c.SMTP.Port > 65535 {
		bad("smtp.port", "must be 1-65535, got %d", c.SMTP.Port)
	}
	switch c.SMTP.TLS {
	case "starttls", "tls", "none":
	default:
		bad("smtp.tls", "want starttls, tls or none, got %q", c.SMTP.TLS)
	}
	if c.SMTP.Connections < 1 || c.SMTP.Connections > 100 {
		bad("smtp.connections", "must be between 1 and 100, got %d", c.SMTP.Connections)
	}
	if c.SMTP.Rate < 0 {
		bad("smtp.rate", "must not be negative, got %g", c.SMTP.Rate)
	}
	if c.SMTP.Timeout.Duration <= 0 {
		bad("smtp.timeout", "must be positive, got %s", c.SMTP.Timeout.Duration)
	}
	if c.Admin.Token != "" && len(c.Admin.Token) < 16 {
		bad("admin.token", "must be at least 16 characters (or empty to disable the admin API)")
	}
	if c.DKIM.Domain != "" {
		if c.DKIM.Selector == "" {
			bad("dkim.selector", "must not be empty when dkim.domain is set")
		}
		if c.DKIM.PrivateKey == "" {
			bad("dkim.private_key", "must name a PEM file when dkim.domain is set")
		} else if _, err := dkimSigner(c.DKIM); err != nil && c.DKIM.Selector != "" {
			errs = append(errs, err.Error()) // names dkim.private_key
		}
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		bad("log.format", "want text or json, got %q", c.Log.Format)
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		bad("log.level", "want debug, info, warn or error, got %q", c.Log.Level)
	}
	if c.Security.Secret != "" && len(c.Security.Secret) < 16 {
		bad("security.secret", "must be at least 16 characters (or empty to generate one)")
	}
	if c.Security.ConfirmTTL.Duration < time.Minute {
		bad("security.confirm_ttl", "must be at least 1m, got %s", c.Security.ConfirmTTL.Duration)
	}
	if _, err := ParseRate(c.Security.SubscribePerIP); err != nil {
		bad("security.subscribe_per_ip", "%v", err)
	}
	if _, err := ParseRate(c.Security.ConfirmationsPerAddress); err != nil {
		bad("security.confirmations_per_address", "%v", err)
	}
	if c.Security.ConfirmationsPerHour < 0 {
		bad("security.confirmations_per_hour", "must not be negative")
	}
	if c.Security.IPv6Prefix < 16 || c.Security.IPv6Prefix > 128 {
		bad("security.ipv6_prefix", "must be between 16 and 128 bits, got %d (64 counts a household's /64 as one visitor)", c.Security.IPv6Prefix)
	}
	switch c.Security.Challenge {
	case "off", "auto", "always":
	default:
		bad("security.challenge", "want off, auto or always, got %q", c.Security.Challenge)
	}
	if len(errs) > 0 {
		sort.Strings(errs)
		return errors.New(strings.Join(errs, "; "))
	}
	return nil
}

// Rate is "N/period": N events per period ("10/h", "3/24h", "0" = unlimited).
type Rate struct {
	N      int
	Period time.Duration
}

// ParseRate parses "10/h", "3/24h", "100/1m" or "0" (unlimited).
func ParseRate(s string) (Rate, error) {
	s = strings.TrimSpace(s)
	if s == "0" || s == "" {
		return Rate{}, nil
	}
	n, per, ok := strings.Cut(s, "/")
	if !ok {
		return Rate{}, fmt.Errorf("want N/period like \"10/h\" or \"3/24h\", got %q", s)
	}
	count, err := strconv.Atoi(strings.TrimSpace(n))
	if err != nil || count < 0 {
		return Rate{}, fmt.Errorf("want N/period like \"10/h\" or \"3/24h\", got %q", s)
	}
	per = strings.TrimSpace(per)
	switch per {
	case "s", "m", "h":
		per = "1" + per
	case "d":
		per = "24h"
	}
	d, err := time.ParseDuration(per)
	if err != nil || d <= 0 {
		return Rate{}, fmt.Errorf("want N/period like \"10/h\" or \"3/24h\", got %q", s)
	}
	return Rate{N: count, Period: d}, nil
}

// Location returns the digest time zone (validated already).
func (c *Config) Location() *time.Location {
	loc, err := time.LoadLocation(c.Digest.Timezone)
	if err != nil {
		return time.UTC
	}
	return loc
}

// Topics returns the offered topics (validated already).
func (c *Config) Topics() *herald.OfferedTopics {
	t, err := herald.NewOfferedTopics(c.Digest.Topics)
	if err != nil {
		return nil
	}
	return t
}

// resolvePaths makes relative paths in the config relative to the working
// directory, as written; it only cleans them.
func (c *Config) resolvePaths() {
	c.Store.Path = filepath.Clean(c.Store.Path)
	c.Mail.OutboxDir = filepath.Clean(c.Mail.OutboxDir)
}

// mask hides a secret for printing.
func mask(s string) string {
	if s == "" {
		return ""
	}
	return "********"
}

// Masked returns a copy with secrets hidden, for check-config.
func (c *Config) Masked() *Config {
	m := *c
	m.SMTP.Password = mask(c.SMTP.Password)
	m.Admin.Token = mask(c.Admin.Token)
	m.Security.Secret = mask(c.Security.Secret)
	m.maskDelivery(c)
	return &m
}

func writeTOML(w io.Writer, c *Config) error {
	enc := toml.NewEncoder(w)
	enc.Indent = ""
	if err := enc.Encode(c); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	return nil
}
