package handlers

import (
	"net/http"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/herald-dev/herald"
)

// perVisitor takes one request from the visitor's allowance
// (security.subscribe_per_ip, counted per Visitor: an IPv6 /64 is one);
// past it, an ERATELIMIT error with msg and when to come back.
func (s *Server) perVisitor(r *http.Request, msg string) error {
	if ok, retry := s.ipLim.allow(Visitor(r).String()); !ok {
		return &herald.Error{Code: herald.ERATELIMIT, Message: msg, RetryAfter: retry}
	}
	return nil
}

// limiter is a token bucket per key (a visitor), with idle keys dropped so
// a flood of addresses can't grow it without bound.
type limiter struct {
	r     Rate
	now   func() time.Time
	mu    sync.Mutex
	keys  map[string]*entry
	swept time.Time
}

type entry struct {
	lim  *rate.Limiter
	seen time.Time
}

func newLimiter(r Rate, now func() time.Time) *limiter {
	return &limiter{r: r, now: now, keys: map[string]*entry{}}
}

// allow takes one token for key; when none is left it says how long until one is.
func (l *limiter) allow(key string) (bool, time.Duration) {
	if l.r.N <= 0 || l.r.Period <= 0 {
		return true, 0
	}
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.swept) > l.r.Period {
		for k, e := range l.keys {
			if now.Sub(e.seen) > l.r.Period {
				delete(l.keys, k)
			}
		}
		l.swept = now
	}
	e, ok := l.keys[key]
	if !ok {
		e = &entry{lim: rate.NewLimiter(rate.Every(l.r.Period/time.Duration(l.r.N)), l.r.N)}
		l.keys[key] = e
	}
	e.seen = now
	res := e.lim.ReserveN(now, 1)
	if d := res.DelayFrom(now); d > 0 {
		res.CancelAt(now)
		return false, d
	}
	return true, 0
}
