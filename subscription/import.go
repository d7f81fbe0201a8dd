package subscription

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/herald-dev/herald"
)

// Import: a list of readers from another tool (herald's own export,
// Mailchimp's, listmonk's), row by row. The rules:
//
//   - A new address is stored with the row's name and frequency. An
//     unsubscribed or bounced row keeps that status (a migration keeps the
//     unsubscribe: the address is known and stays silent). With confirmed,
//     a row that is confirmed (or says nothing) is confirmed at once, no
//     email; any other goes through the double opt-in, exactly as the form
//     does, confirmation email and hourly cap included.
//   - A known address may change name, frequency, topics, time zone and
//     pause (an empty cell changes nothing); its status only goes down: an unsubscribe or bounce in the file is honoured, nothing in a
//     file makes anyone confirmed or pending again.
//   - A repeated address: the first row wins, later ones are skipped.
//
// Rows are read on the caller's goroutine and written by a pool of
// workers, whose writes bbolt batches into shared commits. Memory stays
// flat whatever the file's size: nothing is kept per row.

const (
	// maxInvalidListed is how many bad rows the report lists (the first
	// ones by line); InvalidTotal counts them all.
	maxInvalidListed = 1000
	// importWorkers write rows concurrently, so bbolt's Batch shares one
	// commit (two fsyncs) between many of them. bbolt commits a batch at
	// once when it reaches MaxBatchSize (default 1000), else after
	// MaxBatchDelay (10ms): as many workers as that size keeps batches
	// full. Measured on 100k rows: 32 workers 2.7k rows/s, 128 10k,
	// 512 34k, 1000 140k.
	importWorkers = 1000
)

// Import applies the rows; see herald.ImportService.
func (s *Service) Import(ctx context.Context, rows herald.RowReader, confirmed bool) (*herald.ImportReport, error) {
	im := &importer{s: s, confirmed: confirmed}
	return im.run(ctx, rows)
}

// importer is one import under way.
type importer struct {
	s         *Service
	confirmed bool

	rows, added, updated, skipped, confirmations atomic.Int64

	// start is when the import began, on the store's clock (real time):
	// a reader written since then was written by an earlier row of this
	// file (or changed by the reader just now), and is left alone.
	start time.Time

	mu           sync.Mutex
	invalid      problemHeap
	invalidTotal int
	inFlight     map[string]struct{} // addresses handed to a worker, not done yet
}

// run imports the rows. With an error, the import stopped part-way: the
// report says what was done before.
func (im *importer) run(ctx context.Context, cr herald.RowReader) (*herald.ImportReport, error) {
	im.start = time.Now()
	im.inFlight = make(map[string]struct{}, 3*importWorkers)
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	rows := make(chan herald.ImportRow, 2*importWorkers)
	var wg sync.WaitGroup
	for range importWorkers {
		wg.Go(func() {
			for row := range rows {
				if ctx.Err() != nil {
					continue // drain
				}
				if err := im.apply(ctx, row); err != nil {
					cancel(err)
				}
				im.mu.Lock()
				delete(im.inFlight, row.Email)
				im.mu.Unlock()
			}
		})
	}
	var readErr error
read:
	for {
		row, err := cr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		var re *herald.RowError
		if errors.As(err, &re) {
			im.rows.Add(1)
			im.addInvalid(re.Line, re.Msg)
			continue
		} else if err != nil {
			readErr = err
			break
		}
		im.rows.Add(1)
		// A repeated address: the first row wins, later ones are skipped.
		// Two rows for one address are never written at once; once the
		// first is written, apply sees that the record is newer than the
		// import.
		im.mu.Lock()
		_, dup := im.inFlight[row.Email]
		if !dup {
			im.inFlight[row.Email] = struct{}{}
		}
		im.mu.Unlock()
		if dup {
			im.skipped.Add(1)
			continue
		}
		select {
		case rows <- row:
		case <-ctx.Done():
			break read
		}
	}
	close(rows)
	wg.Wait()
	if readErr == nil {
		readErr = context.Cause(ctx)
	}
	return im.report(), readErr
}

// outcome of one row.
const (
	outSkipped = iota + 1
	outAdded
	outUpdated
	outOptIn
)

// apply imports one row. Problems with the row are recorded as invalid;
// the error returned is a real fault that stops the import.
func (im *importer) apply(ctx context.Context, row herald.ImportRow) error {
	now := im.s.opt.Now()
	freq := row.Frequency
	topics, err := im.s.opt.Topics.Parse(row.Topics)
	if err == nil {
		row.Timezone, _, err = herald.ParseTimezone(row.Timezone)
	}
	if err != nil {
		im.addInvalid(row.Line, herald.ErrorMessage(err))
		return nil
	}
	lang, err := im.s.tpl.Catalog().Parse(row.Language)
	if err != nil {
		im.addInvalid(row.Line, err.Error())
		return nil
	}
	// A pause that is over by now is no pause.
	pause := row.PausedUntil.After(now) && row.PausedUntil.Sub(now) <= herald.MaxPause
	var outcome int
	_, err = im.s.store.MutateSubscriber(ctx, row.Email, func(cur *herald.Subscriber) (*herald.Subscriber, []*herald.OutboxMessage, error) {
		outcome = 0 // this may run more than once
		next := *cur
		if cur.Status == "" { // a new reader
			next.Name = row.Name
			next.Frequency = freq
			if next.Frequency == "" {
				next.Frequency = im.s.opt.DefaultFrequency
			}
			next.Source = "import"
			next.Language = lang
			next.CreatedAt = row.CreatedAt // zero: the store fills in now
			next.UpdatedAt = now
			next.Topics, next.Timezone = topics, row.Timezone
			if pause {
				next.Pause(now, row.PausedUntil)
			}
			switch {
			case row.Status == herald.StatusUnsubscribed:
				// A migration keeps the unsubscribe: the address is known
				// and stays silent.
				next.Status = herald.StatusUnsubscribed
				t := now
				next.UnsubscribedAt = &t
			case row.Status == herald.StatusBounced:
				next.Status = herald.StatusBounced
			case im.confirmed && (row.Status == "" || row.Status == herald.StatusConfirmed):
				next.Status = herald.StatusConfirmed
				t := now
				if !row.ConfirmedAt.IsZero() {
					t = row.ConfirmedAt
				}
				next.ConfirmedAt = &t
			default:
				outcome = outOptIn // the subscription service does it, with its email
				return nil, nil, nil
			}
			outcome = outAdded
			return &next, nil, nil
		}
		if !cur.UpdatedAt.Before(im.start) {
			// Written since the import began: by an earlier row of this
			// file, or by the reader a moment ago. Either way it stands.
			outcome = outSkipped
			return nil, nil, nil
		}
		// A known reader: name and frequency may change, the status only
		// downwards (an unsubscribe or bounce in the file is honoured;
		// nothing in a file makes anyone confirmed or pending again).
		changed := false
		if row.Name != "" && row.Name != cur.Name {
			next.Name, changed = row.Name, true
		}
		if freq != "" && freq != cur.Frequency {
			next.Frequency, changed = freq, true
		}
		if lang != "" && lang != cur.Language {
			next.Language, changed = lang, true
		}
		if row.Topics != nil && !slices.Equal(topics, cur.Topics) {
			next.Topics, changed = topics, true
		}
		if row.Timezone != "" && row.Timezone != cur.Timezone {
			next.Timezone, changed = row.Timezone, true
		}
		if pause && (cur.PausedUntil == nil || !cur.PausedUntil.Equal(row.PausedUntil)) {
			next.Pause(now, row.PausedUntil)
			changed = true
		}
		live := cur.Status == herald.StatusConfirmed || cur.Status == herald.StatusPending
		switch {
		case live && row.Status == herald.StatusUnsubscribed:
			next.Status, changed = herald.StatusUnsubscribed, true
			t := now
			next.UnsubscribedAt = &t
		case live && row.Status == herald.StatusBounced:
			next.Status, changed = herald.StatusBounced, true
		}
		outcome = outUpdated
		if !changed {
			// Saved all the same, so that its UpdatedAt marks it as done
			// by this import and a later row for it is skipped.
			outcome = outSkipped
		}
		next.UpdatedAt = now
		return &next, nil, nil
	})
	if outcome == outOptIn && herald.ErrorCode(err) == herald.ENOTFOUND {
		// The store answered "not found" for the record not saved.
		_, err = im.s.Subscribe(ctx, herald.SubscribeRequest{
			Email: row.Email, Name: row.Name, Frequency: string(freq), Language: lang, Source: "import",
			Topics: topics, Timezone: row.Timezone,
		})
		if err == nil {
			im.added.Add(1)
			im.confirmations.Add(1)
			return nil
		}
		if herald.ErrorCode(err) == herald.ERATELIMIT {
			im.addInvalid(row.Line, "not imported: the hourly cap on confirmation emails (security.confirmations_per_hour) was reached; import the rest later, or with confirmed=true if these readers opted in elsewhere")
			return nil
		}
	}
	if err != nil {
		if ctx.Err() != nil {
			return context.Cause(ctx)
		}
		switch herald.ErrorCode(err) {
		case herald.EINTERNAL, herald.EUNAVAILABLE:
			return fmt.Errorf("subscription: import line %d: %w", row.Line, err)
		}
		im.addInvalid(row.Line, herald.ErrorMessage(err))
		return nil
	}
	switch outcome {
	case outAdded:
		im.added.Add(1)
	case outUpdated:
		im.updated.Add(1)
	case outSkipped:
		im.skipped.Add(1)
	}
	return nil
}

func (im *importer) addInvalid(line int, msg string) {
	im.mu.Lock()
	defer im.mu.Unlock()
	im.invalidTotal++
	p := herald.ImportProblem{Line: line, Error: msg}
	if im.invalid.Len() < maxInvalidListed {
		heap.Push(&im.invalid, p)
	} else if line < im.invalid[0].Line {
		im.invalid[0] = p // keep the first ones by line
		heap.Fix(&im.invalid, 0)
	}
}

func (im *importer) report() *herald.ImportReport {
	im.mu.Lock()
	defer im.mu.Unlock()
	inv := append([]herald.ImportProblem{}, im.invalid...)
	sort.Slice(inv, func(i, j int) bool { return inv[i].Line < inv[j].Line })
	return &herald.ImportReport{
		Added: int(im.added.Load()), Updated: int(im.updated.Load()), Skipped: int(im.skipped.Load()),
		Invalid: inv, InvalidTotal: im.invalidTotal, Confirmations: int(im.confirmations.Load()),
		Rows: int(im.rows.Load()),
	}
}

// problemHeap is a max-heap by line: the root is the last line kept.
type problemHeap []herald.ImportProblem

func (h problemHeap) Len() int           { return len(h) }
func (h problemHeap) Less(i, j int) bool { return h[i].Line > h[j].Line }
func (h problemHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *problemHeap) Push(x any)        { *h = append(*h, x.(herald.ImportProblem)) }
func (h *problemHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}
