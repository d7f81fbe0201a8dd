package subscription

import (
	"fmt"
	"time"

	"github.com/herald-dev/herald"
	"github.com/herald-dev/herald/mailer"
)

// The preferences-link email: a reader who lost their links gets them
// again by email, never on a page, so nobody learns from herald's answers
// who reads the blog.

// Why a link email goes out; each reason is its own wording.
type linkReason string

const (
	linkAsked linkReason = "asked" // the "email me my link" form, or Resend
	linkAgain linkReason = "again" // a subscribed address signed up again
)

// Slots of the link email: the address, the preferences link and the
// unsubscribe link (both carry the reader's id).
const (
	linkEmailSlot = "HERALDLINKEMAILSLOT"
	linkPrefsSlot = "HERALDLINKPREFSURLSLOT"
	linkUnsubSlot = "HERALDLINKUNSUBURLSLOT"
)

// linkTemplate renders the link email for reason once, with the address
// and the links as slots.
func (s *Service) linkTemplate(reason linkReason) (*mailer.Template, error) {
	return s.slotted("link:"+string(reason), "link", herald.KindLink, func() map[string]any {
		return map[string]any{
			"Site":           site{s.opt.SiteName, s.opt.SiteURL},
			"Subject":        "Your link to manage your subscription to " + s.opt.SiteName,
			"Email":          linkEmailSlot,
			"Reason":         string(reason),
			"PrefsURL":       linkPrefsSlot,
			"UnsubscribeURL": linkUnsubSlot,
			"Button":         map[string]string{"URL": linkPrefsSlot, "Label": "Manage your subscription"},
		}
	}, linkEmailSlot, linkPrefsSlot, linkUnsubSlot)
}

// slotted renders the email called name once (kept under key) with the
// data that data makes (its "Subject" is the subject), and makes it a
// template whose slots each reader's values fill.
func (s *Service) slotted(key, name string, kind herald.MessageKind, data func() map[string]any, slots ...string) (*mailer.Template, error) {
	return s.cached(key, func() (*mailer.Template, error) {
		d := data()
		html, text, err := s.tpl.Email(name, d)
		if err != nil {
			return nil, fmt.Errorf("subscription: %w", err)
		}
		subject, _ := d["Subject"].(string)
		t, err := mailer.NewTemplate(&mailer.Email{From: s.opt.From, Subject: subject, Text: text, HTML: html}, slots...)
		if err != nil {
			return nil, fmt.Errorf("subscription: compose %s: %w", kind, err)
		}
		return t, nil
	})
}

// linkMessage fills next's address and links into tpl, within the
// per-address limit (ok is false past it) and records it in
// next.ConfirmsSent: quick enough for the write transaction.
func (s *Service) linkMessage(tpl *mailer.Template, next *herald.Subscriber, now time.Time) (_ *herald.OutboxMessage, ok bool, _ error) {
	if !s.underLimit(next, next, now) {
		return nil, false, nil
	}
	m, err := tpl.Compose(&mailer.Recipient{
		To: next.Email, MessageID: mailer.NewMessageID(s.from.Address), Date: now,
		Values: []string{next.Email, s.PreferencesURL(next.ID), s.UnsubscribeURL(next.ID)},
	})
	if err != nil {
		return nil, false, fmt.Errorf("subscription: compose %s: %w", herald.KindLink, err)
	}
	next.ConfirmsSent = append(next.ConfirmsSent, now)
	next.UpdatedAt = now
	return &herald.OutboxMessage{
		Kind: herald.KindLink, To: next.Email, SubscriberID: next.ID, MessageID: m.MessageID, Raw: m.Raw,
		CreatedAt: now, NextAttempt: now, ExpiresAt: now.Add(24 * time.Hour),
	}, true, nil
}

// cached returns the template kept under key, building it the first time.
func (s *Service) cached(key string, build func() (*mailer.Template, error)) (*mailer.Template, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if t := s.tpls[key]; t != nil {
		return t, nil
	}
	t, err := build()
	if err != nil {
		return nil, err
	}
	if s.tpls == nil {
		s.tpls = map[string]*mailer.Template{}
	}
	s.tpls[key] = t
	return t, nil
}
