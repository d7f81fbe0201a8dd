package subscription

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/herald-dev/herald"
)

// A reader's choices beyond the frequency: topics, time zone and pause,
// from the preferences page (a preferences token) and from an admin
// (PATCH /api/v1/subscribers/{email}).

// still keeps the topics the site still offers, in its spelling.
func (s *Service) still(topics []string) herald.TopicList {
	var out herald.TopicList
	for _, t := range topics {
		if n, ok := s.opt.Topics.Lookup(t); ok {
			out = append(out, n)
		}
	}
	return out
}

// present is how the API shows a reader: a pause that is over is no
// pause (paused_until only while it is ahead).
func (s *Service) present(sub *herald.Subscriber) *herald.Subscriber {
	if sub != nil && sub.PausedUntil != nil && !sub.Paused(s.opt.Now()) {
		cp := *sub
		cp.PausedUntil = nil
		return &cp
	}
	return sub
}

func (s *Service) presentAll(subs []*herald.Subscriber) []*herald.Subscriber {
	for i, sub := range subs {
		subs[i] = s.present(sub)
	}
	return subs
}

// byToken changes the reader a preferences token names; fn gets a copy
// to change and says whether it changed anything (changed: it did).
func (s *Service) byToken(ctx context.Context, token string, fn func(next *herald.Subscriber) (bool, error)) (sub *herald.Subscriber, changed bool, err error) {
	t, err := s.tokens.Verify(token, PurposeManage)
	if err != nil {
		return nil, false, err
	}
	now := s.opt.Now()
	sub, err = s.store.MutateSubscriberByID(ctx, t.SubscriberID, func(cur *herald.Subscriber) (*herald.Subscriber, []*herald.OutboxMessage, error) {
		changed = false
		if cur.Status == "" {
			return nil, nil, errGone()
		}
		next := *cur
		ch, err := fn(&next)
		if err != nil || !ch {
			return nil, nil, err
		}
		changed = true
		next.UpdatedAt = now
		return &next, nil, nil
	})
	if herald.ErrorCode(err) == herald.ENOTFOUND {
		return nil, false, errGone()
	} else if err != nil && herald.ErrorCode(err) == herald.EINTERNAL {
		return nil, false, fmt.Errorf("subscription: preferences: %w", err)
	}
	return sub, changed, err
}

// SavePreferences applies the preferences form: frequency, topics (none:
// every post) and time zone ("": the site's); changed is false when the
// reader had those already. Everything is checked before anything
// changes. A reader who left is ECONFLICT: they subscribe again first
// (Resubscribe), so a page never says "saved" about mail that will not
// come.
func (s *Service) SavePreferences(ctx context.Context, token string, p herald.Preferences) (*herald.Subscriber, bool, error) {
	f, err := herald.ParseFrequency(strings.TrimSpace(p.Frequency))
	if err != nil {
		return nil, false, err
	}
	topics, err := s.opt.Topics.Parse(p.Topics)
	if err != nil {
		return nil, false, err
	}
	zone, _, err := herald.ParseTimezone(p.Timezone)
	if err != nil {
		return nil, false, err
	}
	return s.byToken(ctx, token, func(next *herald.Subscriber) (bool, error) {
		switch next.Status {
		case herald.StatusUnsubscribed, herald.StatusBounced:
			return false, herald.Errorf(herald.ECONFLICT, "You're not subscribed, so there is no frequency to change. Subscribe again to choose one.").WithField("frequency")
		}
		if next.Frequency == f && next.Timezone == zone && slices.Equal(next.Topics, topics) {
			return false, nil
		}
		next.Frequency, next.Topics, next.Timezone = f, topics, zone
		return true, nil
	})
}

// weeks checks a pause length.
func weeks(n int) (time.Duration, error) {
	if !slices.Contains(herald.PauseWeeks, n) {
		return 0, herald.Errorf(herald.EINVALID, "a pause is for 1, 2 or 4 weeks").WithField("weeks")
	}
	return time.Duration(n) * 7 * 24 * time.Hour, nil
}

// Pause stops all mail to a confirmed reader for n weeks (1, 2 or 4).
func (s *Service) Pause(ctx context.Context, token string, n int) (*herald.Subscriber, error) {
	d, err := weeks(n)
	if err != nil {
		return nil, err
	}
	now := s.opt.Now()
	sub, _, err := s.byToken(ctx, token, func(next *herald.Subscriber) (bool, error) {
		if next.Status != herald.StatusConfirmed {
			return false, herald.Errorf(herald.EINVALID, "Only a confirmed subscription can be paused.").WithField("weeks")
		}
		next.Pause(now, now.Add(d))
		return true, nil
	})
	return sub, err
}

// Resume ends a pause now; the posts that arrived during it stay unsent.
func (s *Service) Resume(ctx context.Context, token string) (*herald.Subscriber, error) {
	now := s.opt.Now()
	sub, _, err := s.byToken(ctx, token, func(next *herald.Subscriber) (bool, error) {
		if !next.Paused(now) {
			return false, nil
		}
		next.Resume(now)
		return true, nil
	})
	return sub, err
}

// samePause: both nil, or the same instant.
func samePause(a, b *time.Time) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Equal(*b)
}

// UpdateSubscriber applies an admin's change: the fields p sets, each
// checked before anything changes (EINVALID naming the field), then all
// saved together. paused_until must lie ahead, within herald.MaxPause;
// null resumes. An empty patch changes nothing and answers the reader as
// they are.
func (s *Service) UpdateSubscriber(ctx context.Context, email string, p herald.SubscriberPatch) (*herald.Subscriber, error) {
	addr, err := herald.NormalizeEmail(email)
	if err != nil {
		return nil, err
	}
	var (
		name   string
		freq   herald.Frequency
		topics herald.TopicList
		zone   string
		lang   string
	)
	if p.Name != nil {
		if name, err = herald.CleanName(*p.Name); err != nil {
			return nil, err
		}
	}
	if p.Frequency != nil {
		if strings.ContainsAny(*p.Frequency, "\r\n") {
			return nil, herald.Errorf(herald.EINVALID, "frequency must not contain line breaks").WithField("frequency")
		}
		if freq, err = herald.ParseFrequency(strings.TrimSpace(*p.Frequency)); err != nil {
			return nil, err
		}
	}
	if p.Topics != nil {
		if topics, err = s.opt.Topics.Parse(*p.Topics); err != nil {
			return nil, err
		}
	}
	if p.Timezone != nil {
		if zone, _, err = herald.ParseTimezone(*p.Timezone); err != nil {
			return nil, err
		}
	}
	if p.Language != nil {
		if lang, err = s.tpl.Catalog().Parse(*p.Language); err != nil {
			return nil, herald.Errorf(herald.EINVALID, "%v", err).WithField("language")
		}
	}
	now := s.opt.Now()
	if p.PausedUntil.Set && p.PausedUntil.Time != nil {
		switch until := *p.PausedUntil.Time; {
		case !until.After(now):
			return nil, herald.Errorf(herald.EINVALID, "paused_until %s is not in the future (null resumes a paused reader)", until.UTC().Format(time.RFC3339)).WithField("paused_until")
		case until.Sub(now) > herald.MaxPause:
			return nil, herald.Errorf(herald.EINVALID, "paused_until is more than a year ahead: unsubscribe the reader instead").WithField("paused_until")
		}
	}
	sub, err := s.store.MutateSubscriber(ctx, addr, func(cur *herald.Subscriber) (*herald.Subscriber, []*herald.OutboxMessage, error) {
		if cur.Status == "" {
			return nil, nil, nil // the store answers ENOTFOUND
		}
		next := *cur
		if p.Name != nil {
			next.Name = name
		}
		if p.Frequency != nil {
			next.Frequency = freq
		}
		if p.Topics != nil {
			next.Topics = topics
		}
		if p.Timezone != nil {
			next.Timezone = zone
		}
		if p.Language != nil {
			next.Language = lang
		}
		if p.PausedUntil.Set {
			if p.PausedUntil.Time != nil {
				next.Pause(now, p.PausedUntil.Time.UTC())
			} else {
				next.Resume(now)
			}
		}
		if next.Name == cur.Name && next.Frequency == cur.Frequency && slices.Equal(next.Topics, cur.Topics) &&
			next.Timezone == cur.Timezone && next.Language == cur.Language && next.PausedAt.Equal(cur.PausedAt) && samePause(next.PausedUntil, cur.PausedUntil) {
			return nil, nil, nil // nothing changes: the reader as they are
		}
		next.UpdatedAt = now
		return &next, nil, nil
	})
	if err != nil {
		if code := herald.ErrorCode(err); code == herald.EINTERNAL {
			return nil, fmt.Errorf("subscription: update %s: %w", addr, err)
		}
		return nil, err
	}
	return s.present(sub), nil
}
