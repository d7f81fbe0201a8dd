package subscription

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/herald-dev/herald"
)

// The budget of confirmation emails (security.confirmations_per_hour) is
// an x/time/rate token bucket: a burst of the hourly figure, refilled at
// that rate. It delays, never refuses: a public sign-up past it is stored
// and answered as usual, and its confirmation is queued held (see
// herald.Hold). Run releases the held ones as tokens come, oldest first,
// solved before unsolved, so a flood costs real readers time, never their
// sign-up, and nothing else in the outbox waits behind it.

// Challenge modes (security.challenge).
const (
	ChallengeOff    = "off"
	ChallengeAuto   = "auto"
	ChallengeAlways = "always"
)

// budgetSetting is where the bucket is kept across restarts.
const budgetSetting = "confirm_budget"

// budgetState is the bucket as checkpointed: its tokens at a time, and
// the store's count of confirmations queued then. Whatever was queued
// after it (a crash loses the last checkpoint) is the difference from the
// count at restart, taken from the bucket as if spent at that moment: a
// restart never hands out budget that was spent.
type budgetState struct {
	Tokens float64   `json:"tokens"`
	At     time.Time `json:"at"`
	Queued int64     `json:"queued"`
}

// Intervals of the release loop.
const (
	// checkpointEvery bounds what a crash forgets of the budget spent.
	checkpointEvery = 5 * time.Second
	// resyncEvery rereads the held counts (an erased reader takes their
	// held confirmation along) even when nothing wakes the loop.
	resyncEvery = 30 * time.Second
)

// heldCounts is the loop's view of the held lanes, between syncs with
// the store; Subscribe adds to it when it holds one.
type heldCounts struct {
	budget, unsolved atomic.Int64
}

func (h *heldCounts) total() int64 { return h.budget.Load() + h.unsolved.Load() }

func (h *heldCounts) lane(l herald.Hold) *atomic.Int64 {
	if l == herald.HoldUnsolved {
		return &h.unsolved
	}
	return &h.budget
}

// restoreBudget sets the bucket to what it was at the last checkpoint,
// less what was queued since, so a restart does not hand out a fresh
// hour's worth at once; then it checkpoints, so a crash from now on has
// a record to start from.
func (s *Service) restoreBudget(ctx context.Context) error {
	if s.global == nil {
		return nil
	}
	b, err := s.store.Setting(ctx, budgetSetting)
	if err != nil {
		return err
	}
	queued, err := s.queuedCount(ctx)
	if err != nil {
		return err
	}
	var st budgetState
	if b != nil {
		if err := json.Unmarshal(b, &st); err != nil {
			s.opt.Logger.Warn("subscription: the saved confirmation budget is unreadable; starting full", "err", err)
			b = nil
		}
	}
	if b != nil {
		now := s.opt.Now()
		if st.At.After(now) {
			st.At = now // the clock went back: refill from now
		}
		burst := s.global.Burst()
		if spent := int(math.Ceil(float64(burst) - st.Tokens)); spent > 0 {
			s.global.ReserveN(st.At, min(spent, burst))
		}
		// Queued after the checkpoint: spent now, into debt if need be
		// (a reservation waits it out), a burst at most.
		if since := queued - st.Queued; since > 0 {
			s.global.ReserveN(now, int(min(since, int64(burst))))
		}
	}
	return s.checkpointAt(ctx, queued)
}

func (s *Service) queuedCount(ctx context.Context) (int64, error) {
	c, err := s.store.Counters(ctx)
	if err != nil {
		return 0, err
	}
	return c[herald.CounterConfirmsQueued], nil
}

// checkpointIfSpent saves the bucket when confirmations were queued since
// the last checkpoint. Otherwise the last one, refilled to now, is the
// bucket already: an idle herald writes nothing.
func (s *Service) checkpointIfSpent(ctx context.Context) error {
	queued, err := s.queuedCount(ctx)
	if err != nil || queued == s.checkpointed.Load() {
		return err
	}
	return s.checkpointAt(ctx, queued)
}

// checkpoint saves the bucket.
func (s *Service) checkpoint(ctx context.Context) error {
	if s.global == nil {
		return nil
	}
	queued, err := s.queuedCount(ctx)
	if err != nil {
		return err
	}
	return s.checkpointAt(ctx, queued)
}

// checkpointAt saves the bucket as it is, with the queued count read
// before (a confirmation queued in between is counted as spent twice at
// a restart: the safe side).
func (s *Service) checkpointAt(ctx context.Context, queued int64) error {
	now := s.opt.Now()
	b, _ := json.Marshal(budgetState{Tokens: s.global.TokensAt(now), At: now, Queued: queued})
	if err := s.store.PutSetting(ctx, budgetSetting, b); err != nil {
		return err
	}
	s.checkpointed.Store(queued)
	return nil
}

// admit decides how a sign-up's confirmation is queued: due at once with
// a token taken from the budget (returned, to give back if nothing is
// queued after all), or held in a lane. Sign-ups from the admin API and
// imports are not held: past the budget they are refused, which their
// caller is told (an import row says so).
func (s *Service) admit(r herald.SubscribeRequest) (herald.Hold, *globalToken, error) {
	if s.global == nil {
		return herald.HoldNone, nil, nil
	}
	public := r.Source == "form"
	if public && !r.Solved && s.ChallengeRequired() {
		return herald.HoldUnsolved, nil, nil
	}
	if public && s.held.budget.Load() > 0 {
		return herald.HoldBudget, nil, nil // behind the ones waiting already
	}
	tok, wait := s.takeGlobal()
	if wait == 0 {
		return herald.HoldNone, tok, nil
	}
	if public {
		return herald.HoldBudget, nil, nil
	}
	return 0, nil, tooManySignUps(wait)
}

// wake tells Run that something was held or the budget moved.
func (s *Service) wake() {
	select {
	case s.wakeup <- struct{}{}:
	default:
	}
}

// ChallengeRequired says whether public sign-ups are asked to solve the
// challenge now: always, never, or under "auto" while the budget is
// spent or confirmations wait for it.
func (s *Service) ChallengeRequired() bool {
	switch s.opt.Challenge {
	case ChallengeAlways:
		return true
	case ChallengeOff:
		return false
	}
	return s.underPressure()
}

// underPressure: sign-ups come faster than the budget.
func (s *Service) underPressure() bool {
	if s.global == nil {
		return false
	}
	return s.held.total() > 0 || s.global.TokensAt(s.opt.Now()) < 1
}

// Run releases held confirmations as the budget refills (lane by lane,
// oldest first), keeps the held counts in step with the store, and
// checkpoints the budget, until ctx is done.
func (s *Service) Run(ctx context.Context) error {
	log := s.opt.Logger.With("component", "confirm-budget")
	lastCheckpoint := s.opt.Now()
	for {
		wait := resyncEvery
		if d, err := s.release(ctx); err != nil {
			if ctx.Err() == nil {
				log.Error("releasing held confirmations", "err", err)
			}
			wait = time.Second
		} else if d > 0 {
			wait = min(wait, d)
		}
		if s.global != nil && s.opt.Now().Sub(lastCheckpoint) >= checkpointEvery {
			if err := s.checkpointIfSpent(ctx); err != nil && ctx.Err() == nil {
				log.Error("saving the confirmation budget", "err", err)
			}
			lastCheckpoint = s.opt.Now()
		}
		wait = min(wait, checkpointEvery)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			// The last word on the budget, for the next start.
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			err := s.checkpoint(cctx)
			cancel()
			if err != nil {
				log.Error("saving the confirmation budget", "err", err)
			}
			return nil
		case <-s.wakeup:
		case <-t.C:
		}
		t.Stop()
	}
}

// release syncs the held counts and lets go as many held confirmations
// as the budget has tokens for. It returns how long until the next token
// while some still wait (0: none wait).
func (s *Service) release(ctx context.Context) (time.Duration, error) {
	before := s.held.total()
	counts, err := s.store.HeldCounts(ctx)
	if err != nil {
		return 0, err
	}
	// Counts from the store win, unless a sign-up held one meanwhile (it
	// is then in the store too, and the next sync counts it).
	if s.held.total() == before {
		s.held.budget.Store(int64(counts[herald.HoldBudget]))
		s.held.unsolved.Store(int64(counts[herald.HoldUnsolved]))
	}
	waiting := counts[herald.HoldBudget] + counts[herald.HoldUnsolved]
	if waiting == 0 {
		return 0, nil
	}
	now := s.opt.Now()
	n := waiting
	var res *rate.Reservation
	if s.global != nil {
		n = min(n, int(s.global.TokensAt(now)))
		if n > 0 {
			res = s.global.ReserveN(now, n)
			if !res.OK() || res.DelayFrom(now) > 0 {
				res.CancelAt(now) // a sign-up took tokens meanwhile; next round
				n = 0
			}
		}
	}
	released := 0
	if n > 0 {
		if released, err = s.store.ReleaseHeld(ctx, n, herald.HoldUnsolved, now); err != nil {
			if res != nil {
				res.CancelAt(now)
			}
			return 0, err
		}
		if res != nil && released < n {
			// Fewer were there (erased meanwhile): keep only what went.
			res.CancelAt(now)
			if released > 0 {
				s.global.ReserveN(now, released)
			}
		}
		if released > 0 {
			s.opt.Logger.Info("subscription: held confirmations released", "released", released, "still_waiting", waiting-released)
			s.held.budget.Store(int64(max(0, counts[herald.HoldBudget]-released)))
			s.held.unsolved.Store(int64(max(0, counts[herald.HoldUnsolved]-max(0, released-counts[herald.HoldBudget]))))
			s.opt.Enqueued()
		}
	}
	if waiting-released == 0 {
		return 0, nil
	}
	return max(s.untilNextToken(now), 10*time.Millisecond), nil
}

// untilNextToken is how long until the budget holds one whole token.
func (s *Service) untilNextToken(now time.Time) time.Duration {
	if s.global == nil {
		return 0
	}
	missing := 1 - s.global.TokensAt(now)
	if missing <= 0 {
		return 0
	}
	return time.Duration(missing / float64(s.global.Limit()) * float64(time.Second))
}

// ConfirmationStats are the budget's figures: what waits and why.
func (s *Service) ConfirmationStats(ctx context.Context) (herald.ConfirmationStats, error) {
	counts, err := s.store.HeldCounts(ctx)
	if err != nil {
		return herald.ConfirmationStats{}, fmt.Errorf("subscription: %w", err)
	}
	st := herald.ConfirmationStats{
		WaitingByReason: map[string]int{},
		PerHour:         s.opt.GlobalPerHour,
		Challenge:       s.opt.Challenge,
		ChallengeActive: s.ChallengeRequired(),
	}
	for _, h := range herald.Holds {
		st.WaitingByReason[h.String()] = counts[h]
		st.Waiting += counts[h]
	}
	now := s.opt.Now()
	if s.global != nil {
		st.Available = max(0, int(s.global.TokensAt(now))) // below 0 after a restart: spent ahead
	}
	if st.Waiting == 0 {
		return st, nil
	}
	next := now.Add(s.untilNextToken(now)).Truncate(time.Second)
	st.NextRelease = &next
	st.Reason = fmt.Sprintf("Sign-ups came faster than security.confirmations_per_hour (%d an hour) allows: %d confirmation(s) wait in the outbox and go oldest first as the budget refills (the next at %s).",
		s.opt.GlobalPerHour, st.Waiting, next.UTC().Format("15:04:05 UTC"))
	if s.opt.GlobalPerHour == 0 {
		st.Reason = fmt.Sprintf("%d confirmation(s) were held while security.confirmations_per_hour capped them; with no cap now they go at once.", st.Waiting)
	}
	if n := counts[herald.HoldUnsolved]; n > 0 {
		st.Reason += fmt.Sprintf(" %d of them did not solve the sign-up challenge (a browser without script, or a bot) and go after the others.", n)
	}
	return st, nil
}

// StatsWith returns base's stats with the budget's figures added: the
// stats service of GET /api/v1/stats, the dashboard and /metrics.
func (s *Service) StatsWith(base herald.StatsService) herald.StatsService {
	return statsWith{base, s}
}

type statsWith struct {
	base herald.StatsService
	s    *Service
}

func (w statsWith) Stats(ctx context.Context) (*herald.Stats, error) {
	st, err := w.base.Stats(ctx)
	if err != nil {
		return nil, err
	}
	if st.Confirmations, err = w.s.ConfirmationStats(ctx); err != nil {
		return nil, err
	}
	return st, nil
}
