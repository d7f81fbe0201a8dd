package subscription

import (
	"context"
	"fmt"
	"time"

	"github.com/herald-dev/herald"
)

// Bounces: what herald does when mail to a reader does not arrive.
//
//   - A hard bounce (a permanent SMTP reply at send time, or a relay's
//     webhook report) to a confirmed reader counts one against them;
//     Options.BounceLimit consecutive ones make them bounced, and bounced
//     readers get no mail. A delivered email resets the count (digests:
//     store.RecordDeliveries; outbox mail: MessageResult).
//   - A hard bounce of a pending address (nothing but its confirmation was
//     ever sent to it) marks it bounced at once: the address does not
//     exist, and every resend would only hurt the sender's reputation.
//     Nothing is lost: subscribing again starts a fresh opt-in, and the
//     janitor erases it with the other stale sign-ups.
//   - A soft bounce is logged and counted, and changes nothing.
//   - A complaint (the reader pressed "spam") unsubscribes at once.
//
// An admin can reactivate a bounced reader who had confirmed.

// counterAdder is met by stores that keep named counters (store.DB);
// without it, bounce reports are not counted.
type counterAdder interface {
	AddCounter(ctx context.Context, name string, delta int64) error
}

// Bounce applies a bounce report for an address. Unknown address:
// ENOTFOUND.
func (s *Service) Bounce(ctx context.Context, email string, kind herald.BounceKind) (*herald.Subscriber, error) {
	addr, err := herald.NormalizeEmail(email)
	if err != nil {
		return nil, err
	}
	var sub *herald.Subscriber
	switch kind {
	case herald.BounceSoft:
		sub, err = s.store.SubscriberByEmail(ctx, addr)
	case herald.BounceHard:
		sub, err = s.mutateKnown(ctx, addr, func(cur *herald.Subscriber, now time.Time) *herald.Subscriber {
			next := *cur
			next.HardBounce(s.opt.BounceLimit)
			next.UpdatedAt = now
			return &next
		})
	case herald.BounceComplaint:
		sub, err = s.mutateKnown(ctx, addr, func(cur *herald.Subscriber, now time.Time) *herald.Subscriber {
			if cur.Status == herald.StatusUnsubscribed {
				return nil
			}
			next := *cur
			next.Status = herald.StatusUnsubscribed
			next.UnsubscribedAt = &now
			next.UpdatedAt = now
			return &next
		})
	default:
		return nil, herald.Errorf(herald.EINVALID, "unknown bounce kind %q (want hard, soft or complaint)", kind).WithField("kind")
	}
	if err != nil {
		if herald.ErrorCode(err) == herald.ENOTFOUND {
			return nil, herald.Errorf(herald.ENOTFOUND, "no subscriber with the address %s", addr).WithField("email")
		}
		return nil, fmt.Errorf("subscription: bounce: %w", err)
	}
	s.opt.Logger.Info("subscription: bounce reported", "email", addr, "kind", kind, "status", sub.Status, "bounces", sub.Bounces)
	s.count(ctx, kind)
	return sub, nil
}

// mutateKnown applies change to a known address; change returns nil to
// leave the record as it is.
func (s *Service) mutateKnown(ctx context.Context, addr string, change func(cur *herald.Subscriber, now time.Time) *herald.Subscriber) (*herald.Subscriber, error) {
	now := s.opt.Now()
	return s.store.MutateSubscriber(ctx, addr, func(cur *herald.Subscriber) (*herald.Subscriber, []*herald.OutboxMessage, error) {
		if cur.Status == "" {
			return nil, nil, nil // the store answers ENOTFOUND
		}
		return change(cur, now), nil, nil
	})
}

func (s *Service) count(ctx context.Context, kind herald.BounceKind) {
	c, ok := s.store.(counterAdder)
	if !ok {
		return
	}
	name := map[herald.BounceKind]string{
		herald.BounceHard: herald.CounterBouncesHard, herald.BounceSoft: herald.CounterBouncesSoft,
		herald.BounceComplaint: herald.CounterComplaints,
	}[kind]
	if err := c.AddCounter(ctx, name, 1); err != nil {
		s.opt.Logger.Warn("subscription: counting a bounce", "kind", kind, "err", err)
	}
}

// Reactivate makes a bounced reader confirmed again, with the bounce count
// reset; from now on they get the posts that arrive after this. Only a
// reader who once confirmed can be: a sign-up whose confirmation bounced
// never opted in (ECONFLICT, as for any status but bounced).
func (s *Service) Reactivate(ctx context.Context, email string) (*herald.Subscriber, error) {
	addr, err := herald.NormalizeEmail(email)
	if err != nil {
		return nil, err
	}
	now := s.opt.Now()
	sub, err := s.store.MutateSubscriber(ctx, addr, func(cur *herald.Subscriber) (*herald.Subscriber, []*herald.OutboxMessage, error) {
		switch {
		case cur.Status == "":
			return nil, nil, nil
		case cur.Status != herald.StatusBounced:
			return nil, nil, herald.Errorf(herald.ECONFLICT, "%s is %s, not bounced: only a bounced reader can be reactivated", addr, cur.Status)
		case cur.ConfirmedAt == nil:
			return nil, nil, herald.Errorf(herald.ECONFLICT, "%s never confirmed its subscription: it has to subscribe again", addr)
		}
		next := *cur
		next.Status = herald.StatusConfirmed
		next.Bounces = 0
		next.UnsubscribedAt = nil
		next.UpdatedAt = now
		return &next, nil, nil
	})
	if herald.ErrorCode(err) == herald.ENOTFOUND {
		return nil, herald.Errorf(herald.ENOTFOUND, "no subscriber with the address %s", addr).WithField("email")
	} else if err != nil {
		return nil, fmt.Errorf("subscription: reactivate: %w", err)
	}
	s.opt.Logger.Info("subscription: reader reactivated", "email", addr)
	return sub, nil
}

// Unwanted keeps the promise that an unsubscribe is final at once: mail
// queued for a reader before they left (or bounced, or were erased) is
// not sent after it, and a confirmation is not sent to an address that
// no longer waits for one. The outbox sender asks before each attempt
// (mailer.SenderOptions.Drop); drop comes with the reason.
func (s *Service) Unwanted(ctx context.Context, m *herald.OutboxMessage) (drop bool, reason string) {
	if m.SubscriberID == 0 {
		return false, "" // a test email: it belongs to no reader
	}
	sub, err := s.store.SubscriberByID(ctx, m.SubscriberID)
	if herald.ErrorCode(err) == herald.ENOTFOUND {
		return true, "subscriber erased"
	} else if err != nil {
		return false, "" // can't tell; sending a confirmation late is the lesser harm
	}
	switch m.Kind {
	case herald.KindLink:
		// A lost link goes to whoever owns the address, subscribed or not.
	case herald.KindConfirm:
		if sub.Status != herald.StatusPending {
			return true, "subscriber is " + string(sub.Status) + ", no confirmation needed"
		}
	default:
		if sub.Status != herald.StatusConfirmed {
			return true, "subscriber is " + string(sub.Status)
		}
	}
	return false, ""
}

// MessageResult hears the outbox sender's outcomes (mailer.SenderOptions
// OnResult): a permanent failure of a confirmation, welcome or link email is a
// hard bounce of its address, and a delivered one ends a run of bounces.
// Test emails go to any address and count for nobody.
func (s *Service) MessageResult(kind herald.MessageKind, to string, err error) {
	if kind != herald.KindConfirm && kind != herald.KindWelcome && kind != herald.KindLink {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	switch {
	case err == nil:
		if sub, e := s.store.SubscriberByEmail(ctx, to); e != nil || sub.Bounces == 0 {
			return
		}
		_, e := s.mutateKnown(ctx, to, func(cur *herald.Subscriber, now time.Time) *herald.Subscriber {
			if cur.Bounces == 0 {
				return nil
			}
			next := *cur
			next.Bounces = 0
			next.UpdatedAt = now
			return &next
		})
		if e != nil && herald.ErrorCode(e) != herald.ENOTFOUND {
			s.opt.Logger.Warn("subscription: resetting bounces", "email", to, "err", e)
		}
	case herald.IsPermanent(err):
		if _, e := s.Bounce(ctx, to, herald.BounceHard); e != nil && herald.ErrorCode(e) != herald.ENOTFOUND {
			s.opt.Logger.Warn("subscription: recording a bounce", "email", to, "kind", kind, "err", e)
		}
	}
}
