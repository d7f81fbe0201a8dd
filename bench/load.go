package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-smtp"
	bolt "go.etcd.io/bbolt"

	"github.com/herald-dev/herald"
	"github.com/herald-dev/herald/mailer"
)

// rawSMTP is P1's limit: conns goroutines, each with one go-smtp client
// connection it keeps, pushing msg to the sink as fast as the sink takes
// it (MAIL, RCPT, DATA: the transaction herald's transport runs) for d.
// It returns messages per second.
func rawSMTP(addr string, conns int, msg []byte, d time.Duration) (float64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var sent atomic.Int64
	errs := make(chan error, conns)
	var wg sync.WaitGroup
	start := time.Now()
	for g := range conns {
		wg.Go(func() {
			c, err := smtp.Dial(addr)
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			if err := c.Hello("localhost"); err != nil {
				errs <- err
				return
			}
			for i := 0; ctx.Err() == nil; i++ {
				if err := c.Mail("digest@blog.example.org", &smtp.MailOptions{Size: int64(len(msg))}); err != nil {
					errs <- err
					return
				}
				if err := c.Rcpt("raw"+strconv.Itoa(g)+"-"+strconv.Itoa(i)+"@example.org", nil); err != nil {
					errs <- err
					return
				}
				w, err := c.Data()
				if err != nil {
					errs <- err
					return
				}
				if _, err := w.Write(msg); err != nil {
					errs <- err
					return
				}
				if err := w.Close(); err != nil {
					errs <- err
					return
				}
				sent.Add(1)
			}
			_ = c.Quit()
		})
	}
	wg.Wait()
	el := time.Since(start)
	close(errs)
	if err := <-errs; err != nil {
		return 0, fmt.Errorf("bench: raw smtp client: %w", err)
	}
	return float64(sent.Load()) / el.Seconds(), nil
}

// rawClientMain is `bench raw-client ADDR CONNS DURATION MSGFILE`: the
// raw client in a process of its own, as herald is, printing its rate.
func rawClientMain(args []string) int {
	if len(args) != 4 {
		fmt.Fprintln(os.Stderr, "usage: bench raw-client ADDR CONNS DURATION MSGFILE")
		return 2
	}
	conns, err1 := strconv.Atoi(args[1])
	d, err2 := time.ParseDuration(args[2])
	msg, err3 := os.ReadFile(args[3])
	if err := errors.Join(err1, err2, err3); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	var rate float64
	var err error
	if os.Getenv("HERALD_BENCH_CLIENT") == "transport" {
		rate, err = transportSMTP(args[0], conns, msg, d)
	} else {
		rate, err = rawSMTP(args[0], conns, msg, d)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println(rate)
	return 0
}

// transportSMTP is rawSMTP through herald's own SMTP pool
// (mailer.SMTPTransport), from twice as many goroutines as connections, as
// the digest sends: a diagnostic, to tell the transport's cost from the
// rest of a digest run's.
func transportSMTP(addr string, conns int, msg []byte, d time.Duration) (float64, error) {
	host, port, _ := net.SplitHostPort(addr)
	p, _ := strconv.Atoi(port)
	tr := mailer.NewSMTPTransport(mailer.SMTPConfig{Host: host, Port: p, TLS: mailer.TLSNone, Connections: conns}, nil)
	defer tr.Close()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var sent atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 2*conns)
	start := time.Now()
	for g := range 2 * conns {
		wg.Go(func() {
			for i := 0; ctx.Err() == nil; i++ {
				m := &herald.Message{From: "digest@blog.example.org", To: "tr" + strconv.Itoa(g) + "-" + strconv.Itoa(i) + "@example.org", Raw: msg}
				if err := tr.Send(context.Background(), m); err != nil {
					errs <- err
					return
				}
				sent.Add(1)
			}
		})
	}
	wg.Wait()
	el := time.Since(start)
	close(errs)
	if err := <-errs; err != nil {
		return 0, fmt.Errorf("bench: transport client: %w", err)
	}
	return float64(sent.Load()) / el.Seconds(), nil
}

// clientStats is a client process's rate and CPU.
type clientStats struct {
	rate float64
	n    int           // messages sent
	cpu  time.Duration // user+system CPU of the process
}

// rawSMTPProcess runs rawSMTP (kind "raw") or transportSMTP ("transport")
// in a child process (this binary again), so the limit crosses a process
// boundary to the sink as herald does.
func rawSMTPProcess(dir, addr, kind string, conns int, msg []byte, d time.Duration) (*clientStats, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	file := filepath.Join(dir, "raw-message.eml")
	if err := os.WriteFile(file, msg, 0o600); err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	cmd := exec.Command(self, "raw-client", addr, strconv.Itoa(conns), d.String(), file)
	cmd.Env = append(os.Environ(), "HERALD_BENCH_CLIENT="+kind)
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("bench: %s client process: %w", kind, err)
	}
	rate, err := strconv.ParseFloat(strings.TrimSpace(string(out)), 64)
	if err != nil {
		return nil, fmt.Errorf("bench: %s client process: %w", kind, err)
	}
	return &clientStats{rate: rate, n: int(rate * d.Seconds()), cpu: cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()}, nil
}

// loadResult is one P3 side.
type loadResult struct {
	Requests int
	Errors   int
	FirstErr string
	Elapsed  time.Duration
	P50, P99 time.Duration
}

func (r loadResult) rate() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Requests) / r.Elapsed.Seconds()
}

// driveSubscribe has clients goroutines POST distinct JSON subscriptions
// to url for d, each waiting for its answer before the next, and counts
// every answer but a 202 as an error.
func driveSubscribe(url, prefix string, clients int, d time.Duration) loadResult {
	tr := &http.Transport{MaxIdleConns: clients * 2, MaxIdleConnsPerHost: clients * 2, IdleConnTimeout: time.Minute}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: time.Minute}
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	type part struct {
		lat      []time.Duration
		errs     int
		firstErr string
	}
	parts := make([]part, clients)
	var wg sync.WaitGroup
	start := time.Now()
	for c := range clients {
		wg.Go(func() {
			p := &parts[c]
			p.lat = make([]time.Duration, 0, 4096)
			for i := 0; ctx.Err() == nil; i++ {
				body := `{"email":"` + prefix + strconv.Itoa(c) + "-" + strconv.Itoa(i) + `@example.org","name":"Load Tester","frequency":"daily"}`
				req, _ := http.NewRequest("POST", url, bytes.NewReader([]byte(body)))
				req.Header.Set("Content-Type", "application/json")
				t0 := time.Now()
				res, err := hc.Do(req)
				if err == nil {
					_, _ = io.Copy(io.Discard, res.Body)
					res.Body.Close()
					if res.StatusCode != http.StatusAccepted {
						err = fmt.Errorf("status %d", res.StatusCode)
					}
				}
				p.lat = append(p.lat, time.Since(t0))
				if err != nil {
					p.errs++
					if p.firstErr == "" {
						p.firstErr = err.Error()
					}
				}
			}
		})
	}
	wg.Wait()
	r := loadResult{Elapsed: time.Since(start)}
	var all []time.Duration
	for _, p := range parts {
		all = append(all, p.lat...)
		r.Errors += p.errs
		if r.FirstErr == "" {
			r.FirstErr = p.firstErr
		}
	}
	r.Requests = len(all)
	slices.Sort(all)
	if len(all) > 0 {
		r.P50 = all[len(all)/2]
		r.P99 = all[len(all)*99/100]
	}
	return r
}

// bareServer is P3's limit: net/http and bbolt with nothing else. Its
// handler decodes the JSON body, does one db.Batch write of the record
// under the address, and answers 202, as herald does.
type bareServer struct {
	db  *bolt.DB
	srv *http.Server
	ln  net.Listener
	url string
}

func startBareServer(dir string) (*bareServer, error) {
	// The same mapping herald's store asks for (see store.Open).
	db, err := bolt.Open(filepath.Join(dir, "bare.db"), 0o600, &bolt.Options{Timeout: time.Second, InitialMmapSize: 1 << 30})
	if err != nil {
		return nil, fmt.Errorf("bench: bare server: %w", err)
	}
	bucket := []byte("subscribers")
	if err := db.Update(func(tx *bolt.Tx) error { _, err := tx.CreateBucketIfNotExists(bucket); return err }); err != nil {
		db.Close()
		return nil, fmt.Errorf("bench: bare server: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /subscribe", func(w http.ResponseWriter, r *http.Request) {
		var in struct{ Email, Name, Frequency string }
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10)).Decode(&in); err != nil || in.Email == "" {
			http.Error(w, `{"error":"bad request"}`, http.StatusBadRequest)
			return
		}
		rec, _ := json.Marshal(in)
		err := db.Batch(func(tx *bolt.Tx) error {
			return tx.Bucket(bucket).Put([]byte(in.Email), rec)
		})
		if err != nil {
			http.Error(w, `{"error":"internal"}`, http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusAccepted)
		_, _ = w.Write([]byte(`{"status":"pending"}` + "\n"))
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("bench: bare server: %w", err)
	}
	s := &bareServer{db: db, ln: ln, srv: &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}, url: "http://" + ln.Addr().String() + "/subscribe"}
	go func() { _ = s.srv.Serve(ln) }()
	return s, nil
}

// rows is how many records the bare server wrote.
func (s *bareServer) rows() int {
	n := 0
	_ = s.db.View(func(tx *bolt.Tx) error { n = tx.Bucket([]byte("subscribers")).Stats().KeyN; return nil })
	return n
}

func (s *bareServer) Close() {
	_ = s.srv.Close()
	_ = s.db.Close()
}
