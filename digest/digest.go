// Package digest decides which posts go to whom and sends them: durable
// runs that survive a crash, the cron schedules, previews and test emails.
//
// A run is a row in the store with a cut-off (the newest post it may carry).
// Its reader list is implicit: every confirmed reader of its frequency whose
// LastRunID is below the run's id. A reader is marked done, and their
// cursor moved, in one transaction after the SMTP server accepted their
// email, never before. So a run cut off by a crash resumes where it was,
// and at most the emails in flight at that moment go out again — with the
// same Message-ID, which is derived from (run, reader).
package digest

import (
	"context"
	"fmt"
	"log/slog"
	"net/mail"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/herald-dev/herald"
	"github.com/herald-dev/herald/mailer"
	"github.com/herald-dev/herald/templates"
)

// Store is what the digest side needs of the database.
type Store interface {
	herald.SubscriberStore
	herald.PostStore
	herald.RunStore
	herald.SettingsStore
	herald.OutboxStore
}

// Links makes a reader's personal links.
type Links interface {
	UnsubscribeURL(id uint64) string
	PreferencesURL(id uint64) string
}

// Options configure a Service.
type Options struct {
	SiteName string
	SiteURL  string
	BaseURL  string
	From     string // "Name <addr>"
	// ReplyTo is mail.reply_to ("" = none).
	ReplyTo  string
	MaxPosts int
	// Content is what each post carries (digest.content).
	Content Content
	// Workers is how many emails are sent at once (match smtp.connections);
	// twice as many readers are worked on, so the next emails are composed
	// while these go (see deliverers).
	Workers     int
	BounceLimit int
	// RetryBackoff is the first wait before retrying a reader whose email
	// failed for a temporary reason; it doubles up to MaxRetryBackoff.
	RetryBackoff    time.Duration
	MaxRetryBackoff time.Duration
	// Location and the cron expressions of the schedules ("" = none).
	Location *time.Location
	Daily    string
	Weekly   string
	// LocalTime: the daily and weekly schedules run in each reader's own
	// time zone (digest.local_time; see slots.go).
	LocalTime bool
	// Topics are the topics readers may choose (digest.topics); nil: none.
	Topics *herald.OfferedTopics
	// Clock, when set, is the time the schedules keep, and Now its Now:
	// the whole-process tests run herald on a faster one.
	Clock Clock
	// InstantDelay gathers posts found close together into one instant run.
	InstantDelay time.Duration
	Logger       *slog.Logger
	Now          func() time.Time
	// Enqueued wakes the outbox sender (test emails go through it).
	Enqueued func()
	// OnRunFinished and OnResult feed metrics; both may be nil.
	OnRunFinished func(r *herald.Run, d time.Duration)
	OnResult      func(kind herald.MessageKind, err error)
	// Archive, when set, gets a web copy of every finished daily and
	// weekly run that mailed someone (see archive.go).
	Archive Archive
	// Ready, when set, is called once Run has resumed the unfinished runs
	// and started those of schedules missed while herald was down (they
	// are under way: Wait waits for them).
	Ready func()
}

// Service runs digests.
type Service struct {
	store  Store
	tr     herald.Transport
	links  Links
	render *Renderer
	opt    Options
	log    *slog.Logger
	from   *mail.Address
	listID string

	mu       sync.Mutex
	active   map[herald.Frequency]uint64 // run id queued or in progress per frequency
	done     map[uint64]chan struct{}    // closed when that run's execution ends
	launched map[uint64]bool             // runs this process has executed or is executing
	// loop takes the runs StartRun creates while Run runs; loopStopped is
	// closed when Run's loop no longer takes them (both nil outside Run).
	loop        chan launchRequest
	loopStopped chan struct{}
	wg          sync.WaitGroup // background loops
	runs        sync.WaitGroup // run executions

	instant chan struct{}

	// queue holds the runs of each frequency waiting for the one under way
	// (local-time slots that fall due together, runs resumed at start).
	queue map[herald.Frequency][]*herald.Run
	// zones caches loaded time zones by name.
	zones sync.Map
	// schedules are the daily and weekly cron schedules, parsed once.
	schedules []schedule
}

// launchRequest hands a run to Run's loop; ack is closed once it is
// executing.
type launchRequest struct {
	run *herald.Run
	ack chan struct{}
}

// New returns a Service. It starts nothing: call Run.
func New(store Store, tr herald.Transport, links Links, tpl *templates.Set, opt Options) (*Service, error) {
	from, err := mail.ParseAddress(opt.From)
	if err != nil {
		return nil, fmt.Errorf("digest: mail.from %q: %w", opt.From, err)
	}
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	if opt.Clock != nil {
		opt.Now = opt.Clock.Now
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.Clock == nil {
		opt.Clock = realClock{}
	}
	if opt.Workers <= 0 {
		opt.Workers = 4
	}
	if opt.BounceLimit <= 0 {
		opt.BounceLimit = herald.DefaultBounceLimit
	}
	if opt.RetryBackoff <= 0 {
		opt.RetryBackoff = 30 * time.Second
	}
	if opt.MaxRetryBackoff < opt.RetryBackoff {
		opt.MaxRetryBackoff = max(opt.RetryBackoff, time.Hour)
	}
	if opt.Location == nil {
		opt.Location = time.UTC
	}
	if opt.InstantDelay <= 0 {
		opt.InstantDelay = 2 * time.Second
	}
	if opt.Enqueued == nil {
		opt.Enqueued = func() {}
	}
	opt.BaseURL = strings.TrimRight(opt.BaseURL, "/")
	schedules, err := parseSchedules(opt)
	if err != nil {
		return nil, err
	}
	domain := from.Address[strings.LastIndexByte(from.Address, '@')+1:]
	return &Service{
		schedules: schedules,
		store:     store, tr: tr, links: links, opt: opt,
		render:   NewRenderer(tpl, opt.SiteURL, opt.MaxPosts, opt.Content),
		log:      opt.Logger.With("component", "digest"),
		from:     from,
		listID:   listID(opt.SiteName, domain),
		active:   map[herald.Frequency]uint64{},
		done:     map[uint64]chan struct{}{},
		launched: map[uint64]bool{},
		instant:  make(chan struct{}, 1),
		queue:    map[herald.Frequency][]*herald.Run{},
	}, nil
}

// listID is an RFC 2919 List-Id: a phrase and a dotted id on our domain.
func listID(name, domain string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(name) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
		case b.Len() > 0 && !strings.HasSuffix(b.String(), "-"):
			b.WriteByte('-')
		}
	}
	id := strings.Trim(b.String(), "-")
	if id == "" {
		id = "digest"
	}
	phrase := strings.Map(func(r rune) rune {
		if r == '"' || r == '\\' || r < 0x20 {
			return -1
		}
		return r
	}, name)
	return fmt.Sprintf("%q <%s.%s>", phrase, id, domain)
}

// StartRun creates a durable run and has Run's loop send it, under Run's
// context. Outside Run (before it starts, after it stopped) the run waits
// in the store, queued, and the next Run resumes it.
func (s *Service) StartRun(ctx context.Context, freq herald.Frequency, trigger herald.Trigger, dryRun bool) (*herald.Run, error) {
	if !freq.Valid() {
		return nil, herald.Errorf(herald.EINVALID, "unknown frequency %q (want instant, daily or weekly)", freq).WithField("frequency")
	}
	for {
		s.mu.Lock()
		id := s.active[freq]
		if id == 0 {
			s.active[freq] = ^uint64(0) // reserved while the row is written
			s.mu.Unlock()
			break
		}
		finishing := s.done[id]
		s.mu.Unlock()
		// A run the store already calls done or failed is only finishing
		// up (metrics, the archive copy): the API has told the world it
		// ended, so the next run waits for that instead of a conflict.
		if finishing != nil && id != ^uint64(0) {
			if r, err := s.store.Run(ctx, id); err == nil && (r.State == herald.RunDone || r.State == herald.RunFailed) {
				select {
				case <-finishing:
					continue
				case <-ctx.Done():
					return nil, fmt.Errorf("digest: waiting for run %d to finish: %w", id, ctx.Err())
				}
			}
		}
		return nil, herald.Errorf(herald.ECONFLICT, "a %s run (id %d) is already in progress", freq, id)
	}
	run, err := s.createRun(ctx, freq, trigger, dryRun)
	s.mu.Lock()
	if err != nil {
		delete(s.active, freq)
		s.mu.Unlock()
		return nil, err
	}
	s.active[freq] = run.ID
	s.done[run.ID] = make(chan struct{})
	loop, stopped := s.loop, s.loopStopped
	s.mu.Unlock()
	if loop != nil {
		req := launchRequest{run: run, ack: make(chan struct{})}
		select {
		case loop <- req:
			<-req.ack
		case <-stopped:
		}
	}
	return run, nil
}

func (s *Service) createRun(ctx context.Context, freq herald.Frequency, trigger herald.Trigger, dryRun bool) (*herald.Run, error) {
	cutoff, err := s.store.LastPostID(ctx)
	if err != nil {
		return nil, fmt.Errorf("digest: %w", err)
	}
	run := &herald.Run{
		Frequency: freq, Trigger: trigger, DryRun: dryRun, State: herald.RunQueued,
		Cutoff: cutoff, CreatedAt: s.opt.Now().UTC(),
	}
	if err := s.store.CreateRun(ctx, run); err != nil {
		return nil, fmt.Errorf("digest: create run: %w", err)
	}
	s.log.Info("run created", "run", run.ID, "frequency", freq, "trigger", trigger, "dry_run", dryRun, "cutoff", cutoff)
	return run, nil
}

// launch executes run in the background under ctx (Run's);
// s.active[run.Frequency] is reserved for it by the caller. A run this
// process executes already is not started twice.
func (s *Service) launch(ctx context.Context, run *herald.Run) {
	s.mu.Lock()
	if s.launched[run.ID] {
		s.mu.Unlock()
		return
	}
	s.launched[run.ID] = true
	s.active[run.Frequency] = run.ID
	done := s.done[run.ID]
	if done == nil {
		done = make(chan struct{})
		s.done[run.ID] = done
	}
	s.mu.Unlock()
	s.runs.Go(func() {
		defer func() {
			s.mu.Lock()
			if s.active[run.Frequency] == run.ID {
				delete(s.active, run.Frequency)
			}
			delete(s.done, run.ID)
			// The next queued run of the frequency goes now (this goroutine
			// is still counted in s.runs, so Run's Wait waits for it too).
			var next *herald.Run
			if q := s.queue[run.Frequency]; len(q) > 0 && s.active[run.Frequency] == 0 && ctx.Err() == nil {
				next, s.queue[run.Frequency] = q[0], q[1:]
				s.active[run.Frequency] = next.ID
			}
			s.mu.Unlock()
			close(done)
			if next != nil {
				s.launch(ctx, next)
			}
		}()
		s.execute(ctx, run.ID)
	})
}

// enqueue has run executed under ctx (Run's) as soon as no other run of
// its frequency is under way: now, or after the ones queued before it.
func (s *Service) enqueue(ctx context.Context, run *herald.Run) {
	s.mu.Lock()
	if cur := s.active[run.Frequency]; cur != 0 && cur != run.ID {
		s.queue[run.Frequency] = append(s.queue[run.Frequency], run)
		s.mu.Unlock()
		return
	}
	s.active[run.Frequency] = run.ID
	s.mu.Unlock()
	s.launch(ctx, run)
}

// wait blocks until run id's execution in this process ends.
func (s *Service) wait(ctx context.Context, id uint64) {
	s.mu.Lock()
	ch := s.done[id]
	s.mu.Unlock()
	if ch == nil {
		return
	}
	select {
	case <-ch:
	case <-ctx.Done():
	}
}

var _ herald.DigestService = (*Service)(nil)

// RunByID returns a run; ENOTFOUND if none.
func (s *Service) RunByID(ctx context.Context, id uint64) (*herald.Run, error) {
	return s.store.Run(ctx, id)
}

// maxRunsScanned bounds how many runs one page of a filtered list reads:
// a page that found too few says where it stopped, and the next goes on.
const maxRunsScanned = 5000

// ListRuns returns a page of runs, newest first, and the Before of the
// next page (0: none). With f.SkipEmpty the runs that ended mailing
// nobody (dry runs, runs with nothing new for anyone) are left out.
func (s *Service) ListRuns(ctx context.Context, f herald.RunFilter) ([]*herald.Run, uint64, error) {
	limit := f.Limit
	if limit <= 0 {
		limit = 50
	}
	limit = min(limit, 1000)
	var out []*herald.Run
	before, scanned := f.Before, 0
	for {
		page := limit
		if f.SkipEmpty {
			page = 200
		}
		runs, err := s.store.ListRuns(ctx, page, before)
		if err != nil {
			return nil, 0, fmt.Errorf("digest: %w", err)
		}
		for i, r := range runs {
			if f.SkipEmpty && r.Empty() {
				continue
			}
			out = append(out, r)
			if len(out) == limit {
				if i == len(runs)-1 && len(runs) < page {
					return out, 0, nil // the last run there is
				}
				return out, r.ID, nil
			}
		}
		if len(runs) < page {
			return out, 0, nil
		}
		before = runs[len(runs)-1].ID
		if scanned += len(runs); scanned >= maxRunsScanned {
			return out, before, nil
		}
	}
}

// Wait blocks until every run this process is executing has ended.
func (s *Service) Wait() { s.runs.Wait() }

// NewPosts asks for an instant run soon.
func (s *Service) NewPosts() {
	select {
	case s.instant <- struct{}{}:
	default:
	}
}

// Run resumes unfinished runs, catches up on a missed schedule, and then
// runs the schedules and instant runs until ctx is done. In-flight sends
// finish; unfinished runs stay in the store and resume at the next start.
func (s *Service) Run(ctx context.Context) error {
	loop, stopped := make(chan launchRequest), make(chan struct{})
	s.mu.Lock()
	if s.loop != nil {
		s.mu.Unlock()
		return fmt.Errorf("digest: Run is running already")
	}
	s.loop, s.loopStopped = loop, stopped
	s.mu.Unlock()
	// Every run executes under ctx: the runs StartRun hands over, the
	// ones resumed, scheduled and instant. So ctx's end stops them all,
	// and so does Run's return (a failed start included).
	ctx, cancel := context.WithCancel(ctx)
	defer func() {
		cancel()
		s.wg.Wait()
		s.runs.Wait()
	}()
	s.wg.Go(func() {
		for {
			select {
			case <-ctx.Done():
				s.mu.Lock()
				s.loop, s.loopStopped = nil, nil
				close(stopped)
				s.mu.Unlock()
				return
			case req := <-loop:
				s.launch(ctx, req.run)
				close(req.ack)
			}
		}
	})
	if err := s.resume(ctx); err != nil {
		return err
	}
	sched, err := newScheduler(ctx, s)
	if err != nil {
		return err
	}
	if err := sched.catchUp(ctx); err != nil {
		s.log.Error("missed-run check failed", "err", err)
	}
	sched.start()
	s.wg.Go(func() { s.instantLoop(ctx) })
	s.log.Info("schedules started", "local_time", s.opt.LocalTime)
	if s.opt.Ready != nil {
		s.opt.Ready()
	}
	<-ctx.Done()
	sched.stop()
	return nil
}

// resume restarts runs a crash or a restart cut off.
func (s *Service) resume(ctx context.Context) error {
	runs, err := s.store.UnfinishedRuns(ctx)
	if err != nil {
		return fmt.Errorf("digest: unfinished runs: %w", err)
	}
	// Several unfinished runs of one frequency (local-time slots, or an
	// older process's) finish one after the other, oldest first; r may be
	// a run StartRun queued before Run began.
	for _, r := range runs {
		s.log.Info("resuming run", "run", r.ID, "frequency", r.Frequency, "state", r.State, "sent", r.Sent)
		s.enqueue(ctx, r)
	}
	return nil
}

// instantLoop starts an instant run after posts arrive, one at a time;
// posts that arrive during a run get the next one.
func (s *Service) instantLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.instant:
		}
		// Gather posts found together (several feeds, a burst of webhooks).
		select {
		case <-ctx.Done():
			return
		case <-time.After(s.opt.InstantDelay):
		}
		for {
			run, err := s.StartRun(ctx, herald.Instant, herald.TriggerPoll, false)
			if herald.ErrorCode(err) == herald.ECONFLICT {
				s.mu.Lock()
				cur := s.active[herald.Instant]
				s.mu.Unlock()
				s.wait(ctx, cur)
				if ctx.Err() != nil {
					return
				}
				continue
			} else if err != nil {
				s.log.Error("instant run failed to start", "err", err)
				break
			}
			s.wait(ctx, run.ID)
			break
		}
	}
}

// plan is what run decides for all its readers.
func (s *Service) plan(run *herald.Run) *Plan {
	p := &Plan{Frequency: run.Frequency, RunID: run.ID, Created: run.CreatedAt, Now: s.opt.Now(), Topics: s.opt.Topics}
	if run.Slot != nil {
		p.SiteZone = s.opt.Location.String()
		p.Slots = make(map[string]time.Time, len(run.Zones))
		for _, z := range run.Zones {
			if loc := s.location(z); loc != nil {
				p.Slots[z] = wallClock(*run.Slot, loc)
			}
		}
	}
	return p
}

// location loads a time zone once; nil if it does not exist (any more).
func (s *Service) location(name string) *time.Location {
	if name == s.opt.Location.String() {
		return s.opt.Location
	}
	if l, ok := s.zones.Load(name); ok {
		return l.(*time.Location)
	}
	_, loc, err := herald.ParseTimezone(name)
	if err != nil || loc == nil {
		s.log.Warn("unknown time zone; its readers wait for it to be fixed", "zone", name)
		return nil
	}
	s.zones.Store(name, loc)
	return loc
}

// messageID is the same for the same (run, reader[, post]): a resend after
// a crash carries the id of the first try.
func (s *Service) messageID(run, sub uint64, post uint64) string {
	parts := []string{"run", strconv.FormatUint(run, 10), "sub", strconv.FormatUint(sub, 10)}
	if post != 0 {
		parts = append(parts, "post", strconv.FormatUint(post, 10))
	}
	return mailer.NewMessageID(s.from.Address, parts...)
}

// body is a digest rendered once for every reader with the same posts,
// and the message template made from it: a reader's email is the
// template with their address, Message-ID and links filled in.
type body struct {
	r   *Rendered
	tpl *mailer.Template
	// err: the template could not be made (a subject that cannot be a
	// header); every reader of it fails with it, as Compose would fail them.
	err error
	// noted: its posts and subject are in the run's record of what it
	// carried; the first reader it reaches notes them, the rest need not
	// take the run's lock.
	noted atomic.Bool
}

func (s *Service) newBody(r *Rendered) *body {
	tpl, err := mailer.NewTemplate(&mailer.Email{
		From: s.opt.From, ReplyTo: s.opt.ReplyTo, Subject: r.Subject, HTML: r.HTML, Text: r.Text,
		Headers: map[string]string{
			"List-Unsubscribe":      "<" + unsubscribePlaceholder + ">",
			"List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
			"List-Id":               s.listID,
			"Precedence":            "bulk",
			"Auto-Submitted":        "auto-generated",
		},
	}, unsubscribePlaceholder, prefsPlaceholder)
	return &body{r: r, tpl: tpl, err: err}
}

// compose builds one reader's email from a shared body, in *buf (which
// keeps the grown buffer for the next one).
func (s *Service) compose(b *body, sub *herald.Subscriber, msgID string, now time.Time, buf *[]byte) (*herald.Message, error) {
	if b.err != nil {
		return nil, b.err
	}
	m, err := b.tpl.Compose(&mailer.Recipient{
		To: sub.Email, ToName: sub.Name, MessageID: msgID, Date: now,
		Values: []string{s.links.UnsubscribeURL(sub.ID), s.links.PreferencesURL(sub.ID)},
		Buf:    *buf,
	})
	if err == nil {
		*buf = m.Raw
		m.Kind = herald.KindDigest
		if b.r.Frequency == herald.Instant {
			m.Kind = herald.KindInstant
		}
	}
	return m, err
}

// newPosts returns the posts a reader at cursor has not had, up to cutoff.
func (s *Service) newPosts(ctx context.Context, cursor, cutoff uint64) ([]*herald.Post, error) {
	if cursor >= cutoff {
		return nil, nil
	}
	ps, err := s.store.PostsBetween(ctx, cursor, cutoff)
	if err != nil {
		return nil, fmt.Errorf("digest: posts: %w", err)
	}
	out := ps[:0]
	for _, p := range ps {
		if !p.Silent {
			out = append(out, p)
		}
	}
	return out, nil
}

// Preview renders what a reader would get if a run started now.
func (s *Service) Preview(ctx context.Context, email string) (string, bool, error) {
	e, err := herald.NormalizeEmail(email)
	if err != nil {
		return "", false, err
	}
	sub, err := s.store.SubscriberByEmail(ctx, e)
	if err != nil {
		return "", false, err
	}
	last, err := s.store.LastPostID(ctx)
	if err != nil {
		return "", false, fmt.Errorf("digest: %w", err)
	}
	ps, err := s.newPosts(ctx, sub.Cursor, last)
	if err != nil {
		return "", false, err
	}
	// What a run of the reader's frequency starting now would choose for
	// them (had they confirmed): their topics, their pause.
	now := s.opt.Now()
	as := *sub
	as.Status, as.LastRunID = herald.StatusConfirmed, 0
	sel := Select(&Plan{Frequency: sub.Frequency, RunID: 1, Created: now, Now: now, Topics: s.opt.Topics}, &as, NewCandidates(ps, s.opt.Topics))
	posts := sel.Posts
	if len(posts) == 0 {
		return "", false, nil
	}
	if sub.Frequency == herald.Instant {
		posts = posts[len(posts)-1:] // instant readers get posts one by one; show the newest
	}
	r, err := s.render.Render(posts, sub.Frequency, false, sub.Language)
	if err != nil {
		return "", false, err
	}
	html, _ := r.For(s.links.UnsubscribeURL(sub.ID), s.links.PreferencesURL(sub.ID))
	return html, true, nil
}

// latest is the newest posts, up to max_posts, in arrival order.
func (s *Service) latest(ctx context.Context) ([]*herald.Post, error) {
	latest, _, err := s.store.ListPosts(ctx, s.render.maxPosts, 0)
	if err != nil {
		return nil, fmt.Errorf("digest: %w", err)
	}
	// ListPosts is newest first; Render wants arrival order.
	posts := make([]*herald.Post, len(latest))
	for i, p := range latest {
		posts[len(latest)-1-i] = p
	}
	return posts, nil
}

// PreviewLatest renders a digest of the latest posts (the templates'
// sample posts when there are none yet) in language lang, as the admin
// UI shows the blog's look.
func (s *Service) PreviewLatest(ctx context.Context, lang string) (string, error) {
	posts, err := s.latest(ctx)
	if err != nil {
		return "", err
	}
	if len(posts) == 0 {
		out, err := s.render.tpl.Email(lang, "digest", templates.SampleEmail("digest"))
		if err != nil {
			return "", err
		}
		return out.HTML, nil
	}
	r, err := s.render.Render(posts, herald.Daily, false, lang)
	if err != nil {
		return "", err
	}
	html, _ := r.For(s.opt.BaseURL+"/", s.opt.BaseURL+"/")
	return html, nil
}

// testLookBack is how many of the latest posts a test digest for a
// choice of topics picks from.
const testLookBack = 200

// SendTest queues a sample digest of the latest posts to any address; with
// topics, of the latest posts a reader with those topics would get.
func (s *Service) SendTest(ctx context.Context, to string, topics []string) error {
	addr, err := herald.NormalizeEmail(to)
	if err != nil {
		return herald.Errorf(herald.EINVALID, "%s", herald.ErrorMessage(err)).WithField("to")
	}
	chosen, err := s.opt.Topics.Parse(topics)
	if err != nil {
		return err
	}
	mask := s.opt.Topics.Mask(chosen)
	n := s.render.maxPosts
	if mask != 0 {
		n = testLookBack
	}
	latest, _, err := s.store.ListPosts(ctx, n, 0)
	if err != nil {
		return fmt.Errorf("digest: %w", err)
	}
	// ListPosts is newest first; Render wants arrival order.
	var posts []*herald.Post
	for _, p := range latest {
		if len(posts) < s.render.maxPosts && herald.Wants(mask, s.opt.Topics.Mask(p.Categories)) {
			posts = append(posts, p)
		}
	}
	if len(posts) == 0 {
		if mask != 0 {
			return herald.Errorf(herald.ECONFLICT, "none of the latest posts is for these topics").WithField("topics")
		}
		return herald.Errorf(herald.ECONFLICT, "there are no posts yet to put in a test digest")
	}
	slices.Reverse(posts)
	r, err := s.render.Render(posts, herald.Daily, false, "")
	if err != nil {
		return err
	}
	// A test has no reader: its footer links lead to the subscribe page.
	html, text := r.For(s.opt.BaseURL+"/", s.opt.BaseURL+"/")
	now := s.opt.Now()
	m, err := mailer.Compose(&mailer.Email{
		From: s.opt.From, ReplyTo: s.opt.ReplyTo, To: addr, Subject: "[Test] " + r.Subject, HTML: html, Text: text,
		MessageID: mailer.NewMessageID(s.opt.From), Date: now, // a random one: tests are not resent
		Headers: map[string]string{"List-Id": s.listID},
	})
	if err != nil {
		return err
	}
	err = s.store.Enqueue(ctx, &herald.OutboxMessage{
		Kind: herald.KindTest, To: addr, MessageID: m.MessageID, Raw: m.Raw,
		CreatedAt: now, NextAttempt: now, ExpiresAt: now.Add(24 * time.Hour),
	})
	if err != nil {
		return fmt.Errorf("digest: queue test: %w", err)
	}
	s.opt.Enqueued()
	return nil
}
