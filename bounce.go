package herald

import "strings"

// BounceKind is what a relay reports about a message it could not deliver.
type BounceKind string

const (
	// BounceHard is a permanent failure: the address does not take mail.
	BounceHard BounceKind = "hard"
	// BounceSoft is a temporary one (mailbox full, greylisting).
	BounceSoft BounceKind = "soft"
	// BounceComplaint is the reader marking a message as spam.
	BounceComplaint BounceKind = "complaint"
)

// ParseBounceKind checks s; errors are EINVALID on the field "kind".
func ParseBounceKind(s string) (BounceKind, error) {
	switch k := BounceKind(strings.ToLower(strings.TrimSpace(s))); k {
	case BounceHard, BounceSoft, BounceComplaint:
		return k, nil
	}
	if len(s) > 40 {
		s = s[:40] + "…"
	}
	return "", Errorf(EINVALID, "unknown bounce kind %q (want hard, soft or complaint)", s).WithField("kind")
}

// Counters of bounce reports, kept beside the email counters.
const (
	CounterBouncesHard = "bounces_hard"
	CounterBouncesSoft = "bounces_soft"
	CounterComplaints  = "complaints"
)
