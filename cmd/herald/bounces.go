package main

import (
	"crypto/hmac"
	"crypto/sha256"
	"log/slog"
	"net/mail"
	"strings"

	"github.com/herald-dev/herald"
	"github.com/herald-dev/herald/bounce"
	"github.com/herald-dev/herald/store"
)

// validateBounces checks [bounces].
func (c *Config) validateBounces(bad func(key, format string, args ...any)) {
	b := c.Bounces
	if b.Mailbox != "" {
		if err := bounce.CheckMailboxURL(b.Mailbox); err != nil {
			bad("bounces.mailbox", "%s", strings.TrimPrefix(err.Error(), "bounce: "))
		}
		if b.PollInterval.Duration < 10e9 {
			bad("bounces.poll_interval", "must be at least 10s, got %s", b.PollInterval.Duration)
		}
		if strings.TrimSpace(b.MoveTo) == "" {
			bad("bounces.move_to", "must not be empty when bounces.mailbox is set")
		}
	}
	if b.ReturnPath != "" {
		if _, err := bounce.NewVERP(b.ReturnPath, []byte("check")); err != nil {
			bad("bounces.return_path", "%s", strings.TrimPrefix(err.Error(), "bounce: "))
		} else if a, _ := mail.ParseAddress(b.ReturnPath); a != nil && strings.Contains(a.Address, "+") {
			bad("bounces.return_path", "must not contain a +")
		}
	}
	for _, t := range b.SNSTopics {
		if !strings.HasPrefix(t, "arn:") || strings.Count(t, ":") < 5 {
			bad("bounces.sns_topics", "%q is not a topic ARN (arn:aws:sns:region:account:name)", t)
		}
	}
	if (b.PostmarkUser == "") != (b.PostmarkPass == "") {
		bad("bounces.postmark_user", "set both postmark_user and postmark_password, or neither")
	}
	if b.SendGridKey != "" {
		if _, err := bounce.ParseSendGridKey(b.SendGridKey); err != nil {
			bad("bounces.sendgrid_public_key", "%s", strings.TrimPrefix(err.Error(), "bounce: "))
		}
	}
	if b.MailgunKey != "" && len(b.MailgunKey) < 16 {
		bad("bounces.mailgun_signing_key", "looks too short for Mailgun's signing key")
	}
}

// maskDelivery hides the secrets of [[relays]] and [bounces].
func (m *Config) maskDelivery(c *Config) {
	m.Relays = append([]RelayConfig(nil), c.Relays...)
	for i := range m.Relays {
		m.Relays[i].Password = mask(m.Relays[i].Password)
	}
	m.Bounces.Password = mask(c.Bounces.Password)
	m.Bounces.PostmarkPass = mask(c.Bounces.PostmarkPass)
	m.Bounces.MailgunKey = mask(c.Bounces.MailgunKey)
}

// trackSends puts the tracker in front of the transport: each message
// gets its VERP return path (bounces.return_path) and goes in the sent log.
func (a *app) trackSends(secret []byte, log *slog.Logger) error {
	if rp := a.cfg.Bounces.ReturnPath; rp != "" {
		mac := hmac.New(sha256.New, secret)
		mac.Write([]byte("herald verp"))
		var err error
		if a.verp, err = bounce.NewVERP(rp, mac.Sum(nil)); err != nil {
			return err
		}
	}
	a.tracker = bounce.NewTracker(a.tr, a.verp, a.db, log)
	a.tr = a.tracker
	return nil
}

// bounceIntake builds the webhooks and the mailbox poller, which apply
// what they learn through the subscription service.
func (a *app) bounceIntake(log *slog.Logger) error {
	cfg := a.cfg.Bounces
	wh, err := bounce.NewWebhooks(bounce.WebhookOptions{
		Subscriptions: a.subs, Logger: log, SNSTopics: cfg.SNSTopics, SNSCertHost: cfg.SNSCertHost,
		PostmarkUser: cfg.PostmarkUser, PostmarkPassword: cfg.PostmarkPass,
		MailgunKey: cfg.MailgunKey, SendGridKey: cfg.SendGridKey,
	})
	if err != nil {
		return err
	}
	a.webhooks = wh
	if cfg.Mailbox != "" {
		a.mailbox, err = bounce.NewMailbox(bounce.MailboxOptions{
			URL: cfg.Mailbox, Password: cfg.Password, MoveTo: cfg.MoveTo, Interval: cfg.PollInterval.Duration,
			VERP: a.verp, Sent: a.db, Subscriptions: a.subs, Logger: log,
		})
		if err != nil {
			return err
		}
	}
	return nil
}

var _ herald.SentLog = (*store.DB)(nil)
