// Package subscription holds the double opt-in rules: subscribe, confirm,
// unsubscribe and preferences, the signed tokens in links, and the emails
// those steps send (through the durable outbox, in the same transaction).
package subscription

import (
	"context"
	"fmt"
	"log/slog"
	"net/mail"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/herald-dev/herald"
	"github.com/herald-dev/herald/mailer"
	"github.com/herald-dev/herald/templates"
)

// Options configure a Service; the zero values of optional fields are sane.
type Options struct {
	SiteName   string
	SiteURL    string
	BaseURL    string // absolute, no trailing slash needed
	From       string // "Name <addr>"
	ReplyTo    string // mail.reply_to ("" = none)
	ConfirmTTL time.Duration
	// PerAddress limits confirmation emails to one address: at most
	// PerAddressN in PerAddressWindow. 0 = unlimited.
	PerAddressN      int
	PerAddressWindow time.Duration
	// GlobalPerHour caps confirmation emails across all addresses: a burst
	// of GlobalPerHour, refilled at GlobalPerHour an hour. 0 = unlimited.
	// Past it, public sign-ups' confirmations are held (see budget.go).
	GlobalPerHour int
	// Challenge is security.challenge: ChallengeOff, ChallengeAuto
	// (default) or ChallengeAlways.
	Challenge        string
	Welcome          bool
	DefaultFrequency herald.Frequency
	Now              func() time.Time
	Logger           *slog.Logger
	// Enqueued is called after messages were committed to the outbox, to
	// wake the sender.
	Enqueued func()
	// BounceLimit is how many consecutive hard bounces make a confirmed
	// reader bounced (default 3); see bounces.go.
	BounceLimit int
	// Topics are the topics readers may choose (digest.topics); nil: none.
	Topics *herald.OfferedTopics
}

// Store is what the service keeps its state in (store.DB).
type Store interface {
	herald.SubscriberStore
	herald.HoldStore
	herald.SettingsStore
	herald.CounterStore
}

// Service applies the subscription rules on a store.
type Service struct {
	store  Store
	tokens *Tokens
	tpl    *templates.Set
	opt    Options
	from   *mail.Address

	// global is the cap on confirmation emails (nil: none).
	global *rate.Limiter
	// held counts the confirmations waiting for it, by lane; wakeup
	// tells Run to look at them.
	held   heldCounts
	wakeup chan struct{}
	// checkpointed is the queued count of the last checkpoint.
	checkpointed atomic.Int64

	mu sync.Mutex
	// tpls are the emails rendered and encoded once, with slots for each
	// reader's address and links: the confirmation by frequency, the link
	// email by reason (see cached).
	tpls map[string]*mailer.Template
}

// New returns a Service.
func New(store Store, tokens *Tokens, tpl *templates.Set, opt Options) (*Service, error) {
	from, err := mail.ParseAddress(opt.From)
	if err != nil {
		return nil, fmt.Errorf("subscription: mail.from %q: %w", opt.From, err)
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	if opt.ConfirmTTL <= 0 {
		opt.ConfirmTTL = 168 * time.Hour
	}
	if !opt.DefaultFrequency.Valid() {
		opt.DefaultFrequency = herald.Daily
	}
	if opt.Enqueued == nil {
		opt.Enqueued = func() {}
	}
	if opt.BounceLimit <= 0 {
		opt.BounceLimit = herald.DefaultBounceLimit
	}
	switch opt.Challenge {
	case ChallengeOff, ChallengeAlways:
	case "", ChallengeAuto:
		opt.Challenge = ChallengeAuto
	default:
		return nil, fmt.Errorf("subscription: challenge mode %q: want off, auto or always", opt.Challenge)
	}
	opt.BaseURL = strings.TrimRight(opt.BaseURL, "/")
	s := &Service{store: store, tokens: tokens, tpl: tpl, opt: opt, from: from, wakeup: make(chan struct{}, 1)}
	if opt.GlobalPerHour > 0 {
		s.global = rate.NewLimiter(rate.Every(time.Hour/time.Duration(opt.GlobalPerHour)), opt.GlobalPerHour)
	}
	ctx := context.Background()
	if err := s.restoreBudget(ctx); err != nil {
		return nil, fmt.Errorf("subscription: confirmation budget: %w", err)
	}
	counts, err := store.HeldCounts(ctx)
	if err != nil {
		return nil, fmt.Errorf("subscription: %w", err)
	}
	s.held.budget.Store(int64(counts[herald.HoldBudget]))
	s.held.unsolved.Store(int64(counts[herald.HoldUnsolved]))
	return s, nil
}

// Validated is a Request after its rules were checked.
type Validated struct {
	Email     string
	Name      string
	Frequency herald.Frequency
	Language  string
	Topics    herald.TopicList
	Timezone  string
}

// Validate checks a request and normalises it. Errors are EINVALID with
// the field named.
func (s *Service) Validate(r herald.SubscribeRequest) (Validated, error) {
	email, err := herald.NormalizeEmail(r.Email)
	if err != nil {
		return Validated{}, err
	}
	name, err := herald.CleanName(r.Name)
	if err != nil {
		return Validated{}, err
	}
	freq := s.opt.DefaultFrequency
	if strings.TrimSpace(r.Frequency) != "" {
		if strings.ContainsAny(r.Frequency, "\r\n") {
			return Validated{}, herald.Errorf(herald.EINVALID, "frequency must not contain line breaks").WithField("frequency")
		}
		f, err := herald.ParseFrequency(strings.TrimSpace(r.Frequency))
		if err != nil {
			return Validated{}, err
		}
		freq = f
	}
	topics, err := s.opt.Topics.Parse(r.Topics)
	if err != nil {
		return Validated{}, err
	}
	zone, _, err := herald.ParseTimezone(r.Timezone)
	if err != nil {
		return Validated{}, err
	}
	lang, err := s.tpl.Catalog().Parse(r.Language)
	if err != nil {
		return Validated{}, herald.Errorf(herald.EINVALID, "%v", err).WithField("language")
	}
	return Validated{Email: email, Name: name, Frequency: freq, Language: lang, Topics: topics, Timezone: zone}, nil
}

// Subscribe starts (or restarts) the opt-in for an address and returns when
// the subscriber and its confirmation email are durable. The outcome looks
// the same to the caller whether the address was new, pending or already
// subscribed, so the answer reveals nothing; a subscribed reader is sent
// their preferences link instead (they may have lost it), within the
// same per-address limit.
func (s *Service) Subscribe(ctx context.Context, r herald.SubscribeRequest) (*herald.Subscriber, error) {
	sub, _, err := s.subscribe(ctx, r)
	return sub, err
}

// subscribe is Subscribe, saying whether an email was queued.
func (s *Service) subscribe(ctx context.Context, r herald.SubscribeRequest) (*herald.Subscriber, bool, error) {
	v, err := s.Validate(r)
	if err != nil {
		return nil, false, err
	}
	if r.Source == "" {
		r.Source = "form"
	}
	// The global cap counts confirmation emails, not attempts: one is
	// reserved here and given back below when none was queued (the
	// address is at its per-address limit, or an import confirmed it), so
	// a bot repeating one address can't use up everyone's sign-ups. Past
	// the cap a public sign-up's email is held, not refused.
	var reserved *globalToken
	hold := herald.HoldNone
	if !r.Confirmed {
		if hold, reserved, err = s.admit(r); err != nil {
			return nil, false, err
		}
	}
	now := s.opt.Now()
	// The confirmation email is rendered once per frequency (the address
	// and the link are slots), not in the write transaction, which bbolt
	// runs one at a time for every sign-up: in there only the address and
	// the link (it carries the reader's id) are filled in. The same goes
	// for the preferences link a subscribed reader gets.
	var draft *confirmDraft
	var again *mailer.Template
	if !r.Confirmed {
		if draft, err = s.draftConfirm(v.Frequency, v.Language); err == nil {
			again, err = s.linkTemplate(linkAgain, v.Language)
		}
		if err != nil {
			s.giveBackGlobal(reserved)
			return nil, false, err
		}
	}
	var queued bool
	sub, err := s.store.MutateSubscriber(ctx, v.Email, func(cur *herald.Subscriber) (*herald.Subscriber, []*herald.OutboxMessage, error) {
		queued = false
		next := *cur
		next.UpdatedAt = now
		switch cur.Status {
		case "":
			next.CreatedAt = now
			next.Name = v.Name
			next.Frequency, next.Topics, next.Timezone = v.Frequency, v.Topics, v.Timezone
			next.Language = v.Language
			next.Source = r.Source
			next.Status = herald.StatusPending
			next.Nonce = NewNonce()
		case herald.StatusConfirmed:
			if r.Confirmed {
				return nil, nil, nil // nothing to do, and nothing to tell
			}
			// Subscribed already: they may have lost their links. Their
			// choices stay as they are; the link lets them change them.
			msg, ok, err := s.linkMessage(again, &next, now)
			queued = ok
			if err != nil || !ok {
				return nil, nil, err
			}
			msg.Hold = hold
			return &next, []*herald.OutboxMessage{msg}, nil
		case herald.StatusPending:
			// The same person trying again (or a bot): refresh the choice,
			// resend within the per-address limit.
			next.Name = v.Name
			next.Frequency, next.Topics, next.Timezone = v.Frequency, v.Topics, v.Timezone
			next.Language = v.Language
		case herald.StatusUnsubscribed, herald.StatusBounced:
			if r.Confirmed {
				return nil, nil, nil // an import never undoes an unsubscribe
			}
			// A fresh opt-in: old confirm links stop working.
			next.Status = herald.StatusPending
			next.Name = v.Name
			next.Frequency, next.Topics, next.Timezone = v.Frequency, v.Topics, v.Timezone
			next.Language = v.Language
			next.PausedUntil, next.PausedAt = nil, time.Time{}
			next.Nonce = NewNonce()
			next.Bounces = 0
			next.ConfirmedAt = nil
		}
		if r.Confirmed {
			next.Status = herald.StatusConfirmed
			t := now
			next.ConfirmedAt = &t
			next.UnsubscribedAt = nil
			return &next, nil, nil
		}
		if !s.underLimit(&next, cur, now) {
			return &next, nil, nil // saved, but no more mail to this address for now
		}
		msg, err := s.confirmMessage(draft, &next, now)
		if err != nil {
			return nil, nil, err
		}
		msg.Hold = hold
		// A held one counts too: when it goes, the address gets no more
		// than the per-address limit.
		next.ConfirmsSent = append(next.ConfirmsSent, now)
		queued = true
		return &next, []*herald.OutboxMessage{msg}, nil
	})
	if !r.Confirmed && (err != nil || !queued) {
		s.giveBackGlobal(reserved)
	}
	if err != nil {
		return nil, false, fmt.Errorf("subscription: subscribe: %w", err)
	}
	s.queued(queued, hold)
	return sub, queued, nil
}

// queued tells whoever waits for an email that one was queued: the
// sender when it is due, the budget's loop when it is held.
func (s *Service) queued(queued bool, hold herald.Hold) {
	switch {
	case queued && hold != herald.HoldNone:
		s.held.lane(hold).Add(1)
		s.opt.Logger.Debug("subscription: email held for the budget", "lane", hold.String())
		s.wake()
	case queued:
		s.opt.Enqueued()
	}
}

func tooManySignUps(wait time.Duration) error {
	return &herald.Error{Code: herald.ERATELIMIT, Message: "Too many sign-ups right now. Please try again in a little while.", RetryAfter: wait}
}

// underLimit keeps next's recent emails (those within the per-address
// window) and says whether one more may go to the address. Confirmations
// and preferences links count together: both go to an address anyone
// can type.
func (s *Service) underLimit(next, cur *herald.Subscriber, now time.Time) bool {
	next.ConfirmsSent = recent(cur.ConfirmsSent, now, s.opt.PerAddressWindow)
	return s.opt.PerAddressN <= 0 || len(next.ConfirmsSent) < s.opt.PerAddressN
}

// recent keeps the times within window of now (all of them when window is 0
// would grow forever, so keep the last 10 then).
func recent(ts []time.Time, now time.Time, window time.Duration) []time.Time {
	out := make([]time.Time, 0, len(ts)+1)
	for _, t := range ts {
		if window <= 0 || now.Sub(t) < window {
			out = append(out, t)
		}
	}
	if len(out) > 10 {
		out = out[len(out)-10:]
	}
	return out
}

// globalToken is one confirmation taken from the cap, and when.
type globalToken struct {
	r  *rate.Reservation
	at time.Time
}

// takeGlobal counts one confirmation against the cap (x/time/rate's
// token bucket); when the cap is reached it takes nothing and says how
// long until one is free.
func (s *Service) takeGlobal() (*globalToken, time.Duration) {
	if s.global == nil {
		return nil, 0
	}
	now := s.opt.Now()
	r := s.global.ReserveN(now, 1)
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return nil, max(d, time.Second)
	}
	return &globalToken{r: r, at: now}, 0
}

// giveBackGlobal returns a confirmation taken that was not sent after
// all. It cancels at the time the token was taken: rate.Reservation gives
// back nothing once its time to act has passed, and this one's was then.
func (s *Service) giveBackGlobal(t *globalToken) {
	if t != nil {
		t.r.CancelAt(t.at)
	}
}

// SendLink sends the owner of an address the link they need: the
// confirmation again to a pending address, the preferences link to a
// reader who is subscribed, left or bounced (from their preferences page
// they change their choices or come back), within the per-address limit.
// Unknown addresses get nothing, and the caller can't tell the
// difference.
func (s *Service) SendLink(ctx context.Context, email string) error {
	e, err := herald.NormalizeEmail(email)
	if err != nil {
		return err
	}
	cur, err := s.store.SubscriberByEmail(ctx, e)
	if herald.ErrorCode(err) == herald.ENOTFOUND {
		return nil
	} else if err != nil {
		return fmt.Errorf("subscription: send link: %w", err)
	}
	if cur.Status == herald.StatusPending {
		// A sign-up without a challenge solution (Source only names a
		// new reader's origin, and this one is known).
		_, err = s.Subscribe(ctx, herald.SubscribeRequest{Email: e, Name: cur.Name, Frequency: string(cur.Frequency),
			Topics: s.still(cur.Topics), Timezone: cur.Timezone, Language: cur.Language, Source: "form"})
		return err
	}
	// A public request too: past the budget its email waits, like a
	// sign-up's without a challenge solution.
	hold, reserved, err := s.admit(herald.SubscribeRequest{Source: "form"})
	if err != nil {
		return err
	}
	tpl, err := s.linkTemplate(linkAsked, cur.Language)
	if err != nil {
		s.giveBackGlobal(reserved)
		return err
	}
	now := s.opt.Now()
	var queued bool
	_, err = s.store.MutateSubscriber(ctx, e, func(cur *herald.Subscriber) (*herald.Subscriber, []*herald.OutboxMessage, error) {
		queued = false
		if cur.Status == "" || cur.Status == herald.StatusPending {
			return nil, nil, nil // erased, or signed up again, meanwhile
		}
		next := *cur
		msg, ok, err := s.linkMessage(tpl, &next, now)
		if err != nil || !ok {
			return nil, nil, err
		}
		msg.Hold = hold
		queued = true
		return &next, []*herald.OutboxMessage{msg}, nil
	})
	if err != nil || !queued {
		s.giveBackGlobal(reserved)
	}
	if err != nil {
		return fmt.Errorf("subscription: send link: %w", err)
	}
	s.queued(queued, hold)
	return nil
}

// Confirm completes the opt-in for a confirm token. Confirming twice is fine.
func (s *Service) Confirm(ctx context.Context, token string) (*herald.Subscriber, error) {
	t, err := s.tokens.Verify(token, PurposeConfirm)
	if err != nil {
		return nil, err
	}
	now := s.opt.Now()
	var queued bool
	sub, err := s.store.MutateSubscriberByID(ctx, t.SubscriberID, func(cur *herald.Subscriber) (*herald.Subscriber, []*herald.OutboxMessage, error) {
		queued = false
		if cur.Status == "" || cur.Nonce != t.Nonce {
			return nil, nil, herald.Errorf(herald.EINVALID, "This confirmation link is no longer valid. Subscribe again to get a new one.").WithField("token")
		}
		switch cur.Status {
		case herald.StatusConfirmed:
			return nil, nil, nil
		case herald.StatusUnsubscribed, herald.StatusBounced:
			return nil, nil, herald.Errorf(herald.EINVALID, "This address was unsubscribed after this link was sent. Subscribe again to get a new one.").WithField("token")
		}
		next := *cur
		next.Status = herald.StatusConfirmed
		next.ConfirmedAt = &now
		next.UpdatedAt = now
		next.ConfirmsSent = nil
		var out []*herald.OutboxMessage
		if s.opt.Welcome {
			msg, err := s.welcomeMessage(&next, now)
			if err != nil {
				return nil, nil, err
			}
			out = append(out, msg)
			queued = true
		}
		return &next, out, nil
	})
	if herald.ErrorCode(err) == herald.ENOTFOUND {
		return nil, herald.Errorf(herald.EINVALID, "This confirmation link is no longer valid. Subscribe again to get a new one.").WithField("token")
	} else if err != nil {
		return nil, fmt.Errorf("subscription: confirm: %w", err)
	}
	if queued {
		s.opt.Enqueued()
	}
	return sub, nil
}

// CheckConfirmToken checks a confirm token's signature and expiry without
// touching the database (the GET page must change nothing).
func (s *Service) CheckConfirmToken(token string) error {
	_, err := s.tokens.Verify(token, PurposeConfirm)
	return err
}

// ForUnsubscribe returns the subscriber an unsubscribe token names.
func (s *Service) ForUnsubscribe(ctx context.Context, token string) (*herald.Subscriber, error) {
	return s.forToken(ctx, token, PurposeUnsubscribe)
}

// ForPreferences returns the subscriber a preferences token names.
func (s *Service) ForPreferences(ctx context.Context, token string) (*herald.Subscriber, error) {
	return s.forToken(ctx, token, PurposeManage)
}

// forToken returns the subscriber an unsubscribe or preferences token names.
func (s *Service) forToken(ctx context.Context, token string, p Purpose) (*herald.Subscriber, error) {
	t, err := s.tokens.Verify(token, p)
	if err != nil {
		return nil, err
	}
	sub, err := s.store.SubscriberByID(ctx, t.SubscriberID)
	if herald.ErrorCode(err) == herald.ENOTFOUND {
		return nil, errGone()
	} else if err != nil {
		return nil, fmt.Errorf("subscription: %w", err)
	}
	return sub, nil
}

// Unsubscribe ends a subscription at once (unsubscribe token); doing it
// twice is fine.
func (s *Service) Unsubscribe(ctx context.Context, token string) (*herald.Subscriber, error) {
	return s.unsubscribe(ctx, token, PurposeUnsubscribe)
}

// UnsubscribeFromPreferences is Unsubscribe with a preferences token.
func (s *Service) UnsubscribeFromPreferences(ctx context.Context, token string) (*herald.Subscriber, error) {
	return s.unsubscribe(ctx, token, PurposeManage)
}

func (s *Service) unsubscribe(ctx context.Context, token string, p Purpose) (*herald.Subscriber, error) {
	if p != PurposeUnsubscribe && p != PurposeManage {
		return nil, herald.Errorf(herald.EINVALID, "This link is not valid.").WithField("token")
	}
	t, err := s.tokens.Verify(token, p)
	if err != nil {
		return nil, err
	}
	return s.UnsubscribeID(ctx, t.SubscriberID)
}

// UnsubscribeID ends a subscription by id (bounce complaints, admins).
func (s *Service) UnsubscribeID(ctx context.Context, id uint64) (*herald.Subscriber, error) {
	now := s.opt.Now()
	sub, err := s.store.MutateSubscriberByID(ctx, id, func(cur *herald.Subscriber) (*herald.Subscriber, []*herald.OutboxMessage, error) {
		if cur.Status == "" {
			return nil, nil, errGone()
		}
		if cur.Status == herald.StatusUnsubscribed {
			return nil, nil, nil
		}
		next := *cur
		next.Status = herald.StatusUnsubscribed
		next.UnsubscribedAt = &now
		next.UpdatedAt = now
		return &next, nil, nil
	})
	if herald.ErrorCode(err) == herald.ENOTFOUND {
		return nil, errGone()
	} else if err != nil {
		return nil, fmt.Errorf("subscription: unsubscribe: %w", err)
	}
	return sub, nil
}

// errGone answers a link whose reader was erased.
func errGone() error {
	return herald.Errorf(herald.EINVALID, "This link belongs to a subscription that no longer exists.").WithField("token")
}

// Resubscribe makes a reader who left (or bounced, or is pending) through
// their preferences link subscribed again at once: the link went to the
// address, so it proves the address, and no new opt-in is needed. Name
// and choices are kept; freq, when not "", is the frequency chosen on the
// way back. A subscribed reader is left as they are.
func (s *Service) Resubscribe(ctx context.Context, token, freq string) (*herald.Subscriber, error) {
	t, err := s.tokens.Verify(token, PurposeManage)
	if err != nil {
		return nil, err
	}
	var f herald.Frequency
	if strings.TrimSpace(freq) != "" {
		if f, err = herald.ParseFrequency(strings.TrimSpace(freq)); err != nil {
			return nil, err
		}
	}
	now := s.opt.Now()
	sub, err := s.store.MutateSubscriberByID(ctx, t.SubscriberID, func(cur *herald.Subscriber) (*herald.Subscriber, []*herald.OutboxMessage, error) {
		switch cur.Status {
		case "":
			return nil, nil, errGone()
		case herald.StatusConfirmed:
			return nil, nil, nil
		}
		next := *cur
		next.Status = herald.StatusConfirmed
		next.ConfirmedAt = &now
		next.UnsubscribedAt = nil
		next.UpdatedAt = now
		next.Bounces = 0
		next.ConfirmsSent = nil
		if f != "" {
			next.Frequency = f
		}
		return &next, nil, nil
	})
	if herald.ErrorCode(err) == herald.ENOTFOUND {
		return nil, errGone()
	} else if err != nil {
		return nil, fmt.Errorf("subscription: subscribe again: %w", err)
	}
	return sub, nil
}

// Links for a subscriber.

// ConfirmURL is the link in a confirmation email.
func (s *Service) ConfirmURL(sub *herald.Subscriber, now time.Time) string {
	tok := s.tokens.Sign(Token{Purpose: PurposeConfirm, SubscriberID: sub.ID, Nonce: sub.Nonce, Expires: now.Add(s.opt.ConfirmTTL)})
	return s.opt.BaseURL + "/confirm?token=" + url.QueryEscape(tok)
}

// UnsubscribeToken never expires.
func (s *Service) UnsubscribeToken(id uint64) string {
	return s.tokens.Sign(Token{Purpose: PurposeUnsubscribe, SubscriberID: id})
}

// ManageToken opens the preferences page; it never expires.
func (s *Service) ManageToken(id uint64) string {
	return s.tokens.Sign(Token{Purpose: PurposeManage, SubscriberID: id})
}

// UnsubscribeURL is the footer and List-Unsubscribe link.
func (s *Service) UnsubscribeURL(id uint64) string {
	return s.opt.BaseURL + "/unsubscribe?token=" + s.UnsubscribeToken(id)
}

// PreferencesURL is the footer's preferences link.
func (s *Service) PreferencesURL(id uint64) string {
	return s.opt.BaseURL + "/preferences?token=" + s.ManageToken(id)
}

// Slots of the confirmation email template: the reader's address, and the
// link, which carries the reader's id (see mailer.Template).
const (
	confirmEmailSlot = "HERALDCONFIRMEMAILSLOT"
	confirmURLSlot   = "HERALDCONFIRMURLSLOT"
)

// confirmDraft is a confirmation email waiting for its address and link.
type confirmDraft struct {
	tpl   *mailer.Template
	msgID string
}

// confirmTemplate renders the confirmation email for freq in lang once,
// with the address and the link as slots. In the HTML both go where
// html/template escapes text, and Template.Compose escapes them the same
// way.
func (s *Service) confirmTemplate(freq herald.Frequency, lang string) (*mailer.Template, error) {
	// Nothing the visitor typed but the address goes into this email: the
	// name field is a favourite of subscription bombers.
	return s.slotted("confirm:"+string(freq), lang, "confirm", herald.KindConfirm, nil, &templates.ConfirmEmail{
		Address: confirmEmailSlot, Frequency: string(freq), ConfirmURL: confirmURLSlot, TTL: s.opt.ConfirmTTL,
	}, confirmEmailSlot, confirmURLSlot)
}

func (s *Service) draftConfirm(freq herald.Frequency, lang string) (*confirmDraft, error) {
	t, err := s.confirmTemplate(freq, lang)
	if err != nil {
		return nil, err
	}
	return &confirmDraft{tpl: t, msgID: mailer.NewMessageID(s.from.Address)}, nil
}

// confirmMessage fills sub's address and link into the draft: quick
// enough for the write transaction.
func (s *Service) confirmMessage(d *confirmDraft, sub *herald.Subscriber, now time.Time) (*herald.OutboxMessage, error) {
	m, err := d.tpl.Compose(&mailer.Recipient{To: sub.Email, MessageID: d.msgID, Date: now, Values: []string{sub.Email, s.ConfirmURL(sub, now)}})
	if err != nil {
		return nil, fmt.Errorf("subscription: compose %s: %w", herald.KindConfirm, err)
	}
	return &herald.OutboxMessage{
		Kind: herald.KindConfirm, To: sub.Email, SubscriberID: sub.ID, MessageID: m.MessageID, Raw: m.Raw,
		CreatedAt: now, NextAttempt: now, ExpiresAt: now.Add(s.opt.ConfirmTTL),
	}, nil
}

// Slots of the welcome email template.
const (
	welcomeEmailSlot = "HERALDWELCOMEEMAILSLOT"
	welcomePrefsSlot = "HERALDWELCOMEPREFSSLOT"
	welcomeUnsubSlot = "HERALDWELCOMEUNSUBSLOT"
)

// welcomeMessage is made inside the confirming transaction: the email is
// rendered once per frequency and language, and only its slots are
// filled in here.
func (s *Service) welcomeMessage(sub *herald.Subscriber, now time.Time) (*herald.OutboxMessage, error) {
	t, err := s.slotted("welcome:"+string(sub.Frequency), sub.Language, "welcome", herald.KindWelcome,
		map[string]string{
			"List-Unsubscribe":      "<" + welcomeUnsubSlot + ">",
			"List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
		},
		&templates.WelcomeEmail{
			Address: welcomeEmailSlot, Frequency: string(sub.Frequency), FromAddress: s.from.Address,
			// Asking readers to add a local address nobody can reach to
			// their contacts helps nobody (mail.from left at its default).
			AddToContacts: !herald.LocalHost(s.from.Address[strings.LastIndexByte(s.from.Address, '@')+1:]),
			PrefsURL:      welcomePrefsSlot, UnsubscribeURL: welcomeUnsubSlot,
		}, welcomeEmailSlot, welcomePrefsSlot, welcomeUnsubSlot)
	if err != nil {
		return nil, err
	}
	m, err := t.Compose(&mailer.Recipient{
		To: sub.Email, MessageID: mailer.NewMessageID(s.from.Address), Date: now,
		Values: []string{sub.Email, s.PreferencesURL(sub.ID), s.UnsubscribeURL(sub.ID)},
	})
	if err != nil {
		return nil, fmt.Errorf("subscription: compose %s: %w", herald.KindWelcome, err)
	}
	return &herald.OutboxMessage{
		Kind: herald.KindWelcome, To: sub.Email, SubscriberID: sub.ID, MessageID: m.MessageID, Raw: m.Raw,
		CreatedAt: now, NextAttempt: now, ExpiresAt: now.Add(72 * time.Hour),
	}, nil
}

// humanDuration prints 168h as "7 days", 36h as "36 hours".
func humanDuration(d time.Duration) string {
	switch {
	case d >= 48*time.Hour && d%(24*time.Hour) == 0:
		return fmt.Sprintf("%d days", d/(24*time.Hour))
	case d >= 2*time.Hour:
		return fmt.Sprintf("%d hours", d/time.Hour)
	case d >= time.Hour:
		return "1 hour"
	default:
		return fmt.Sprintf("%d minutes", d/time.Minute)
	}
}
