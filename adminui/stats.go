package adminui

import (
	"github.com/herald-dev/herald"
)

// statsView is GET /api/v1/stats for the dashboard's templates, which
// look counts up by the words they show.
type statsView struct{ *herald.Stats }

// ByStatus is how many subscribers have status st.
func (s statsView) ByStatus(st string) int { return s.Subscribers.ByStatus[herald.Status(st)] }

// ByFrequency is how many subscribers have frequency f.
func (s statsView) ByFrequency(f string) int { return s.Subscribers.ByFrequency[herald.Frequency(f)] }

// Count is the number of subscribers with status st and frequency f.
func (s statsView) Count(st, f string) int {
	return s.Subscribers.ByStatusAndFrequency[herald.Status(st)][herald.Frequency(f)]
}

// Total counts every subscriber.
func (s statsView) Total() int { return s.Subscribers.Total }

// feedHealth is one feed of GET /api/v1/feeds, as the dashboard shows it.
type feedHealth struct{ *herald.FeedState }

// Healthy: the last poll worked.
func (f feedHealth) Healthy() bool {
	return f.LastError == "" || (!f.LastSuccess.IsZero() && f.LastSuccess.After(f.LastErrorAt))
}

// Never: the feed has not been polled yet.
func (f feedHealth) Never() bool {
	return f.LastPoll.IsZero() && f.LastSuccess.IsZero() && f.LastErrorAt.IsZero()
}
