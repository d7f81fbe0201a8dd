package subscription

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/herald-dev/herald"
	"github.com/herald-dev/herald/store"
	"github.com/herald-dev/herald/templates"
)

// due lists the addresses of the due confirmations, in the sender's order.
func (f *fixture) due(t *testing.T) []string {
	t.Helper()
	var out []string
	for _, m := range f.outbox(t) {
		out = append(out, m.To)
	}
	return out
}

func (f *fixture) held(t *testing.T) map[herald.Hold]int {
	t.Helper()
	c, err := f.db.HeldCounts(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (f *fixture) sub(t *testing.T, email string, solved bool) {
	t.Helper()
	if _, err := f.svc.Subscribe(context.Background(), herald.SubscribeRequest{Email: email, Source: "form", Solved: solved}); err != nil {
		t.Fatalf("subscribe %s: %v", email, err)
	}
}

// TestBudgetDelaysNeverRefuses: past confirmations_per_hour a public
// sign-up is stored and answered; its confirmation waits held and goes,
// oldest first, as the budget refills. The per-address limit counts the
// held ones, so a victim never gets more. Admin and import sign-ups are
// still refused past the cap (their caller is told).
func TestBudgetDelaysNeverRefuses(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, func(o *Options) { o.GlobalPerHour = 6; o.Challenge = ChallengeOff })
	for i := range 6 {
		f.sub(t, fmt.Sprintf("early%d@example.org", i), false)
	}
	for _, e := range []string{"late1@example.org", "victim@example.org", "late2@example.org"} {
		f.sub(t, e, false)
	}
	for range 5 {
		f.sub(t, "victim@example.org", false) // a bomber, from many IPs
	}
	if n := len(f.due(t)); n != 6 {
		t.Fatalf("%d due, want 6 (the budget)", n)
	}
	if h := f.held(t); h[herald.HoldBudget] != 5 {
		t.Fatalf("held %v, want 5: late1, victim ×3 (its per-address limit), late2", h)
	}
	if s := f.get(t, "late2@example.org"); s.Status != herald.StatusPending {
		t.Fatalf("a held sign-up is %q, want pending (stored)", s.Status)
	}
	st, err := f.svc.ConfirmationStats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Waiting != 5 || st.WaitingByReason["budget"] != 5 || st.Reason == "" || st.NextRelease == nil || st.Available != 0 {
		t.Fatalf("stats %+v", st)
	}
	if _, err := f.svc.Subscribe(ctx, herald.SubscribeRequest{Email: "admin-added@example.org", Source: "api"}); herald.ErrorCode(err) != herald.ERATELIMIT {
		t.Fatalf("an admin sign-up past the cap: %v, want ERATELIMIT", err)
	}

	// Nothing refilled yet: nothing is released.
	if _, err := f.svc.release(ctx); err != nil {
		t.Fatal(err)
	}
	if n := len(f.due(t)); n != 6 {
		t.Fatalf("released without budget: %d due", n)
	}
	// 6 an hour is one per 10 minutes: 25 minutes free two.
	f.clock.Add(25 * time.Minute)
	wait, err := f.svc.release(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got := f.due(t)[6:]
	if !slices.Equal(got, []string{"late1@example.org", "victim@example.org"}) {
		t.Fatalf("released %v, want the two oldest", got)
	}
	if wait <= 0 || wait > 10*time.Minute {
		t.Fatalf("next release in %v, want within the next 10 minutes", wait)
	}
	f.clock.Add(time.Hour)
	if _, err := f.svc.release(ctx); err != nil {
		t.Fatal(err)
	}
	if h := f.held(t); h[herald.HoldBudget] != 0 {
		t.Fatalf("still held after an hour: %v", h)
	}
	victim := 0
	for _, e := range f.due(t) {
		if e == "victim@example.org" {
			victim++
		}
	}
	if victim != 3 {
		t.Fatalf("the victim gets %d confirmations, want 3 (the per-address limit)", victim)
	}
	if st, _ := f.svc.ConfirmationStats(ctx); st.Waiting != 0 || st.Reason != "" || st.NextRelease != nil {
		t.Fatalf("stats after: %+v", st)
	}
}

// TestBudgetSolvedGoFirst: asked for the challenge, a sign-up that
// solved it waits in the first lane, one that did not (no script) in the
// second; under "always" with budget to spare the unsolved one still goes
// at the next release, and under "auto" the challenge is asked only while
// the budget is spent or confirmations wait.
func TestBudgetSolvedGoFirst(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, func(o *Options) { o.GlobalPerHour = 2; o.Challenge = ChallengeAuto })
	if f.svc.ChallengeRequired() {
		t.Fatal("auto asks for the challenge with the budget untouched")
	}
	f.sub(t, "a@example.org", false)
	f.sub(t, "b@example.org", false)
	if !f.svc.ChallengeRequired() {
		t.Fatal("auto does not ask for the challenge with the budget spent")
	}
	f.sub(t, "noscript1@example.org", false)
	f.sub(t, "solver1@example.org", true)
	f.sub(t, "noscript2@example.org", false)
	f.sub(t, "solver2@example.org", true)
	if h := f.held(t); h[herald.HoldBudget] != 2 || h[herald.HoldUnsolved] != 2 {
		t.Fatalf("held %v", h)
	}
	f.clock.Add(3 * time.Hour)
	if _, err := f.svc.release(ctx); err != nil {
		t.Fatal(err)
	}
	if got := f.due(t)[2:]; !slices.Equal(got, []string{"solver1@example.org", "solver2@example.org"}) {
		t.Fatalf("released %v, want the solved ones first", got)
	}
	f.clock.Add(3 * time.Hour)
	if _, err := f.svc.release(ctx); err != nil {
		t.Fatal(err)
	}
	if got := f.due(t)[4:]; !slices.Equal(got, []string{"noscript1@example.org", "noscript2@example.org"}) {
		t.Fatalf("then %v", got)
	}
	if !f.svc.ChallengeRequired() {
		t.Fatal("auto stopped asking with the budget just spent on the held ones")
	}
	f.clock.Add(time.Hour)
	if f.svc.ChallengeRequired() {
		t.Fatal("auto still asks once the budget refilled and nothing waits")
	}

	always := newFixture(t, func(o *Options) { o.GlobalPerHour = 100; o.Challenge = ChallengeAlways })
	always.sub(t, "noscript@example.org", false)
	if h := always.held(t); h[herald.HoldUnsolved] != 1 {
		t.Fatalf("always, unsolved: held %v", h)
	}
	if _, err := always.svc.release(ctx); err != nil {
		t.Fatal(err)
	}
	if got := always.due(t); !slices.Equal(got, []string{"noscript@example.org"}) {
		t.Fatalf("always, budget to spare: due %v, want the unsolved one released at once", got)
	}
	// Off: never asked, nothing unsolved.
	off := newFixture(t, func(o *Options) { o.GlobalPerHour = 1; o.Challenge = ChallengeOff })
	off.sub(t, "x@example.org", false)
	off.sub(t, "y@example.org", false)
	if off.svc.ChallengeRequired() || off.held(t)[herald.HoldUnsolved] != 0 || off.held(t)[herald.HoldBudget] != 1 {
		t.Fatalf("off: required %v, held %v", off.svc.ChallengeRequired(), off.held(t))
	}
}

// TestBudgetSurvivesRestart: the held confirmations and the budget spent
// are kept: a herald started again on the database, even after a crash
// that lost every checkpoint since its start, does not send the held ones
// at once with a fresh hour's budget, and sends them as it refills.
func TestBudgetSurvivesRestart(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, func(o *Options) { o.GlobalPerHour = 4; o.Challenge = ChallengeOff })
	for i := range 6 {
		f.sub(t, fmt.Sprintf("r%d@example.org", i), false)
	}
	// A crash: no checkpoint after the spending (New wrote the one of a
	// full budget at the start).

	tpl, err := templates.Load()
	if err != nil {
		t.Fatal(err)
	}
	secret, _ := LoadSecret(ctx, f.db, "")
	tokens, _ := NewTokens(secret, f.clock.Now)
	again, err := New(f.db, tokens, tpl, Options{
		SiteName: "Test Blog", SiteURL: "https://blog.example.org", BaseURL: "https://news.example.org",
		From: "Test Blog <digest@example.org>", GlobalPerHour: 4, Challenge: ChallengeOff, Now: f.clock.Now,
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := again.release(ctx); err != nil {
		t.Fatal(err)
	}
	if n := len(f.due(t)); n != 4 {
		t.Fatalf("after a restart %d due, want still 4 (the budget was spent)", n)
	}
	if _, err := again.Subscribe(ctx, herald.SubscribeRequest{Email: "after@example.org"}); err != nil {
		t.Fatal(err)
	}
	if h := f.held(t); h[herald.HoldBudget] != 3 {
		t.Fatalf("held after a restart %v, want 3 (the two from before and the new one)", h)
	}
	f.clock.Add(31 * time.Minute) // 4 an hour: two tokens
	if _, err := again.release(ctx); err != nil {
		t.Fatal(err)
	}
	if got := f.due(t)[4:]; !slices.Equal(got, []string{"r4@example.org", "r5@example.org"}) {
		t.Fatalf("released after a restart %v", got)
	}
	var _ Store = (*store.DB)(nil)

	// Run checkpoints when it stops; a start after that begins from it.
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- again.Run(rctx) }()
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	var cp budgetState
	if b, err := f.db.Setting(ctx, budgetSetting); err != nil || json.Unmarshal(b, &cp) != nil {
		t.Fatalf("checkpoint: %s, %v", b, err)
	}
	if cp.Tokens >= 1 || !cp.At.Equal(f.clock.Now()) {
		t.Fatalf("checkpoint at shutdown %+v, want the budget spent, now", cp)
	}
}

// TestBudgetCheckpointOnlyWhenSpent: an idle herald writes no checkpoint;
// one that queued confirmations since the last does.
func TestBudgetCheckpointOnlyWhenSpent(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, func(o *Options) { o.GlobalPerHour = 10 })
	saved := func() budgetState {
		t.Helper()
		var cp budgetState
		if b, err := f.db.Setting(ctx, budgetSetting); err != nil || json.Unmarshal(b, &cp) != nil {
			t.Fatalf("checkpoint: %s, %v", b, err)
		}
		return cp
	}
	start := saved()
	f.clock.Add(time.Minute)
	if err := f.svc.checkpointIfSpent(ctx); err != nil {
		t.Fatal(err)
	}
	if cp := saved(); !cp.At.Equal(start.At) {
		t.Fatalf("an idle checkpoint was written: %+v, started %+v", cp, start)
	}
	f.sub(t, "one@example.org", false)
	if err := f.svc.checkpointIfSpent(ctx); err != nil {
		t.Fatal(err)
	}
	if cp := saved(); cp.Queued != start.Queued+1 || cp.Tokens >= 10 || !cp.At.Equal(f.clock.Now()) {
		t.Fatalf("after a confirmation: %+v", cp)
	}
}
