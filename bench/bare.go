package main

import (
	"bufio"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
)

// bareImport is the CSV import's limit: the same generated rows read by
// encoding/csv and written by 1000 goroutines, one db.Batch each (the
// shape of herald's importer), as one JSON record per address in a bare
// bbolt file. It returns the time taken and the file's size.
func bareImport(dir, prefix string, n int) (time.Duration, int64, error) {
	path := filepath.Join(dir, "bare-import.db")
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		return 0, 0, fmt.Errorf("bench: bare import: %w", err)
	}
	defer db.Close()
	bucket := []byte("subscribers")
	if err := db.Update(func(tx *bolt.Tx) error { _, err := tx.CreateBucketIfNotExists(bucket); return err }); err != nil {
		return 0, 0, fmt.Errorf("bench: bare import: %w", err)
	}
	pr, pw := io.Pipe()
	go func() {
		bw := bufio.NewWriterSize(pw, 256<<10)
		bw.WriteString("email,name,frequency,status\n")
		for i := range n {
			bw.WriteString(prefix + strconv.Itoa(i) + "@example.org,Reader " + strconv.Itoa(i) + ",daily,confirmed\n")
		}
		pw.CloseWithError(bw.Flush())
	}()
	type rec struct {
		Email, Name, Frequency, Status string
		CreatedAt                      time.Time
	}
	rows := make(chan rec, 2000)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	t0 := time.Now()
	for range 1000 {
		wg.Go(func() {
			for r := range rows {
				v, _ := json.Marshal(r)
				if err := db.Batch(func(tx *bolt.Tx) error { return tx.Bucket(bucket).Put([]byte(r.Email), v) }); err != nil {
					mu.Lock()
					firstErr = err
					mu.Unlock()
				}
			}
		})
	}
	cr := csv.NewReader(pr)
	cr.ReuseRecord = true
	if _, err := cr.Read(); err != nil {
		return 0, 0, fmt.Errorf("bench: bare import: %w", err)
	}
	for {
		f, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			close(rows)
			wg.Wait()
			return 0, 0, fmt.Errorf("bench: bare import: %w", err)
		}
		rows <- rec{Email: f[0], Name: f[1], Frequency: f[2], Status: f[3], CreatedAt: time.Now()}
	}
	close(rows)
	wg.Wait()
	el := time.Since(t0)
	if firstErr != nil {
		return 0, 0, fmt.Errorf("bench: bare import: %w", firstErr)
	}
	return el, fileSize(path), nil
}
