package digest

import (
	"context"
	"encoding/binary"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/herald-dev/herald"
	"github.com/herald-dev/herald/mailer"
)

// scanPage is how many readers one short read transaction returns.
const scanPage = 1000

// jobBatch is how many readers a deliverer takes at a time.
const jobBatch = 16

// job is one reader's share of a run.
type job struct {
	sub      *herald.Subscriber
	sel      Selection
	attempts int
	next     time.Time
	// gen is the store's subscriber generation from before sub was read
	// (0: unknown, read sub again before composing).
	gen uint64
}

// generations is what a store offers to skip the re-read before
// composing (store.DB.SubscriberGeneration): a number that changes after
// every commit that changed a reader's status, frequency or address, or
// erased a reader.
type generations interface{ SubscriberGeneration() uint64 }

// generation is the store's subscriber generation, 0 if it has none.
func (s *Service) generation() uint64 {
	if g, ok := s.store.(generations); ok {
		return g.SubscriberGeneration()
	}
	return 0
}

// execution is the state of one run while this process sends it.
type execution struct {
	s   *Service
	run *herald.Run
	ctx context.Context

	plan *Plan

	mu     sync.Mutex
	cands  map[uint64]*Candidates // new posts by the reader's cursor
	bodies map[setID]*body        // digest bodies by post list and language (see bodyFor)
	byKey  map[string]*body       // digest bodies by the posts' ids: one per distinct set
	single map[bodyKey]*body      // instant bodies by post id and language
	retry  []*job

	skipped atomic.Int64 // readers with nothing new: no email, nothing recorded
	planned atomic.Int64 // dry runs: readers who would get mail
	rec     *recorder
	carried carried
}

// execute sends run id to every reader it owes mail, then marks it done.
// When ctx ends it stops taking readers, lets sends in flight finish and
// record, and leaves the run unfinished for the next start to resume.
func (s *Service) execute(ctx context.Context, id uint64) {
	started := time.Now()
	now := s.opt.Now().UTC()
	run, err := s.store.UpdateRun(ctx, id, func(r *herald.Run) error {
		r.State = herald.RunRunning
		if r.StartedAt == nil {
			r.StartedAt = &now
		}
		// Skips with nothing to record (no new posts for the reader) are
		// not stored per reader: they are counted by the pass that ends
		// the run, and added then. Recorded ones (the cursor moved past
		// posts the reader did not want) the store counts as they go, and
		// keeps across a restart.
		return nil
	})
	if err != nil {
		s.log.Error("run: cannot start", "run", id, "err", err)
		return
	}
	e := &execution{s: s, run: run, ctx: ctx, plan: s.plan(run),
		cands: map[uint64]*Candidates{}, bodies: map[setID]*body{}, byKey: map[string]*body{}, single: map[bodyKey]*body{}}
	e.rec = newRecorder(s, run.ID, &e.carried)
	err = e.pass()
	if err == nil {
		err = e.retries()
	}
	e.rec.close()
	if rerr := e.rec.err(); rerr != nil && err == nil {
		err = rerr
	}
	if ctx.Err() != nil {
		s.log.Info("run: interrupted; it resumes at the next start", "run", id)
		return
	}
	final := herald.RunDone
	msg := ""
	if err != nil {
		final, msg = herald.RunFailed, err.Error()
		s.log.Error("run failed", "run", id, "err", err)
	}
	end := s.opt.Now().UTC()
	posts, subjects, _ := e.carried.take()
	run, uerr := s.store.UpdateRun(context.WithoutCancel(ctx), id, func(r *herald.Run) error {
		mergeCarried(r, posts, subjects)
		r.State = final
		r.FinishedAt = &end
		r.Error = msg
		r.Skipped += int(e.skipped.Load())
		r.PostSets = e.sets()
		switch {
		case r.DryRun:
			r.Total = int(e.planned.Load())
		case final == herald.RunDone:
			// Every reader it owed has an outcome: readers who left or
			// joined while it ran make the count at the start wrong.
			r.Total = r.Sent + r.Failed + r.Skipped
		}
		return nil
	})
	if uerr != nil {
		s.log.Error("run: cannot finish", "run", id, "err", uerr)
		return
	}
	s.log.Info("run finished", "run", id, "frequency", run.Frequency, "state", run.State, "total", run.Total,
		"sent", run.Sent, "failed", run.Failed, "skipped", run.Skipped, "retries", run.Retries,
		"post_sets", run.PostSets, "dur", time.Since(started).Round(time.Millisecond))
	if s.opt.OnRunFinished != nil {
		s.opt.OnRunFinished(run, time.Since(started))
	}
	s.archive(ctx, run)
}

// pass goes through every reader once, in id order, a page at a time.
func (e *execution) pass() error {
	s := e.s
	var total int
	if e.run.Slot == nil {
		counts, err := s.store.CountSubscribers(e.ctx)
		if err != nil {
			return fmt.Errorf("digest: count readers: %w", err)
		}
		total = counts[herald.StatusConfirmed][e.run.Frequency]
	} else {
		// A local-time slot is for the readers of its zones only.
		zs, err := s.zonesOf(e.ctx, e.run.Frequency)
		if err != nil {
			return err
		}
		for _, z := range zs {
			if slices.Contains(e.run.Zones, z.name) {
				total += z.readers
			}
		}
	}
	if _, err := s.store.UpdateRun(e.ctx, e.run.ID, func(r *herald.Run) error { r.Total = total; return nil }); err != nil {
		return fmt.Errorf("digest: run %d: %w", e.run.ID, err)
	}
	// Readers go to the deliverers in small batches: handing them over one
	// by one woke the scan for every reader taken off a full queue.
	jobs := make(chan []*job, 16)
	var wg sync.WaitGroup
	for range s.deliverers() {
		wg.Go(func() {
			var buf []byte // one message buffer per goroutine, reused
			for batch := range jobs {
				for _, j := range batch {
					e.deliver(j, &buf)
				}
			}
		})
	}
	var after uint64
	var scanErr error
	batch := make([]*job, 0, jobBatch)
	flush := func() bool {
		if len(batch) == 0 {
			return true
		}
		select {
		case jobs <- batch:
			batch = make([]*job, 0, jobBatch)
			return true
		case <-e.ctx.Done():
			return false
		}
	}
loop:
	for e.ctx.Err() == nil {
		gen := s.generation() // before the read, so a change after it shows
		subs, err := s.store.ScanSubscribers(e.ctx, after, scanPage)
		if err != nil {
			scanErr = fmt.Errorf("digest: scan readers: %w", err)
			break
		}
		if len(subs) == 0 {
			break
		}
		after = subs[len(subs)-1].ID
		for _, sub := range subs {
			if !e.plan.concerns(sub) {
				continue // cheap: most readers of another frequency stop here
			}
			sel, err := e.selectFor(sub)
			if err != nil {
				scanErr = err
				break loop
			}
			if !sel.Owed {
				continue
			}
			if len(sel.Posts) == 0 {
				if sel.Moves(sub) && !e.run.DryRun {
					e.skip(sub, sel) // past posts they did not want
				} else {
					e.skipped.Add(1)
				}
				continue
			}
			if e.run.DryRun {
				e.planned.Add(1)
				e.wouldCarry(sel.Posts)
				continue
			}
			batch = append(batch, &job{sub: sub, sel: sel, gen: gen})
			if len(batch) == jobBatch && !flush() {
				break loop
			}
		}
		// A page's last readers go now, not with the next page's.
		if !flush() {
			break
		}
	}
	close(jobs)
	wg.Wait()
	return scanErr
}

// wouldCarry notes what a dry run would send a reader with posts: one
// email with them all, or, for instant readers, one email per post.
func (e *execution) wouldCarry(posts []*herald.Post) {
	if e.run.Frequency != herald.Instant {
		e.carried.add(posts, e.s.render.Subject(posts))
		return
	}
	for _, p := range posts {
		e.carried.add([]*herald.Post{p}, e.s.render.Subject([]*herald.Post{p}))
	}
}

// deliverers is how many readers are worked on at once: twice the
// connections, so that while one goroutine composes its next email
// another has a message ready for every connection, and no connection
// waits for the CPU between two messages. The transport's pool still
// bounds the sends in flight (see mailer.SMTPConfig.Connections).
func (s *Service) deliverers() int { return 2 * s.opt.Workers }

// sets counts the distinct digests rendered.
func (e *execution) sets() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.byKey) + len(e.single)
}

// selectFor is Select on the candidates after sub's cursor.
func (e *execution) selectFor(sub *herald.Subscriber) (Selection, error) {
	c, err := e.candidates(sub.Cursor)
	if err != nil {
		return Selection{}, err
	}
	return Select(e.plan, sub, c), nil
}

// candidates memoises the posts after a cursor: readers who got the last
// digest together share one list, and, with the same topics, one body.
func (e *execution) candidates(cursor uint64) (*Candidates, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if c, ok := e.cands[cursor]; ok {
		return c, nil
	}
	ps, err := e.s.newPosts(e.ctx, cursor, e.run.Cutoff)
	if err != nil {
		return nil, err
	}
	c := NewCandidates(ps, e.plan.Topics)
	e.cands[cursor] = c
	return c, nil
}

// bodyKey names an instant body: readers of one post in one language
// share it.
type bodyKey struct {
	id   uint64
	lang string
}

// skip records that a reader got no email from this run, their cursor
// moved past posts they did not want.
func (e *execution) skip(sub *herald.Subscriber, sel Selection) {
	e.rec.add(herald.Delivery{RunID: e.run.ID, SubscriberID: sub.ID, Cursor: sel.Cursor, Outcome: herald.OutcomeSkipped,
		Slot: sel.Slot, EndPause: sel.EndPause, At: e.s.opt.Now().UTC()})
}

// setID names a post list by where it is, in one language: the lists
// readers share (see Candidates) are the same slice, so most readers
// find their body without building a key.
type setID struct {
	first **herald.Post
	n     int
	lang  string
}

// bodyFor renders a digest once per distinct set of posts and language.
func (e *execution) bodyFor(posts []*herald.Post, lang string) (*body, error) {
	id := setID{&posts[0], len(posts), lang}
	e.mu.Lock()
	defer e.mu.Unlock()
	if b := e.bodies[id]; b != nil {
		return b, nil
	}
	key := make([]byte, 0, len(lang)+1+8*len(posts))
	key = append(append(key, lang...), 0)
	for _, p := range posts {
		key = binary.AppendUvarint(key, p.ID)
	}
	b := e.byKey[string(key)]
	if b == nil {
		r, err := e.s.render.Render(posts, e.run.Frequency, false, lang)
		if err != nil {
			return nil, err
		}
		b = e.s.newBody(r)
		e.byKey[string(key)] = b
	}
	e.bodies[id] = b
	return b, nil
}

func (e *execution) singleFor(p *herald.Post, lang string) (*body, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	k := bodyKey{p.ID, lang}
	if b := e.single[k]; b != nil {
		return b, nil
	}
	r, err := e.s.render.Render([]*herald.Post{p}, herald.Instant, false, lang)
	if err != nil {
		return nil, err
	}
	b := e.s.newBody(r)
	e.single[k] = b
	return b, nil
}

// deliver sends one reader's email(s) and hands the outcome to the
// recorder. A temporary failure goes to the retry list.
//
// buf is the goroutine's message buffer: each email is built in it, and
// it is free again once Send returned (no transport keeps the message).
func (e *execution) deliver(j *job, buf *[]byte) {
	s := e.s
	// An unsubscribe is final at once: nothing is composed for an address
	// after it left. The record read with the page is still current if no
	// reader's status, frequency or address changed, and none was erased,
	// since (the generation says so; the cursor and run id only our own
	// recorder moves, after this). Otherwise, read the reader again.
	if e.ctx.Err() != nil {
		return // shutting down: start no new email (the run resumes later)
	}
	sub := j.sub
	if j.gen == 0 || s.generation() != j.gen {
		fresh, err := s.store.SubscriberByID(e.ctx, j.sub.ID)
		switch {
		case herald.ErrorCode(err) == herald.ENOTFOUND:
			return // erased meanwhile: the run owes them nothing
		case err != nil:
			// Neither sent nor skipped: the run cannot say it reached
			// everyone, so it ends failed with this reason.
			e.rec.fail(fmt.Errorf("digest: read reader %d again: %w", j.sub.ID, err))
			return
		}
		// The store may be behind what this run sent (the recorder writes
		// outcomes after the sends), or ahead of this job (an earlier try
		// got through): the later cursor is where the reader stands.
		if j.sub.Cursor > fresh.Cursor {
			cp := *fresh
			cp.Cursor = j.sub.Cursor
			fresh = &cp
		}
		// Chosen again on the fresh record: the reader may have left,
		// paused, or changed frequency, zone or topics meanwhile.
		sel, err := e.selectFor(fresh)
		if err != nil {
			e.rec.fail(err)
			return
		}
		if !sel.Owed {
			return
		}
		if len(sel.Posts) == 0 {
			if sel.Moves(fresh) {
				e.skip(fresh, sel)
			}
			return // or an earlier try got through, and was recorded
		}
		sub, j.sel = fresh, sel
	}
	j.sub = sub
	if e.run.Frequency == herald.Instant {
		e.deliverSingles(j, buf)
		return
	}
	r, err := e.bodyFor(j.sel.Posts, j.sub.Language)
	if err != nil {
		e.rec.fail(err)
		return
	}
	msg, err := s.compose(r, sub, s.messageID(e.run.ID, sub.ID, 0), s.opt.Now(), buf)
	if err != nil {
		// The reader's address or name can't go into a header: fail them,
		// not the run.
		e.rec.add(herald.Delivery{RunID: e.run.ID, SubscriberID: sub.ID, Outcome: herald.OutcomeFailed, Error: err.Error(), At: s.opt.Now().UTC()})
		return
	}
	err = e.send(msg)
	if err == nil && r.noted.CompareAndSwap(false, true) {
		e.carried.add(j.sel.Posts, r.r.Subject)
	}
	e.outcome(j, err, herald.Delivery{RunID: e.run.ID, SubscriberID: sub.ID, Cursor: j.sel.Cursor, Slot: j.sel.Slot, EndPause: j.sel.EndPause}, herald.KindDigest)
}

// deliverSingles sends an instant reader each post on its own, moving the
// cursor after each.
func (e *execution) deliverSingles(j *job, buf *[]byte) {
	s := e.s
	posts := j.sel.Posts
	for i, p := range posts {
		r, err := e.singleFor(p, j.sub.Language)
		if err != nil {
			e.rec.fail(err)
			return
		}
		msg, err := s.compose(r, j.sub, s.messageID(e.run.ID, j.sub.ID, p.ID), s.opt.Now(), buf)
		if err != nil {
			e.rec.add(herald.Delivery{RunID: e.run.ID, SubscriberID: j.sub.ID, Outcome: herald.OutcomeFailed, Error: err.Error(), At: s.opt.Now().UTC()})
			return
		}
		err = e.send(msg)
		partial := i < len(posts)-1
		d := herald.Delivery{RunID: e.run.ID, SubscriberID: j.sub.ID, Cursor: p.ID, Partial: partial}
		if !partial {
			// The last one takes the reader past the posts after it they
			// did not want, too.
			d.Cursor, d.Slot, d.EndPause = j.sel.Cursor, j.sel.Slot, j.sel.EndPause
		}
		if err == nil && r.noted.CompareAndSwap(false, true) {
			e.carried.add([]*herald.Post{p}, r.r.Subject)
		}
		if err != nil {
			rest := &job{sub: j.sub, sel: j.sel, attempts: j.attempts}
			rest.sel.Posts = posts[i:]
			e.outcome(rest, err, d, herald.KindInstant)
			return
		}
		e.outcome(j, nil, d, herald.KindInstant)
		if partial {
			// Keep the record in step, so a retry of the rest starts here.
			j.sub.Cursor = p.ID
		}
	}
}

// send hands a message to the transport. In-flight sends are not cut off
// by shutdown: they get their own deadline, so a message the server took
// is also recorded as taken.
func (e *execution) send(m *herald.Message) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(e.ctx), 2*time.Minute)
	defer cancel()
	err := e.s.tr.Send(ctx, m)
	if e.s.opt.OnResult != nil {
		kind := herald.KindDigest
		if e.run.Frequency == herald.Instant {
			kind = herald.KindInstant
		}
		e.s.opt.OnResult(kind, err)
	}
	return err
}

func (e *execution) outcome(j *job, err error, d herald.Delivery, kind herald.MessageKind) {
	d.At = e.s.opt.Now().UTC()
	switch {
	case err == nil:
		d.Outcome = herald.OutcomeSent
		e.rec.add(d)
	case herald.IsPermanent(err):
		d.Outcome, d.Error, d.Permanent, d.Partial = herald.OutcomeFailed, err.Error(), true, false
		d.Cursor = 0 // a failure never moves the cursor
		e.s.log.Warn("run: permanent failure", "run", e.run.ID, "to", j.sub.Email, "err", err)
		e.rec.add(d)
	default:
		j.attempts++
		j.next = e.s.opt.Now().Add(mailer.Backoff(e.s.opt.RetryBackoff, e.s.opt.MaxRetryBackoff, j.attempts))
		j.gen = 0 // a retry reads the reader again
		e.s.log.Info("run: temporary failure; will retry", "run", e.run.ID, "to", j.sub.Email, "attempt", j.attempts, "err", err)
		e.rec.retried()
		e.mu.Lock()
		e.retry = append(e.retry, j)
		e.mu.Unlock()
	}
}

// retries keeps trying readers whose email failed for a temporary reason
// until each goes, fails for good, or the process stops (then the run
// resumes at the next start).
func (e *execution) retries() error {
	for {
		e.mu.Lock()
		pending := e.retry
		e.retry = nil
		e.mu.Unlock()
		if len(pending) == 0 {
			return nil
		}
		soonest := pending[0].next
		for _, j := range pending {
			if j.next.Before(soonest) {
				soonest = j.next
			}
		}
		if wait := soonest.Sub(e.s.opt.Now()); wait > 0 {
			select {
			case <-e.ctx.Done():
				return nil
			case <-time.After(wait):
			}
		}
		jobs := make(chan *job)
		var wg sync.WaitGroup
		for range e.s.deliverers() {
			wg.Go(func() {
				var buf []byte
				for j := range jobs {
					e.deliver(j, &buf)
				}
			})
		}
		now := e.s.opt.Now()
		var later []*job
		for _, j := range pending {
			if j.next.After(now) || e.ctx.Err() != nil {
				later = append(later, j)
				continue
			}
			jobs <- j
		}
		close(jobs)
		wg.Wait()
		e.mu.Lock()
		e.retry = append(e.retry, later...)
		e.mu.Unlock()
		if e.ctx.Err() != nil {
			return nil
		}
	}
}

// recordWindow is how long the recorder gathers outcomes before a commit
// (the 10ms bbolt's Batch waited before, when it did the gathering).
const recordWindow = 10 * time.Millisecond

// recorder collects outcomes from the senders and writes them in batches,
// so the send goroutines never wait on an fsync. An outcome is written
// within recordWindow and a commit of the SMTP server's answer; a crash in
// that window makes it one of the "in flight" emails that may go again.
type recorder struct {
	s     *Service
	runID uint64
	in    chan herald.Delivery
	done  chan struct{}

	mu       sync.Mutex
	firstErr error
	retries  int
	// carried is the run's record of posts and subjects, merged into the
	// stored run with each batch of outcomes when it grew.
	carried *carried
}

func newRecorder(s *Service, runID uint64, c *carried) *recorder {
	r := &recorder{s: s, runID: runID, carried: c, in: make(chan herald.Delivery, 4096), done: make(chan struct{})}
	go r.loop()
	return r
}

func (r *recorder) add(d herald.Delivery) { r.in <- d }

func (r *recorder) retried() {
	r.mu.Lock()
	r.retries++
	r.mu.Unlock()
}

func (r *recorder) fail(err error) {
	r.mu.Lock()
	if r.firstErr == nil {
		r.firstErr = err
	}
	r.mu.Unlock()
}

func (r *recorder) err() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.firstErr
}

func (r *recorder) close() {
	close(r.in)
	<-r.done
}

func (r *recorder) loop() {
	defer close(r.done)
	batch := make([]herald.Delivery, 0, 1024)
	flush := func() {
		r.mu.Lock()
		retries := r.retries
		r.retries = 0
		r.mu.Unlock()
		if len(batch) == 0 && retries == 0 {
			return
		}
		// Recording must outlive a shutdown: the mail has gone.
		ctx := context.Background()
		for attempt := 0; ; attempt++ {
			err := r.s.store.RecordDeliveries(ctx, r.s.opt.BounceLimit, batch...)
			if err == nil {
				break
			}
			if attempt >= 5 {
				r.fail(fmt.Errorf("digest: record deliveries: %w", err))
				break
			}
			time.Sleep(time.Duration(attempt+1) * 100 * time.Millisecond)
		}
		posts, subjects, grew := r.carried.take()
		if retries > 0 || grew {
			_, err := r.s.store.UpdateRun(ctx, r.runID, func(run *herald.Run) error {
				run.Retries += retries
				mergeCarried(run, posts, subjects)
				return nil
			})
			if err != nil {
				r.fail(fmt.Errorf("digest: record retries and posts: %w", err))
			}
		}
		batch = batch[:0]
	}
	// Group commit: take one outcome, then whatever else comes within
	// recordWindow (or until the batch is full), and write them together.
	// A commit costs the same for one outcome as for hundreds (the pages
	// it rewrites, two fsyncs), so a short window saves most of that at a
	// run's pace; the senders never wait for it.
	for {
		d, ok := <-r.in
		if !ok {
			flush()
			return
		}
		batch = append(batch, d)
		// Outcomes already waiting: the recorder is behind, write at once.
		// Otherwise sleep out the window rather than wake for every
		// outcome; the channel holds what comes meanwhile (a run sends far
		// fewer than cap(r.in) emails in recordWindow).
		if len(r.in) == 0 {
			time.Sleep(recordWindow)
		}
	gather:
		for len(batch) < cap(batch) {
			select {
			case d, ok := <-r.in:
				if !ok {
					flush()
					return
				}
				batch = append(batch, d)
			default:
				break gather
			}
		}
		flush()
	}
}
