// Package sestest runs the aws-ses-v2-local emulator (npm, installed by
// .ci/run) on loopback behind a recording proxy: tests send through the
// real AWS SDK to it and read both what the emulator made of each message
// (GET /store) and the raw MIME that went over the wire, which the
// emulator itself keeps only parsed.
package sestest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"testing"
	"time"
)

// Command is the emulator's executable, pinned by .ci/run
// (npm install -g aws-ses-v2-local@2.10.2).
const Command = "aws-ses-v2-local"

// Emulator is a running aws-ses-v2-local behind a recording proxy.
type Emulator struct {
	// URL is the endpoint to give the SDK (the proxy).
	URL string
	// Direct is the emulator's own address.
	Direct string

	cmd   *exec.Cmd
	proxy *httptest.Server
	out   bytes.Buffer

	mu   sync.Mutex
	raws [][]byte
}

// Account is what GetAccount answers; MaxSendRate is the only figure
// herald reads.
func Account(maxSendRate float64) string {
	b, _ := json.Marshal(map[string]any{
		"DedicatedIpAutoWarmupEnabled": false,
		"Details": map[string]any{
			"AdditionalContactEmailAddresses": []string{}, "ContactLanguage": "EN", "MailType": "MARKETING",
			"ReviewDetails": map[string]string{"CaseId": "1", "Status": "GRANTED"}, "UseCaseDescription": "newsletter",
			"WebsiteURL": "https://blog.example.org",
		},
		"EnforcementStatus": "HEALTHY", "ProductionAccessEnabled": true, "SendingEnabled": true,
		"SendQuota":             map[string]float64{"Max24HourSend": 50000, "MaxSendRate": maxSendRate, "SentLast24Hours": 0},
		"SuppressionAttributes": map[string][]string{"SuppressedReasons": {"BOUNCE", "COMPLAINT"}},
	})
	return string(b)
}

// Start runs the emulator for the test; account is GetAccount's answer
// (see Account; "" answers GetAccount with an error). Without the
// emulator installed the test is skipped, or fails when CI=true.
func Start(t testing.TB, account string) *Emulator {
	t.Helper()
	if _, err := exec.LookPath(Command); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("sestest: %s is not installed (.ci/run installs it: npm install -g aws-ses-v2-local@2.10.2)", Command)
		}
		t.Skipf("sestest: %s is not installed (npm install -g aws-ses-v2-local@2.10.2)", Command)
	}
	e, err := New(account)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	return e
}

// New starts an emulator outside a test (the bench); Close stops it.
func New(account string) (*Emulator, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	e := &Emulator{Direct: "http://127.0.0.1:" + strconv.Itoa(port)}
	e.cmd = exec.Command(Command, "--host", "127.0.0.1", "--port", strconv.Itoa(port))
	e.cmd.Env = append(os.Environ(), "AWS_SES_ACCOUNT="+account)
	e.cmd.Stdout, e.cmd.Stderr = &lockedWriter{w: &e.out, mu: &e.mu}, &lockedWriter{w: &e.out, mu: &e.mu}
	if err := e.cmd.Start(); err != nil {
		return nil, fmt.Errorf("sestest: start %s: %w", Command, err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		res, err := http.Get(e.Direct + "/health-check")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			e.Close()
			return nil, fmt.Errorf("sestest: the emulator did not answer in 30s: %s", e.Output())
		}
		time.Sleep(50 * time.Millisecond)
	}
	target, _ := url.Parse(e.Direct)
	rp := httputil.NewSingleHostReverseProxy(target)
	e.proxy = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && r.URL.Path == "/v2/email/outbound-emails" {
			body, _ := io.ReadAll(r.Body)
			r.Body = io.NopCloser(bytes.NewReader(body))
			var in struct {
				Content struct{ Raw struct{ Data []byte } }
			}
			if json.Unmarshal(body, &in) == nil && len(in.Content.Raw.Data) > 0 {
				e.mu.Lock()
				e.raws = append(e.raws, in.Content.Raw.Data)
				e.mu.Unlock()
			}
		}
		rp.ServeHTTP(w, r)
	}))
	e.URL = e.proxy.URL
	return e, nil
}

type lockedWriter struct {
	w  io.Writer
	mu *sync.Mutex
}

func (l *lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}

// Output is what the emulator printed.
func (e *Emulator) Output() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.out.String()
}

// Raw returns the raw MIME of every SendEmail that went through the proxy.
func (e *Emulator) Raw() [][]byte {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([][]byte(nil), e.raws...)
}

// Email is one message as the emulator stored it.
type Email struct {
	MessageID   string `json:"messageId"`
	From        string `json:"from"`
	Subject     string `json:"subject"`
	Destination struct {
		To []string `json:"to"`
	} `json:"destination"`
	Body struct {
		Text string `json:"text"`
		HTML string `json:"html"`
	} `json:"body"`
}

// Emails asks the emulator what it stored.
func (e *Emulator) Emails(ctx context.Context) ([]Email, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, e.Direct+"/store", nil)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("sestest: %w", err)
	}
	defer res.Body.Close()
	var st struct{ Emails []Email }
	if err := json.NewDecoder(res.Body).Decode(&st); err != nil {
		return nil, fmt.Errorf("sestest: store: %w", err)
	}
	return st.Emails, nil
}

// Clear empties the emulator's store and the recorded raw messages.
func (e *Emulator) Clear(ctx context.Context) error {
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, e.Direct+"/clear-store", nil)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("sestest: %w", err)
	}
	res.Body.Close()
	e.mu.Lock()
	e.raws = nil
	e.mu.Unlock()
	return nil
}

// Close stops the proxy and the emulator.
func (e *Emulator) Close() {
	if e.proxy != nil {
		e.proxy.Close()
	}
	if e.cmd != nil && e.cmd.Process != nil {
		_ = e.cmd.Process.Kill()
		_ = e.cmd.Wait()
	}
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, errors.New("sestest: no free port")
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}
