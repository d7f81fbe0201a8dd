package herald

import "testing"

// The bounce rule, the one place it is written.
func TestHardBounce(t *testing.T) {
	for _, c := range []struct {
		status  Status
		bounces int
		limit   int
		want    Status
	}{
		{StatusConfirmed, 0, 3, StatusConfirmed},
		{StatusConfirmed, 1, 3, StatusConfirmed},
		{StatusConfirmed, 2, 3, StatusBounced},   // the third in a row
		{StatusConfirmed, 9, 0, StatusConfirmed}, // no limit
		{StatusConfirmed, 0, 1, StatusBounced},
		{StatusPending, 0, 3, StatusBounced}, // its confirmation bounced: the address takes no mail
		{StatusUnsubscribed, 5, 1, StatusUnsubscribed},
		{StatusBounced, 5, 1, StatusBounced},
	} {
		s := &Subscriber{Status: c.status, Bounces: c.bounces}
		s.HardBounce(c.limit)
		if s.Status != c.want || s.Bounces != c.bounces+1 {
			t.Errorf("%s with %d bounces, limit %d: %s with %d, want %s with %d", c.status, c.bounces, c.limit, s.Status, s.Bounces, c.want, c.bounces+1)
		}
	}
}
