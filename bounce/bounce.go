// Package bounce turns what the outside world says about herald's mail
// into herald.Bounce values and hands them to the subscription rules
// (herald.SubscriptionService):
// the providers' webhooks (Amazon SES through SNS, Postmark, Mailgun,
// SendGrid, each authenticated its own way), and the DSNs (RFC 3464) that
// land in a bounce mailbox, read over IMAP and mapped back to the reader
// by a VERP return path or the original Message-ID. On the way out,
// Tracker gives each message its VERP return path and remembers which
// Message-ID went to whom.
package bounce

import (
	"context"
	"log/slog"

	"github.com/herald-dev/herald"
)

// apply hands b to the subscription rules and says whether the reader
// was known. Errors other than an unknown address are returned.
func apply(ctx context.Context, a herald.SubscriptionService, log *slog.Logger, b herald.Bounce) (known bool, err error) {
	sub, err := a.Bounce(ctx, b.Email, b.Kind)
	switch {
	case herald.ErrorCode(err) == herald.ENOTFOUND || herald.ErrorCode(err) == herald.EINVALID:
		log.Info("bounce: report for an address herald does not know", "source", b.Source, "email", b.Email, "kind", b.Kind, "reason", b.Reason)
		return false, nil
	case err != nil:
		return false, err
	}
	log.Info("bounce: report applied", "source", b.Source, "email", b.Email, "kind", b.Kind,
		"status", sub.Status, "bounces", sub.Bounces, "reason", b.Reason)
	return true, nil
}
