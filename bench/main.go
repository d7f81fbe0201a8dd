// Command bench is herald's performance harness: it builds herald, runs
// it on a temp dir against an in-process SMTP sink, drives it over HTTP
// like an admin and a crowd of visitors would, and prints a table where
// every figure stands beside a limit measured in the same run on the same
// machine, as a ratio, so the machine's speed cancels out.
//
//	go run ./bench                 # the defaults: 100k readers, 1M for P2
//	go run ./bench -skip-big       # leave out the 1M-reader part
//
// See docs/performance.md for what each figure means.
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/herald-dev/herald"
)

type options struct {
	readers     int
	big         int
	skipBig     bool
	connections int
	p3Duration  time.Duration
	clients     int
	rawDuration time.Duration
	keep        bool
	profileDir  string
	profileSecs int
	only        string
	src         string
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == "raw-client" {
		os.Exit(rawClientMain(os.Args[2:]))
	}
	var o options
	flag.IntVar(&o.readers, "readers", 100000, "confirmed readers for P1 (and the small side of P2)")
	flag.IntVar(&o.big, "big", 1000000, "readers for the large side of P2, the 1M import and the startup figure")
	flag.BoolVar(&o.skipBig, "skip-big", false, "skip the large run (P2's second half, import, startup)")
	flag.IntVar(&o.connections, "connections", 4, "SMTP connections: herald's smtp.connections and the raw client's")
	flag.DurationVar(&o.p3Duration, "p3-duration", 20*time.Second, "how long each side of P3 is driven")
	flag.IntVar(&o.clients, "clients", 64, "concurrent clients for P3")
	flag.DurationVar(&o.rawDuration, "raw-duration", 6*time.Second, "how long each raw SMTP client of P1's limit pushes")
	flag.BoolVar(&o.keep, "keep", false, "keep the temp dir (databases, logs) and print where it is")
	flag.StringVar(&o.profileDir, "profile", "", "write CPU profiles of herald during the runs and P3 into this directory (through /debug/pprof)")
	flag.IntVar(&o.profileSecs, "profile-seconds", 10, "length of each CPU profile")
	flag.StringVar(&o.src, "src", "", "build herald from the module in this directory instead (e.g. a git worktree of an older commit, for before/after figures)")
	flag.StringVar(&o.only, "only", "", "run only these parts, comma-separated: p1, feed, p3, topics, relays, ses, big (big needs p1 for its ratios)")
	flag.Parse()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	if err := run(o, log, os.Stdout); err != nil {
		log.Error("bench failed", "err", err)
		os.Exit(1)
	}
}

// row is one line of the table.
type row struct {
	figure, herald, limit, ratio, goal, met string
}

type bench struct {
	o    options
	log  *slog.Logger
	dir  string
	bin  string
	sink *sink
	rows []row
	// notes are printed under the table.
	notes []string

	loadAtStart      string
	p2small          *memReport
	dbSmall          int64
	bareBytesPer100k float64
}

func (b *bench) add(r row) { b.rows = append(b.rows, r) }

func run(o options, log *slog.Logger, out io.Writer) (err error) {
	started := time.Now()
	root, err := moduleRoot()
	if err != nil {
		return err
	}
	if o.src != "" {
		root = o.src
	}
	dir, err := os.MkdirTemp("", "herald-bench-")
	if err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	if o.keep {
		log.Info("keeping the work dir", "dir", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	b := &bench{o: o, log: log, dir: dir, loadAtStart: loadAvg()}
	log.Info("building herald", "root", root)
	if b.bin, err = buildHerald(root, dir); err != nil {
		return err
	}
	if b.sink, err = newSink(); err != nil {
		return err
	}
	defer b.sink.Close()

	want := func(part string) bool {
		return o.only == "" || slices.Contains(strings.Split(o.only, ","), part)
	}
	var emptyStart time.Duration
	if want("p1") || want("big") {
		if emptyStart, err = b.p1p2Small(); err != nil {
			return err
		}
	}
	if want("feed") {
		if err := b.feedIngest(); err != nil {
			return err
		}
	}
	if want("p3") {
		if err := b.p3(); err != nil {
			return err
		}
	}
	if want("topics") {
		if err := b.topicsFigure(); err != nil {
			return err
		}
	}
	if want("relays") {
		if err := b.twoRelays(); err != nil {
			return err
		}
	}
	if want("ses") {
		if err := b.sesFigure(); err != nil {
			return err
		}
	}
	if !o.skipBig && want("big") {
		if err := b.big(emptyStart); err != nil {
			return err
		}
	}
	b.print(out, time.Since(started))
	return nil
}

// p1p2Small: P1 at o.readers, and the small side of P2. It returns the
// startup time on an empty database (the startup figure's limit).
func (b *bench) p1p2Small() (time.Duration, error) {
	o := b.o
	in, err := newInstance("p1", b.bin, b.dir, instanceConfig{SMTPPort: b.sink.port, Connections: o.connections})
	if err != nil {
		return 0, err
	}
	emptyStart, err := in.start()
	if err != nil {
		return 0, err
	}
	defer in.kill()
	b.log.Info("P1: importing readers", "n", o.readers)
	t0 := time.Now()
	if _, err := in.importCSV("p1r", o.readers); err != nil {
		return 0, err
	}
	importDur := time.Since(t0)
	b.log.Info("P1: imported", "n", o.readers, "dur", importDur.Round(time.Millisecond))
	// A fresh process for the run, so its peak RSS is the run's.
	if err := in.stop(); err != nil {
		return 0, err
	}
	if _, err := in.start(); err != nil {
		return 0, err
	}
	dbSmall := fileSize(in.dbPath())
	// Two herald runs (a new post each) and two runs of the limit, in
	// turns; each side's better one counts, so a stall from something else
	// on the machine costs neither side its figure.
	run, err := b.digestRun(in, o.readers)
	if err != nil {
		return 0, err
	}
	mem := run.mem // P2: the first run, in a fresh process
	sample := b.sink.takeSample()
	if len(sample) == 0 {
		return 0, fmt.Errorf("bench: the sink kept no sample message")
	}
	addr := fmt.Sprintf("127.0.0.1:%d", b.sink.port)
	b.log.Info("P1 limit: raw go-smtp client in its own process", "connections", o.connections, "message_bytes", len(sample), "dur", o.rawDuration)
	b.sink.reset()
	raw, err := rawSMTPProcess(b.dir, addr, "raw", o.connections, sample, o.rawDuration)
	if err != nil {
		return 0, err
	}
	run2, err := b.digestRun(in, o.readers)
	if err != nil {
		return 0, err
	}
	if err := in.stop(); err != nil {
		return 0, err
	}
	b.sink.reset()
	raw2, err := rawSMTPProcess(b.dir, addr, "raw", o.connections, sample, o.rawDuration)
	if err != nil {
		return 0, err
	}
	b.notes = append(b.notes, fmt.Sprintf("P1 rounds: herald %.0f and %.0f emails/s, raw client %.0f and %.0f msgs/s.", run.rate, run2.rate, raw.rate, raw2.rate))
	if run2.rate > run.rate {
		run = run2
	}
	if raw2.rate > raw.rate {
		raw = raw2
	}
	b.log.Info("P1 limit: raw go-smtp client in the sink's process", "dur", o.rawDuration)
	b.sink.reset()
	inproc, err := rawSMTP(addr, o.connections, sample, o.rawDuration)
	if err != nil {
		return 0, err
	}
	b.log.Info("P1 diagnostic: herald's SMTP transport alone, own process", "dur", o.rawDuration)
	b.sink.reset()
	tr, err := rawSMTPProcess(b.dir, addr, "transport", o.connections, sample, o.rawDuration)
	if err != nil {
		return 0, err
	}
	ratio := run.rate / raw.rate
	b.add(row{
		figure: fmt.Sprintf("P1 digest throughput, %s readers, %d SMTP connections", count(o.readers), o.connections),
		herald: fmt.Sprintf("%.0f emails/s (%s CPU/email)", run.rate, perOp(run.cpu, run.n)),
		limit: fmt.Sprintf("%.0f msgs/s (%s CPU/msg): raw go-smtp client in its own process, the same %d-byte message",
			raw.rate, perOp(raw.cpu, raw.n), len(sample)),
		ratio: fmt.Sprintf("%.2f", ratio), goal: "≥ 0.80", met: yes(ratio >= 0.8),
	})
	b.add(row{
		figure: "P1, against a raw client inside the sink's process",
		herald: fmt.Sprintf("%.0f emails/s", run.rate),
		limit:  fmt.Sprintf("%.0f msgs/s (no process boundary to cross: no client herald could be)", inproc),
		ratio:  fmt.Sprintf("%.2f", run.rate/inproc), goal: "(reported)",
	})
	b.add(row{
		figure: "P1 diagnostic: herald's SMTP pool alone (mailer.SMTPTransport, own process)",
		herald: fmt.Sprintf("%.0f msgs/s (%s CPU/msg)", tr.rate, perOp(tr.cpu, tr.n)),
		limit:  fmt.Sprintf("%.0f msgs/s (the raw client above)", raw.rate),
		ratio:  fmt.Sprintf("%.2f", tr.rate/raw.rate), goal: "(reported)",
	})
	b.p2small = mem
	b.add(row{
		figure: fmt.Sprintf("P2 peak Go heap, %s-reader run", count(o.readers)),
		herald: heapCell(mem),
		limit:  "—", ratio: "—", goal: "≤ 64 MB", met: yes(mem.HeapInuse <= 64<<20),
	})
	b.add(row{
		figure: fmt.Sprintf("P2 peak RSS (VmHWM), %s-reader run", count(o.readers)),
		herald: mb(mem.HWM), limit: "—", ratio: "—", goal: "(reported)", met: "",
	})
	b.add(row{
		figure: fmt.Sprintf("CSV import, %s rows (confirmed=true)", count(o.readers)),
		herald: fmt.Sprintf("%s (%.0f rows/s)", dur(importDur), float64(o.readers)/importDur.Seconds()),
		limit:  "(see the 1M row)", ratio: "—", goal: "(reported)",
	})
	b.dbSmall = dbSmall
	return emptyStart, nil
}

// runStats is one digest run as the harness saw it.
type runStats struct {
	n    int
	rate float64       // emails per second, trigger to done
	cpu  time.Duration // herald's CPU time in that while
	mem  *memReport
	sets int // distinct digests rendered
}

// digestRun adds a post and runs a daily digest to n readers while
// sampling memory and CPU.
func (b *bench) digestRun(in *instance, n int) (*runStats, error) {
	return b.digestRunWith(in, n, func() error { return in.addPost(int(time.Now().UnixNano() % 1e9)) }, true)
}

// digestRunWith is digestRun with the posts addPosts adds; all: every
// reader gets an email (else some may have nothing of theirs).
func (b *bench) digestRunWith(in *instance, n int, addPosts func() error, all bool) (*runStats, error) {
	// A run at 7am starts long after herald did: let its start-up work
	// (the janitor's pass over every reader) finish first.
	if waited, err := in.waitIdle(time.Minute); err != nil {
		return nil, err
	} else if waited > time.Second {
		b.log.Info("waited for herald to settle", "dur", waited.Round(time.Millisecond))
	}
	if err := addPosts(); err != nil {
		return nil, err
	}
	b.sink.reset()
	stopProf := b.profile(in, fmt.Sprintf("run-%d", n))
	defer stopProf()
	mem := in.sampleMemory(100 * time.Millisecond)
	cpu0, self0 := procCPU(in.pid()), selfCPU()
	t0 := time.Now()
	id, err := in.startRun()
	if err != nil {
		return nil, err
	}
	b.log.Info("digest run started", "run", id, "readers", n)
	st, err := in.waitRun(id, 30*time.Minute)
	el := time.Since(t0)
	heraldCPU, benchCPU := procCPU(in.pid())-cpu0, selfCPU()-self0
	rep, merr := mem.finish()
	if err != nil {
		return nil, err
	}
	if merr != nil {
		return nil, merr
	}
	if st.Sent+st.Skipped != n || st.Failed != 0 || int(b.sink.count.Load()) != st.Sent || (all && st.Sent != n) {
		return nil, fmt.Errorf("bench: run %d: sent %d, failed %d, skipped %d, sink got %d; want %d", id, st.Sent, st.Failed, st.Skipped, b.sink.count.Load(), n)
	}
	n = st.Sent
	rate := float64(n) / el.Seconds()
	b.log.Info("digest run done", "run", id, "readers", n, "dur", el.Round(time.Millisecond), "emails_per_s", int(rate),
		"heap_inuse", mb(rep.HeapInuse), "gc_peak", mb(rep.GCPeak), "gcs", rep.GCs, "hwm", mb(rep.HWM), "connections", b.sink.connections(),
		"herald_cpu_per_email", perOp(heraldCPU, n), "bench_cpu_per_email", perOp(benchCPU, n),
		"herald_cores", fmt.Sprintf("%.2f", heraldCPU.Seconds()/el.Seconds()), "bench_cores", fmt.Sprintf("%.2f", benchCPU.Seconds()/el.Seconds()))
	return &runStats{n: n, rate: rate, cpu: heraldCPU, mem: rep, sets: st.PostSets}, nil
}

func (b *bench) feedIngest() error {
	const items = 10000
	bl := newBlog(items)
	defer bl.srv.Close()
	in, err := newInstance("feed", b.bin, b.dir, instanceConfig{SMTPPort: b.sink.port, Connections: b.o.connections, FeedURL: bl.url()})
	if err != nil {
		return err
	}
	if _, err := in.start(); err != nil {
		return err
	}
	defer in.kill()
	// Let the poll at start meet the 503.
	time.Sleep(300 * time.Millisecond)
	bl.armed.Store(true)
	poll := func() ([]*herald.PollResult, error) {
		return in.api.PollFeeds(context.Background())
	}
	t0 := time.Now()
	res, err := poll()
	if err != nil {
		return err
	}
	first := time.Since(t0)
	if len(res) != 1 || res[0].New != items {
		return fmt.Errorf("bench: first poll of the %d-item feed: %+v", items, res)
	}
	t0 = time.Now()
	if res, err = poll(); err != nil {
		return err
	}
	again := time.Since(t0)
	if len(res) != 1 || res[0].New != 0 || res[0].Updated != items {
		return fmt.Errorf("bench: second poll of the %d-item feed: %+v", items, res)
	}
	if err := in.stop(); err != nil {
		return err
	}
	parse, n, err := parseOnly(bl.body)
	if err != nil {
		return err
	}
	if n != items {
		return fmt.Errorf("bench: gofeed parsed %d items, want %d", n, items)
	}
	b.log.Info("feed ingest", "items", items, "first", first, "again", again, "gofeed_parse", parse)
	b.add(row{
		figure: fmt.Sprintf("Feed ingest, %s-item RSS (%s), first poll", count(items), mb(float64(len(bl.body)))),
		herald: dur(first), limit: dur(parse) + " (gofeed parse alone)",
		ratio: fmt.Sprintf("%.2f", parse.Seconds()/first.Seconds()), goal: "(reported)",
	})
	b.add(row{
		figure: "Feed ingest, same feed polled again (all known)",
		herald: dur(again), limit: dur(parse) + " (gofeed parse alone)",
		ratio: fmt.Sprintf("%.2f", parse.Seconds()/again.Seconds()), goal: "(reported)",
	})
	return nil
}

// p3 drives the bare server and herald in turns, two rounds of half the
// duration each (bare, herald, bare, herald), and takes each side's better
// round: a stall from something else on the machine then costs neither
// side its figure. Herald is stopped between its rounds, so the
// confirmations it still has to send don't run against the bare server.
func (b *bench) p3() error {
	o := b.o
	in, err := newInstance("p3", b.bin, b.dir, instanceConfig{SMTPPort: b.sink.port, Connections: o.connections, Unlimited: true})
	if err != nil {
		return err
	}
	defer in.kill()
	half := o.p3Duration / 2
	var bareBest, heraldBest loadResult
	var bareRounds, heraldRounds []loadResult
	heraldErrors, answered := 0, 0
	var firstErr string
	b.sink.reset()
	for round := range 2 {
		bare, err := startBareServer(b.dir)
		if err != nil {
			return err
		}
		b.log.Info("P3 limit: bare net/http + bbolt", "round", round+1, "clients", o.clients, "dur", half)
		lim := driveSubscribe(bare.url, fmt.Sprintf("bare%d-", round), o.clients, half)
		if round == 1 {
			if rows := bare.rows(); rows > 0 {
				b.bareBytesPer100k = float64(fileSize(bare.db.Path())) / float64(rows) * 100000
			}
		}
		bare.Close()
		if lim.Errors > 0 {
			return fmt.Errorf("bench: the bare server had %d errors: %s", lim.Errors, lim.FirstErr)
		}
		bareRounds = append(bareRounds, lim)
		if lim.rate() > bareBest.rate() {
			bareBest = lim
		}

		if _, err := in.start(); err != nil {
			return err
		}
		b.log.Info("P3: herald serve", "round", round+1, "clients", o.clients, "dur", half)
		stopProf := func() {}
		if round == 0 {
			stopProf = b.profile(in, "p3")
		}
		h := driveSubscribe(in.base+"/subscribe", fmt.Sprintf("p3r%d-", round), o.clients, half)
		stopProf()
		heraldRounds = append(heraldRounds, h)
		heraldErrors += h.Errors
		answered += h.Requests - h.Errors
		if firstErr == "" {
			firstErr = h.FirstErr
		}
		if h.rate() > heraldBest.rate() {
			heraldBest = h
		}
		if round == 1 {
			// The confirmations go out from the outbox while the load
			// runs; give the sender a moment, for the note.
			deadline := time.Now().Add(10 * time.Second)
			for time.Now().Before(deadline) && int(b.sink.count.Load()) < answered {
				time.Sleep(50 * time.Millisecond)
			}
		}
		if err := in.stop(); err != nil {
			return err
		}
	}
	ratio := heraldBest.rate() / bareBest.rate()
	b.add(row{
		figure: fmt.Sprintf("P3 subscribe, %d clients, JSON POST /subscribe, better of 2 rounds × %s", o.clients, half),
		herald: fmt.Sprintf("%.0f req/s, p50 %s, p99 %s, %d errors", heraldBest.rate(), ms(heraldBest.P50), ms(heraldBest.P99), heraldErrors),
		limit:  fmt.Sprintf("%.0f req/s, p50 %s, p99 %s (bare net/http + bbolt, one db.Batch write)", bareBest.rate(), ms(bareBest.P50), ms(bareBest.P99)),
		ratio:  fmt.Sprintf("%.2f", ratio), goal: "≥ 0.50, 0 errors", met: yes(ratio >= 0.5 && heraldErrors == 0),
	})
	if heraldErrors > 0 {
		b.notes = append(b.notes, fmt.Sprintf("P3: %d errors, the first: %s", heraldErrors, firstErr))
	}
	b.notes = append(b.notes, fmt.Sprintf("P3 rounds: herald %.0f and %.0f req/s, bare %.0f and %.0f req/s.",
		heraldRounds[0].rate(), heraldRounds[1].rate(), bareRounds[0].rate(), bareRounds[1].rate()))
	b.notes = append(b.notes, fmt.Sprintf("P3: %d confirmation emails reached the SMTP sink by 10s after the load (%d sign-ups answered 202).", b.sink.count.Load(), answered))
	return nil
}

func (b *bench) big(emptyStart time.Duration) error {
	o := b.o
	in, err := newInstance("big", b.bin, b.dir, instanceConfig{SMTPPort: b.sink.port, Connections: o.connections})
	if err != nil {
		return err
	}
	if _, err := in.start(); err != nil {
		return err
	}
	defer in.kill()
	b.log.Info("importing readers", "n", o.big)
	t0 := time.Now()
	if _, err := in.importCSV("big", o.big); err != nil {
		return err
	}
	importDur := time.Since(t0)
	b.log.Info("imported", "n", o.big, "dur", importDur.Round(time.Millisecond))
	if err := in.stop(); err != nil {
		return err
	}
	size := fileSize(in.dbPath())
	startDur, err := in.start()
	if err != nil {
		return err
	}
	b.log.Info("started with readers", "n", o.big, "startup", startDur)
	run, err := b.digestRun(in, o.big)
	if err != nil {
		return err
	}
	mem := run.mem
	if err := in.stop(); err != nil {
		return err
	}
	b.log.Info("import limit: bare encoding/csv + bbolt", "n", o.big)
	bareDur, _, err := bareImport(b.dir, "big", o.big)
	if err != nil {
		return err
	}

	small := b.p2small
	ratio := mem.HeapInuse / small.HeapInuse
	b.add(row{
		figure: fmt.Sprintf("P2 peak Go heap, %s-reader run", count(o.big)),
		herald: heapCell(mem),
		limit:  fmt.Sprintf("%s (the %s-reader run)", mb(small.HeapInuse), count(o.readers)),
		ratio:  fmt.Sprintf("%.2f", ratio), goal: "≤ 1.50 and ≤ 64 MB", met: yes(ratio <= 1.5 && mem.HeapInuse <= 64<<20),
	})
	b.add(row{
		figure: fmt.Sprintf("P2 live heap after GC (gctrace), %s-reader run", count(o.big)),
		herald: mb(mem.LivePeak), limit: fmt.Sprintf("%s (the %s-reader run)", mb(small.LivePeak), count(o.readers)),
		ratio: fmt.Sprintf("%.2f", mem.LivePeak/small.LivePeak), goal: "(reported)",
	})
	b.add(row{
		figure: fmt.Sprintf("P2 peak RSS (VmHWM), %s-reader run", count(o.big)),
		herald: mb(mem.HWM), limit: fmt.Sprintf("%s (the %s-reader run)", mb(small.HWM), count(o.readers)),
		ratio: fmt.Sprintf("%.2f", mem.HWM/small.HWM), goal: "(reported)",
	})
	b.add(row{
		figure: fmt.Sprintf("Digest throughput, %s readers", count(o.big)),
		herald: fmt.Sprintf("%.0f emails/s (%s CPU/email)", run.rate, perOp(run.cpu, run.n)), limit: "(P1's raw client)", ratio: "—", goal: "(reported)",
	})
	b.add(row{
		figure: fmt.Sprintf("CSV import, %s rows (confirmed=true), streamed", count(o.big)),
		herald: fmt.Sprintf("%s (%.0f rows/s)", dur(importDur), float64(o.big)/importDur.Seconds()),
		limit:  fmt.Sprintf("%s (encoding/csv + bbolt, 1000 × db.Batch)", dur(bareDur)),
		ratio:  fmt.Sprintf("%.2f", bareDur.Seconds()/importDur.Seconds()), goal: "(reported)",
	})
	per100k := float64(size) / float64(o.big) * 100000
	lim := "—"
	ratio2 := "—"
	if b.bareBytesPer100k > 0 {
		lim = fmt.Sprintf("%s (bare bbolt, one JSON record per address)", mb(b.bareBytesPer100k))
		ratio2 = fmt.Sprintf("%.2f", b.bareBytesPer100k/per100k)
	}
	b.add(row{
		figure: fmt.Sprintf("DB file size per 100k readers (%s readers: %s)", count(o.big), mb(float64(size))),
		herald: mb(per100k), limit: lim, ratio: ratio2, goal: "(reported)",
	})
	b.add(row{
		figure: fmt.Sprintf("Startup, exec to /healthz 200, %s readers", count(o.big)),
		herald: dur(startDur), limit: dur(emptyStart) + " (empty database)",
		ratio: fmt.Sprintf("%.2f", emptyStart.Seconds()/startDur.Seconds()), goal: "(reported)",
	})
	return nil
}

// profile fetches a CPU profile of herald into o.profileDir while the
// caller's work runs; the returned func waits for it.
func (b *bench) profile(in *instance, name string) func() {
	if b.o.profileDir == "" {
		return func() {}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		path := filepath.Join(b.o.profileDir, name+"-cpu.pprof")
		err := in.saveProfile(fmt.Sprintf("/debug/pprof/profile?seconds=%d", b.o.profileSecs), path)
		if err != nil {
			b.log.Warn("cpu profile failed", "err", err)
			return
		}
		b.log.Info("cpu profile written", "path", path)
		path = filepath.Join(b.o.profileDir, name+"-heap.pprof")
		if err := in.saveProfile("/debug/pprof/heap", path); err != nil {
			b.log.Warn("heap profile failed", "err", err)
			return
		}
		path = filepath.Join(b.o.profileDir, name+".trace")
		if err := in.saveProfile("/debug/pprof/trace?seconds=2", path); err != nil {
			b.log.Warn("trace failed", "err", err)
			return
		}
		b.log.Info("execution trace written", "path", path)
	}()
	return func() { <-done }
}

func (b *bench) print(w io.Writer, total time.Duration) {
	var buf bytes.Buffer
	fmt.Fprintf(&buf, "\nherald performance harness, %s\n", time.Now().UTC().Format("2006-01-02 15:04 MST"))
	fmt.Fprintf(&buf, "machine: %d CPUs (%s), %s RAM, %s, %s/%s, linux %s\n", runtime.NumCPU(), cpuModel(), memTotal(), runtime.Version(), runtime.GOOS, runtime.GOARCH, kernel())
	fmt.Fprintf(&buf, "load average when the harness started (other work on the machine): %s\n", b.loadAtStart)
	fmt.Fprintf(&buf, "flags: -readers %d -big %d%s -connections %d -clients %d -p3-duration %s -raw-duration %s\n",
		b.o.readers, b.o.big, map[bool]string{true: " -skip-big", false: ""}[b.o.skipBig], b.o.connections, b.o.clients, b.o.p3Duration, b.o.rawDuration)
	if b.o.src != "" {
		fmt.Fprintf(&buf, "herald built from: %s\n", b.o.src)
	}
	fmt.Fprintf(&buf, "herald: smtp transport (tls none) to an in-process go-smtp sink that reads and discards; log level info; durable bbolt commits on %s\n", b.dir)
	fmt.Fprintf(&buf, "P3 only: rate limits raised in the config (security.subscribe_per_ip = \"0\", confirmations_per_address = \"0\", confirmations_per_hour = 0)\n\n")
	cols := []string{"figure", "herald", "limit (same run)", "ratio", "goal", "met"}
	fmt.Fprintf(&buf, "| %s |\n|%s\n", strings.Join(cols, " | "), strings.Repeat(" --- |", len(cols)))
	for _, r := range b.rows {
		fmt.Fprintf(&buf, "| %s | %s | %s | %s | %s | %s |\n", r.figure, r.herald, r.limit, r.ratio, r.goal, r.met)
	}
	buf.WriteString("\nratios: throughput herald/limit; times limit/herald (1.00 = as fast as the limit); heap 1M/100k.\n")
	for _, n := range b.notes {
		buf.WriteString(n + "\n")
	}
	fmt.Fprintf(&buf, "harness wall time: %s\n", total.Round(time.Second))
	_, _ = w.Write(buf.Bytes())
}

// heapCell is P2's figure: the peak (what the goal is about) and, to
// read it by, the spread of the samples and the live heap.
func heapCell(m *memReport) string {
	return fmt.Sprintf("%s peak heap_inuse (samples: p50 %s, p99 %s; %d GCs, live heap after GC at most %s)",
		mb(m.HeapInuse), mb(m.HeapP50), mb(m.HeapP99), m.GCs, mb(m.LivePeak))
}

func perOp(d time.Duration, n int) string {
	if n <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.1fµs", float64(d)/float64(n)/1e3)
}

func yes(ok bool) string {
	if ok {
		return "yes"
	}
	return "**no**"
}

func mb(b float64) string { return fmt.Sprintf("%.1f MB", b/(1<<20)) }

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond)) }

func dur(d time.Duration) string {
	if d < time.Second {
		return ms(d)
	}
	return fmt.Sprintf("%.2f s", d.Seconds())
}

func count(n int) string {
	switch {
	case n >= 1000000 && n%1000000 == 0:
		return fmt.Sprintf("%dM", n/1000000)
	case n >= 1000 && n%1000 == 0:
		return fmt.Sprintf("%dk", n/1000)
	}
	return fmt.Sprint(n)
}

func cpuModel() string {
	b, _ := os.ReadFile("/proc/cpuinfo")
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown CPU"
}

func memTotal() string {
	b, _ := os.ReadFile("/proc/meminfo")
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "MemTotal:"); ok {
			var kb float64
			fmt.Sscan(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), &kb)
			return fmt.Sprintf("%.1f GiB", kb/(1<<20))
		}
	}
	return "unknown"
}

func loadAvg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

func kernel() string {
	b, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	return strings.TrimSpace(string(b))
}
