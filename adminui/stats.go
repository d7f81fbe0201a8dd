package adminui

import (
	"encoding/json"
	"math"
	"net/http"
	"slices"
	"strings"
	"time"
)

// statsView is GET /api/v1/stats, read leniently: the UI looks for the
// subscriber counts by status and frequency, the outbox backlog and the
// feeds, and shows any other top-level figure as it comes.
type statsView struct {
	Grid     map[string]map[string]int // status → frequency → count
	ByStatus map[string]int
	ByFreq   map[string]int
	Total    int
	Outbox   *int
	Figures  []figure
	Feeds    []feedHealth
	Routes   []routeView
}

type figure struct {
	Label string
	Value int
}

// Count is the number of subscribers with status st and frequency f.
func (s *statsView) Count(st, f string) int { return s.Grid[st][f] }

// HasGrid: the counts are broken down by both status and frequency.
func (s *statsView) HasGrid() bool { return len(s.Grid) > 0 }

func isStatus(s string) bool    { return slices.Contains(statuses, s) }
func isFrequency(s string) bool { return slices.Contains(frequencies, s) }

func asInt(v any) (int, bool) {
	switch n := v.(type) {
	case float64:
		if n == math.Trunc(n) && math.Abs(n) < 1e15 {
			return int(n), true
		}
	case json.Number:
		i, err := n.Int64()
		return int(i), err == nil
	}
	return 0, false
}

func numbers(v any) (map[string]int, bool) {
	m, ok := v.(map[string]any)
	if !ok {
		return nil, false
	}
	out := map[string]int{}
	for k, x := range m {
		if n, ok := asInt(x); ok {
			out[k] = n
		}
	}
	return out, len(out) > 0
}

func parseStats(raw map[string]any) *statsView {
	s := &statsView{Grid: map[string]map[string]int{}, ByStatus: map[string]int{}, ByFreq: map[string]int{}}
	s.Routes = parseRoutes(raw["routes"])
	totalGiven := false
	if subs, ok := raw["subscribers"].(map[string]any); ok {
		for k, v := range subs {
			switch {
			case isStatus(k):
				if n, ok := asInt(v); ok {
					s.ByStatus[k] = n
				} else if m, ok := numbers(v); ok {
					for f, n := range m {
						if !isFrequency(f) {
							continue
						}
						if s.Grid[k] == nil {
							s.Grid[k] = map[string]int{}
						}
						s.Grid[k][f] = n
					}
					if t, ok := m["total"]; ok {
						s.ByStatus[k] = t
					}
				}
			case k == "by_status_and_frequency":
				if m, ok := v.(map[string]any); ok {
					for st, row := range m {
						nums, ok := numbers(row)
						if !ok || !isStatus(st) {
							continue
						}
						for f, n := range nums {
							if isFrequency(f) {
								if s.Grid[st] == nil {
									s.Grid[st] = map[string]int{}
								}
								s.Grid[st][f] = n
							}
						}
					}
				}
			case k == "by_status" || k == "status" || k == "statuses":
				if m, ok := numbers(v); ok {
					for st, n := range m {
						if isStatus(st) {
							s.ByStatus[st] = n
						}
					}
				}
			case k == "by_frequency" || k == "frequency" || k == "frequencies":
				if m, ok := numbers(v); ok {
					for f, n := range m {
						if isFrequency(f) {
							s.ByFreq[f] = n
						}
					}
				}
			case k == "total":
				if n, ok := asInt(v); ok {
					s.Total, totalGiven = n, true
				}
			}
		}
	} else if n, ok := asInt(raw["subscribers"]); ok {
		s.Total, totalGiven = n, true
	}
	// Fill what the grid implies and the API left out.
	for st, row := range s.Grid {
		sum := 0
		for _, n := range row {
			sum += n
		}
		if _, ok := s.ByStatus[st]; !ok {
			s.ByStatus[st] = sum
		}
	}
	if len(s.Grid) > 0 && len(s.ByFreq) == 0 {
		for _, row := range s.Grid {
			for f, n := range row {
				s.ByFreq[f] += n
			}
		}
	}
	if !totalGiven {
		for _, n := range s.ByStatus {
			s.Total += n
		}
	}
	for k, v := range raw {
		if k == "subscribers" {
			continue
		}
		if strings.Contains(k, "outbox") {
			if n, ok := asInt(v); ok {
				s.Outbox = &n
				continue
			}
			if m, ok := numbers(v); ok {
				for _, key := range []string{"depth", "queued", "pending", "backlog", "total"} {
					if n, ok := m[key]; ok {
						s.Outbox = &n
						break
					}
				}
				for kk, n := range m {
					s.Figures = append(s.Figures, figure{Label: humanize(k + " " + kk), Value: n})
				}
				continue
			}
		}
		if k == "feeds" {
			if arr, ok := v.([]any); ok {
				b, _ := json.Marshal(arr)
				_ = json.Unmarshal(b, &s.Feeds)
				continue
			}
		}
		if n, ok := asInt(v); ok {
			s.Figures = append(s.Figures, figure{Label: humanize(k), Value: n})
		} else if m, ok := numbers(v); ok {
			for kk, n := range m {
				s.Figures = append(s.Figures, figure{Label: humanize(k + " " + kk), Value: n})
			}
		}
	}
	slices.SortFunc(s.Figures, func(a, b figure) int { return strings.Compare(a.Label, b.Label) })
	return s
}

func humanize(k string) string {
	k = strings.NewReplacer("_", " ", "-", " ").Replace(k)
	k = strings.Join(strings.Fields(k), " ")
	if k == "" {
		return k
	}
	return strings.ToUpper(k[:1]) + k[1:]
}

// feedHealth is one feed of GET /api/v1/feeds.
type feedHealth struct {
	URL         string    `json:"url"`
	LastPoll    time.Time `json:"last_poll"`
	LastSuccess time.Time `json:"last_success"`
	LastError   string    `json:"last_error"`
	LastErrorAt time.Time `json:"last_error_at"`
	Items       int       `json:"items"`
	Failures    int       `json:"failures"`
	NextPoll    time.Time `json:"next_poll"`
	TotalPosts  int       `json:"total_posts"`
	// Skipped names what the last good poll left out; Push is the WebSub
	// subscription, nil when the feed names no hub.
	Skipped []string `json:"skipped"`
	Push    *struct {
		State string `json:"state"`
		Hub   string `json:"hub"`
		Error string `json:"error"`
	} `json:"push"`
}

// Healthy: the last poll worked.
func (f feedHealth) Healthy() bool {
	return f.LastError == "" || (!f.LastSuccess.IsZero() && f.LastSuccess.After(f.LastErrorAt))
}

// Never: the feed has not been polled yet.
func (f feedHealth) Never() bool {
	return f.LastPoll.IsZero() && f.LastSuccess.IsZero() && f.LastErrorAt.IsZero()
}

func (u *UI) feedHealth(r *http.Request) ([]feedHealth, error) {
	res, err := u.call(r, http.MethodGet, "/api/v1/feeds", "", nil)
	if err != nil {
		return nil, err
	}
	var wrapped struct {
		Feeds []feedHealth `json:"feeds"`
	}
	if err := decodeAPI(res, "/api/v1/feeds", &wrapped); err == nil {
		return wrapped.Feeds, nil
	}
	var arr []feedHealth
	if err := decodeAPI(res, "/api/v1/feeds", &arr); err != nil {
		return nil, err
	}
	return arr, nil
}
