package subscription

import (
	"context"
	"fmt"

	"github.com/herald-dev/herald"
)

// The admin's view of the readers (the admin API).

var _ herald.SubscriptionService = (*Service)(nil)

// ListSubscribers returns a page of readers and the After of the next.
func (s *Service) ListSubscribers(ctx context.Context, f herald.SubscriberFilter) ([]*herald.Subscriber, uint64, error) {
	if f.Status != "" && !f.Status.Valid() {
		return nil, 0, herald.Errorf(herald.EINVALID, "unknown status %q (want pending, confirmed, unsubscribed or bounced)", f.Status).WithField("status")
	}
	subs, next, err := s.store.ListSubscribers(ctx, f)
	if err != nil {
		return nil, 0, fmt.Errorf("subscription: list: %w", err)
	}
	return s.presentAll(subs), next, nil
}

// ScanSubscribers returns up to limit readers with id > after, in id order.
func (s *Service) ScanSubscribers(ctx context.Context, after uint64, limit int) ([]*herald.Subscriber, error) {
	subs, err := s.store.ScanSubscribers(ctx, after, limit)
	if err != nil {
		return nil, fmt.Errorf("subscription: scan: %w", err)
	}
	return s.presentAll(subs), nil
}

// Subscriber returns the reader with the address; ENOTFOUND if none.
func (s *Service) Subscriber(ctx context.Context, email string) (*herald.Subscriber, error) {
	addr, err := herald.NormalizeEmail(email)
	if err != nil {
		return nil, err
	}
	sub, err := s.store.SubscriberByEmail(ctx, addr)
	return s.present(sub), err
}

// AddSubscriber adds one reader for an admin: the opt-in of Subscribe (or
// none, with Confirmed), from source "api". An address known already is
// ECONFLICT, with the reader as they are: the admin sees what is there
// instead of restarting someone's opt-in.
func (s *Service) AddSubscriber(ctx context.Context, r herald.SubscribeRequest) (*herald.Subscriber, error) {
	v, err := s.Validate(r)
	if err != nil {
		return nil, err
	}
	if cur, err := s.store.SubscriberByEmail(ctx, v.Email); err == nil {
		return s.present(cur), herald.Errorf(herald.ECONFLICT, "a subscriber with this address exists already").WithField("email")
	} else if herald.ErrorCode(err) != herald.ENOTFOUND {
		return nil, fmt.Errorf("subscription: add: %w", err)
	}
	r.Source = "api"
	return s.Subscribe(ctx, r)
}

// DeleteSubscriber erases the reader and their queued mail.
func (s *Service) DeleteSubscriber(ctx context.Context, email string) error {
	addr, err := herald.NormalizeEmail(email)
	if err != nil {
		return err
	}
	return s.store.DeleteSubscriber(ctx, addr)
}

// ResendConfirmation queues the confirmation email again for a pending
// reader, as their own second sign-up would: within the per-address limit
// and the hourly cap, with their name and choice as they are. Unlike the
// public pages it tells the admin what happened.
func (s *Service) ResendConfirmation(ctx context.Context, email string) (*herald.Subscriber, error) {
	addr, err := herald.NormalizeEmail(email)
	if err != nil {
		return nil, err
	}
	cur, err := s.store.SubscriberByEmail(ctx, addr)
	if err != nil {
		return nil, err
	}
	if cur.Status != herald.StatusPending {
		return cur, herald.Errorf(herald.ECONFLICT, "%s is %s: only a pending reader is sent a confirmation", addr, cur.Status)
	}
	// Source "api": the admin's, not held past the budget but refused.
	sub, queued, err := s.subscribe(ctx, herald.SubscribeRequest{Email: addr, Name: cur.Name, Frequency: string(cur.Frequency),
		Topics: s.still(cur.Topics), Timezone: cur.Timezone, Language: cur.Language, Source: "api"})
	if err != nil {
		return nil, err
	}
	if !queued {
		return sub, &herald.Error{Code: herald.ERATELIMIT, RetryAfter: s.opt.PerAddressWindow,
			Message: fmt.Sprintf("%s was sent %d confirmation emails lately, the most one address gets in %s; try again later", addr, s.opt.PerAddressN, humanDuration(s.opt.PerAddressWindow))}
	}
	return sub, nil
}
