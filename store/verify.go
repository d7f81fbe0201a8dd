package store

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/debug"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// Info describes a database file that Verify found sound.
type Info struct {
	Schema      int // schema version written in the file
	Subscribers int
	Runs        int
	OpenRuns    int // queued or running: they resume when herald starts on it
}

// Verify opens the database file at path read-only and checks that it is
// a whole herald database this binary can run on: bbolt's consistency
// check passes, the schema version is known, every bucket of that version
// is there. It never changes the file. A file held by a running herald
// gives ErrLocked.
func Verify(ctx context.Context, path string) (info Info, err error) {
	if err := ctx.Err(); err != nil {
		return info, err
	}
	st, err := os.Stat(path)
	if err != nil {
		return info, fmt.Errorf("store: %w", err)
	}
	if !st.Mode().IsRegular() || st.Size() == 0 {
		return info, fmt.Errorf("store: %s is not a database file (empty or not a regular file)", path)
	}
	// bbolt panics on some damaged pages, and a page number past the
	// mapping is a memory fault: both are answers here. The free list is
	// read now, on this goroutine: bbolt's check would read it on its own.
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("store: %s is damaged: %v", path, p)
		}
	}()
	bdb, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: 250 * time.Millisecond, PreLoadFreelist: true})
	if errors.Is(err, berrors.ErrTimeout) {
		return info, ErrLocked
	} else if err != nil {
		return info, fmt.Errorf("store: %s is not a valid database: %w", path, err)
	}
	defer bdb.Close()
	err = bdb.View(func(tx *bolt.Tx) error {
		// Reading a page past the end of a cut-off file is a SIGBUS,
		// which nothing recovers from: check the size first.
		if tx.Size() > st.Size() {
			return fmt.Errorf("store: %s is cut off: %d bytes of %d", path, st.Size(), tx.Size())
		}
		meta := tx.Bucket(bucketMeta)
		if meta == nil {
			return fmt.Errorf("store: %s is not a herald database (no meta bucket)", path)
		}
		b := meta.Get(keySchemaVersion)
		if len(b) != 8 {
			return fmt.Errorf("store: %s is not a herald database (no schema version)", path)
		}
		v := binary.BigEndian.Uint64(b)
		if v == 0 || v > uint64(len(migrations)) {
			return fmt.Errorf("%w: %s has schema version %d, this herald knows 1 to %d", ErrSchemaTooNew, path, v, len(migrations))
		}
		info.Schema = int(v)
		for _, name := range bucketsAt(int(v)) {
			if tx.Bucket(name) == nil {
				return fmt.Errorf("store: %s is damaged: bucket %q of schema %d is missing", path, name, v)
			}
		}
		// Read every key of every bucket here first, where a damaged page
		// is recovered from; bbolt's own check runs on a goroutine of its
		// own, where it would not be.
		if err := walk(tx.Cursor()); err != nil {
			return fmt.Errorf("store: %s is damaged: %w", path, err)
		}
		// The check also reads both meta pages and the free list's, which
		// the walk does not: their headers are read here first.
		if err := checkFixedPages(path, tx.DB().Info().PageSize, st.Size()); err != nil {
			return fmt.Errorf("store: %s is damaged: %w", path, err)
		}
		for err := range tx.Check() {
			return fmt.Errorf("store: %s is damaged: %w", path, err)
		}
		info.Subscribers = tx.Bucket(bucketSubs).Stats().KeyN
		info.Runs = tx.Bucket(bucketRuns).Stats().KeyN
		info.OpenRuns = tx.Bucket(bucketRunsOpen).Stats().KeyN
		return nil
	})
	return info, err
}

// checkFixedPages reads the headers of the two meta pages and of the free
// list page each meta names, as bbolt's check will on a goroutine where
// its assertion (a page must carry its own number and a known type) is a
// crash: here it is an error.
func checkFixedPages(path string, pageSize int, size int64) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	header := func(id uint64) (flags uint16, err error) {
		var h [16]byte // bbolt's page header: id, flags, count, overflow
		if _, err := f.ReadAt(h[:], int64(id)*int64(pageSize)); err != nil {
			return 0, fmt.Errorf("page %d: %w", id, err)
		}
		if got := binary.LittleEndian.Uint64(h[0:8]); got != id {
			return 0, fmt.Errorf("page %d calls itself page %d", id, got)
		}
		return binary.LittleEndian.Uint16(h[8:10]), nil
	}
	const (
		branchPage, leafPage, metaPage, freelistPage = 0x01, 0x02, 0x04, 0x10
		noFreelist                                   = ^uint64(0)
	)
	for meta := uint64(0); meta < 2; meta++ {
		flags, err := header(meta)
		if err != nil {
			return err
		}
		if flags != metaPage {
			return fmt.Errorf("page %d is not a meta page (flags %#x)", meta, flags)
		}
		// The meta follows the page header: magic, version, page size,
		// flags (4 bytes each), the root bucket (16), then the free list.
		var b [8]byte
		if _, err := f.ReadAt(b[:], int64(meta)*int64(pageSize)+16+16+16); err != nil {
			return fmt.Errorf("meta %d: %w", meta, err)
		}
		fl := binary.LittleEndian.Uint64(b[:])
		if fl == noFreelist || fl < 2 || int64(fl) >= size/int64(pageSize) {
			continue // none, or bbolt's own checks refuse it
		}
		switch flags, err := header(fl); {
		case err != nil:
			return err
		case flags != branchPage && flags != leafPage && flags != metaPage && flags != freelistPage:
			return fmt.Errorf("page %d has no known type (flags %#x)", fl, flags)
		}
	}
	return nil
}

// walk reads every key and value under c, descending into buckets.
func walk(c *bolt.Cursor) error {
	for k, v := c.First(); k != nil; k, v = c.Next() {
		if v != nil {
			continue
		}
		b := c.Bucket().Bucket(k)
		if b == nil {
			return fmt.Errorf("bucket %q cannot be opened", k)
		}
		if err := walk(b.Cursor()); err != nil {
			return err
		}
	}
	return nil
}

// bucketsAt lists the buckets a database of schema version v has.
func bucketsAt(v int) [][]byte {
	bs := [][]byte{
		bucketSubs, bucketSubEmail, bucketSubCounts,
		bucketOutbox, bucketOutboxDue, bucketOutboxSub, bucketFailed,
		bucketPosts, bucketFeeds,
		bucketRuns, bucketRunsOpen, bucketSettings, bucketCounters,
	}
	if v >= 2 {
		bs = append(bs, bucketArchive, bucketArchFreq)
	}
	if v >= 4 {
		bs = append(bs, bucketPostKey) // posts by (feed, guid)
	} else {
		bs = append(bs, bucketPostGUIDv3, bucketPostURLv3)
	}
	if v >= 6 {
		bs = append(bs, bucketOutboxHeld)
	}
	return bs
}

// Restore puts the backup at src in place of the database at dst, which
// no herald may have open: it verifies src, takes dst's lock (ErrLocked
// when a herald holds it), copies src beside dst, syncs it, and renames it
// over dst. The database it replaces is kept beside it, named in the
// result; "" when there was none.
func Restore(ctx context.Context, src, dst string) (Info, string, error) {
	info, err := Verify(ctx, src)
	if err != nil {
		return info, "", err
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
		return info, "", fmt.Errorf("store: %w", err)
	}
	// Hold dst's lock for the whole swap, so a herald starting meanwhile
	// waits, then finds the new file or refuses.
	// A damaged dst (the reason to restore) is fine: only its lock counts.
	if live, err := os.OpenFile(dst, os.O_RDWR, 0); err == nil {
		defer live.Close()
		if err := lockFile(live, 250*time.Millisecond); err != nil {
			return info, "", err
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return info, "", fmt.Errorf("store: %w", err) // cannot tell whether a herald holds it
	}
	in, err := os.Open(src)
	if err != nil {
		return info, "", fmt.Errorf("store: %w", err)
	}
	defer in.Close()
	tmp, err := os.CreateTemp(filepath.Dir(dst), "."+filepath.Base(dst)+".restore-*")
	if err != nil {
		return info, "", fmt.Errorf("store: %w", err)
	}
	done := false
	defer func() {
		if !done {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if _, err := io.Copy(tmp, in); err != nil {
		return info, "", fmt.Errorf("store: copy %s: %w", src, err)
	}
	if err := tmp.Sync(); err != nil {
		return info, "", fmt.Errorf("store: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return info, "", fmt.Errorf("store: %w", err)
	}
	if _, err := Verify(ctx, tmp.Name()); err != nil {
		return info, "", fmt.Errorf("store: the copy of %s does not verify: %w", src, err)
	}
	kept := ""
	if _, err := os.Stat(dst); err == nil {
		kept = dst + ".before-restore-" + time.Now().UTC().Format("20060102T150405Z")
		if err := os.Link(dst, kept); err != nil {
			if err := os.Rename(dst, kept); err != nil { // no hard links here
				return info, "", fmt.Errorf("store: keep the current database: %w", err)
			}
		}
	}
	if err := os.Rename(tmp.Name(), dst); err != nil {
		return info, "", fmt.Errorf("store: %w", err)
	}
	done = true
	if d, err := os.Open(filepath.Dir(dst)); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return info, kept, nil
}
