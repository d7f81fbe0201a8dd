// Package websubhub is a small WebSub hub (W3C Recommendation, 23 January
// 2018) for herald's tests: no hub is packaged for Debian or npm here, and
// herald's subscriber side must meet a hub that does everything the
// recommendation requires of one. It keeps its subscriptions in memory.
//
// What it does, by section of the recommendation:
//   - 5.1 subscribe and unsubscribe requests (hub.callback, hub.mode,
//     hub.topic, hub.lease_seconds, hub.secret under 200 bytes), answered
//     202 Accepted, or 400 with the reason;
//   - 5.2 validation: a topic the hub does not allow is denied with a GET
//     to the callback (hub.mode=denied, hub.topic, hub.reason);
//   - 5.3 verification of intent: a GET to the callback with hub.mode,
//     hub.topic, hub.challenge and hub.lease_seconds; only a 2xx that
//     echoes the challenge makes (or ends) the subscription;
//   - 6 and 7 content distribution: publishing (hub.mode=publish,
//     hub.url, the common convention) makes the hub fetch the topic and
//     POST it to every subscriber whose lease holds, with the topic's
//     Content-Type, Link headers rel="hub" and rel="self", and
//     X-Hub-Signature when the subscriber gave a secret; failed deliveries
//     are retried with backoff; leases expire.
package websubhub

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"
)

// Options configure a Hub. Zero values take the defaults.
type Options struct {
	// URL is the hub's own public URL, sent in the Link rel="hub" header.
	URL string
	// Allow says whether the hub takes subscriptions to a topic; nil
	// allows every http(s) topic. Refused topics are denied (5.2).
	Allow func(topic string) bool
	// Signature is the X-Hub-Signature method: sha1, sha256 (default),
	// sha384 or sha512.
	Signature string
	// DefaultLease, MinLease, MaxLease bound the lease the hub grants.
	DefaultLease, MinLease, MaxLease time.Duration
	// Retries is how many times a failed delivery is tried again; default 5.
	Retries int
	// RetryBackoff is the first wait before a retry, doubled each time;
	// default 1s.
	RetryBackoff time.Duration
	Client       *http.Client // default: 10s timeout
	Logger       *slog.Logger
	Now          func() time.Time
}

// Hub is an http.Handler: POST requests are subscribe, unsubscribe and
// publish; GET / answers with the active subscriptions as text.
type Hub struct {
	opt Options
	log *slog.Logger

	mu   sync.Mutex
	subs map[key]*subscription
	wg   sync.WaitGroup
	ctx  context.Context
	stop context.CancelFunc
}

type key struct{ callback, topic string }

type subscription struct {
	secret  string
	expires time.Time
}

// New returns a Hub with opts, defaults filled in.
func New(opts Options) *Hub {
	if opts.Signature == "" {
		opts.Signature = "sha256"
	}
	if opts.DefaultLease <= 0 {
		opts.DefaultLease = 10 * 24 * time.Hour
	}
	if opts.MinLease <= 0 {
		opts.MinLease = time.Second
	}
	if opts.MaxLease <= 0 {
		opts.MaxLease = 30 * 24 * time.Hour
	}
	if opts.Retries <= 0 {
		opts.Retries = 5
	}
	if opts.RetryBackoff <= 0 {
		opts.RetryBackoff = time.Second
	}
	if opts.Client == nil {
		opts.Client = &http.Client{Timeout: 10 * time.Second}
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	ctx, stop := context.WithCancel(context.Background())
	return &Hub{opt: opts, log: opts.Logger, subs: map[key]*subscription{}, ctx: ctx, stop: stop}
}

// Close stops the background verifications and deliveries and waits for them.
func (h *Hub) Close() {
	h.stop()
	h.wg.Wait()
}

// ServeHTTP handles the hub's one endpoint.
func (h *Hub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		h.list(w)
		return
	case http.MethodPost:
	default:
		w.Header().Set("Allow", "GET, POST")
		http.Error(w, "the hub takes POST requests", http.StatusMethodNotAllowed)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		http.Error(w, "the request is not a form: "+err.Error(), http.StatusBadRequest)
		return
	}
	switch mode := r.PostForm.Get("hub.mode"); mode {
	case "subscribe", "unsubscribe":
		h.subscribe(w, r, mode)
	case "publish":
		h.publish(w, r)
	case "":
		http.Error(w, "hub.mode is missing", http.StatusBadRequest)
	default:
		http.Error(w, fmt.Sprintf("hub.mode %q is not subscribe, unsubscribe or publish", mode), http.StatusBadRequest)
	}
}

// subscribe takes a subscription request (5.1) and verifies it in the
// background (5.2, 5.3).
func (h *Hub) subscribe(w http.ResponseWriter, r *http.Request, mode string) {
	f := r.PostForm
	callback, topic, secret := f.Get("hub.callback"), f.Get("hub.topic"), f.Get("hub.secret")
	if err := absURL(callback); err != nil {
		http.Error(w, "hub.callback: "+err.Error(), http.StatusBadRequest)
		return
	}
	if err := absURL(topic); err != nil {
		http.Error(w, "hub.topic: "+err.Error(), http.StatusBadRequest)
		return
	}
	if len(secret) >= 200 {
		http.Error(w, "hub.secret must be less than 200 bytes", http.StatusBadRequest)
		return
	}
	lease := h.opt.DefaultLease
	if v := f.Get("hub.lease_seconds"); v != "" {
		secs, err := strconv.Atoi(v)
		if err != nil || secs <= 0 {
			http.Error(w, "hub.lease_seconds must be a positive number", http.StatusBadRequest)
			return
		}
		lease = time.Duration(secs) * time.Second
	}
	lease = min(max(lease, h.opt.MinLease), h.opt.MaxLease)
	w.WriteHeader(http.StatusAccepted)
	h.wg.Go(func() { h.verify(mode, callback, topic, secret, lease) })
}

// verify validates and verifies one request and applies it (5.2, 5.3).
func (h *Hub) verify(mode, callback, topic, secret string, lease time.Duration) {
	if mode == "subscribe" && h.opt.Allow != nil && !h.opt.Allow(topic) {
		q := url.Values{"hub.mode": {"denied"}, "hub.topic": {topic}, "hub.reason": {"this hub does not serve that topic"}}
		if _, _, err := h.get(callback, q); err != nil {
			h.log.Warn("websubhub: denial not delivered", "callback", callback, "err", err)
		}
		h.log.Info("websubhub: denied", "callback", callback, "topic", topic)
		return
	}
	challenge := randomHex(16)
	q := url.Values{"hub.mode": {mode}, "hub.topic": {topic}, "hub.challenge": {challenge}}
	if mode == "subscribe" {
		q.Set("hub.lease_seconds", strconv.Itoa(int(lease/time.Second)))
	}
	status, body, err := h.get(callback, q)
	if err != nil || status < 200 || status > 299 || body != challenge {
		h.log.Info("websubhub: intent not verified", "mode", mode, "callback", callback, "topic", topic, "status", status, "err", err)
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	k := key{callback, topic}
	if mode == "unsubscribe" {
		delete(h.subs, k)
	} else {
		h.subs[k] = &subscription{secret: secret, expires: h.opt.Now().Add(lease)}
	}
	h.log.Info("websubhub: verified", "mode", mode, "callback", callback, "topic", topic, "lease", lease)
}

// get sends a verification GET; the callback's own query is kept.
func (h *Hub) get(callback string, q url.Values) (int, string, error) {
	u, err := url.Parse(callback)
	if err != nil {
		return 0, "", err
	}
	all := u.Query()
	for k, v := range q {
		all[k] = v
	}
	u.RawQuery = all.Encode()
	req, err := http.NewRequestWithContext(h.ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return 0, "", err
	}
	resp, err := h.opt.Client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1024))
	return resp.StatusCode, string(b), err
}

// publish fetches the topic and distributes it to its subscribers (7).
func (h *Hub) publish(w http.ResponseWriter, r *http.Request) {
	topic := r.PostForm.Get("hub.url")
	if topic == "" {
		topic = r.PostForm.Get("hub.topic")
	}
	if err := absURL(topic); err != nil {
		http.Error(w, "hub.url: "+err.Error(), http.StatusBadRequest)
		return
	}
	req, err := http.NewRequestWithContext(r.Context(), http.MethodGet, topic, nil)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	resp, err := h.opt.Client.Do(req)
	if err != nil {
		http.Error(w, "could not fetch the topic: "+err.Error(), http.StatusBadGateway)
		return
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK {
		http.Error(w, fmt.Sprintf("could not fetch the topic: %d %v", resp.StatusCode, err), http.StatusBadGateway)
		return
	}
	ctype := resp.Header.Get("Content-Type")
	now := h.opt.Now()
	h.mu.Lock()
	var targets []key
	for k, s := range h.subs {
		if k.topic != topic {
			continue
		}
		if now.After(s.expires) {
			delete(h.subs, k) // the lease ran out
			continue
		}
		targets = append(targets, k)
	}
	h.mu.Unlock()
	for _, k := range targets {
		h.wg.Go(func() { h.deliver(k, ctype, body) })
	}
	w.WriteHeader(http.StatusNoContent)
	h.log.Info("websubhub: published", "topic", topic, "subscribers", len(targets), "bytes", len(body))
}

// deliver POSTs the content to one subscriber, retrying with backoff.
func (h *Hub) deliver(k key, ctype string, body []byte) {
	wait := h.opt.RetryBackoff
	for attempt := 0; attempt <= h.opt.Retries; attempt++ {
		if attempt > 0 {
			select {
			case <-h.ctx.Done():
				return
			case <-time.After(wait):
			}
			wait *= 2
		}
		h.mu.Lock()
		s, ok := h.subs[k]
		h.mu.Unlock()
		if !ok {
			return // unsubscribed meanwhile
		}
		status, err := h.post(k, s.secret, ctype, body)
		switch {
		case err == nil && status >= 200 && status <= 299:
			return
		case status == http.StatusGone:
			h.mu.Lock()
			delete(h.subs, k)
			h.mu.Unlock()
			return
		}
		h.log.Info("websubhub: delivery failed", "callback", k.callback, "status", status, "err", err, "attempt", attempt+1)
	}
}

func (h *Hub) post(k key, secret, ctype string, body []byte) (int, error) {
	req, err := http.NewRequestWithContext(h.ctx, http.MethodPost, k.callback, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	req.Header.Add("Link", "<"+h.opt.URL+">; rel=\"hub\"")
	req.Header.Add("Link", "<"+k.topic+">; rel=\"self\"")
	if secret != "" {
		req.Header.Set("X-Hub-Signature", Sign(h.opt.Signature, []byte(secret), body))
	}
	resp, err := h.opt.Client.Do(req)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	return resp.StatusCode, nil
}

// list writes the active subscriptions, one "topic callback expiry" line each.
func (h *Hub) list(w http.ResponseWriter) {
	h.mu.Lock()
	defer h.mu.Unlock()
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	for k, s := range h.subs {
		fmt.Fprintf(w, "%s %s %s\n", k.topic, k.callback, s.expires.UTC().Format(time.RFC3339))
	}
}

// Sign returns the X-Hub-Signature value of body under secret.
func Sign(method string, secret, body []byte) string {
	var mk func() hash.Hash
	switch method {
	case "sha1":
		mk = sha1.New
	case "sha384":
		mk = sha512.New384
	case "sha512":
		mk = sha512.New
	default:
		method, mk = "sha256", sha256.New
	}
	m := hmac.New(mk, secret)
	m.Write(body)
	return method + "=" + hex.EncodeToString(m.Sum(nil))
}

func absURL(s string) error {
	if s == "" {
		return errors.New("missing")
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%q is not an absolute http(s) URL", s)
	}
	return nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
