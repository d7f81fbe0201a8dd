package feed

import (
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/herald-dev/herald"
)

// WebSub (W3C Recommendation, 2018) lets a feed's hub push new content to
// herald the moment the blog publishes it. herald subscribes to the hub a
// feed advertises, answers the hub's intent verification, takes signed
// pushes through the same ingest path as a poll, renews its lease, and
// keeps polling as the fallback.

// WebSub defaults.
const (
	DefaultLease = 10 * 24 * time.Hour
	// hubRetry is how long a subscription that failed, was denied or was
	// never verified waits before it is asked for again.
	hubRetry = time.Hour
	// hubTimeout bounds one request to a hub.
	hubTimeout = 10 * time.Second
)

// Push states (herald.PushState.State).
const (
	PushSubscribing   = "subscribing"
	PushActive        = "active"
	PushDenied        = "denied"
	PushFailed        = "failed"
	PushUnsubscribing = "unsubscribing"
)

// WebSubOptions configures WebSub subscriptions.
type WebSubOptions struct {
	// CallbackBase is herald's public base URL; a feed's callback is
	// CallbackBase/websub/{FeedID}. Empty: WebSub is off.
	CallbackBase string
	// Secret is the key each subscription's hub.secret is derived from
	// (HMAC of the hub and topic), so no secret is stored.
	Secret []byte
	// Lease is the lease asked of hubs; default 10 days. Hubs choose.
	Lease time.Duration
	// Client makes the requests to hubs; nil: one with a 10s timeout.
	Client *http.Client
}

type webSub struct {
	p      *Poller
	opt    WebSubOptions
	client *http.Client
}

func newWebSub(p *Poller, opt WebSubOptions) *webSub {
	opt.CallbackBase = strings.TrimRight(opt.CallbackBase, "/")
	if opt.Lease <= 0 {
		opt.Lease = DefaultLease
	}
	c := opt.Client
	if c == nil {
		c = &http.Client{Timeout: hubTimeout}
	}
	return &webSub{p: p, opt: opt, client: c}
}

// FeedID is the path segment that names a feed in its WebSub callback:
// stable for a feed URL, and not the URL itself (hubs log callbacks).
func FeedID(feedURL string) string {
	sum := sha256.Sum256([]byte(feedURL))
	return hex.EncodeToString(sum[:8])
}

func (w *webSub) callback(feedURL string) string {
	return w.opt.CallbackBase + "/websub/" + FeedID(feedURL)
}

// secret is the hub.secret of the subscription of (hub, topic): under
// the 200 bytes the recommendation allows.
func (w *webSub) secret(hub, topic string) []byte {
	m := hmac.New(sha256.New, w.opt.Secret)
	m.Write([]byte("websub\x00" + hub + "\x00" + topic))
	return []byte(hex.EncodeToString(m.Sum(nil)))
}

// feedByID finds the configured feed a callback names.
func (p *Poller) feedByID(id string) (FeedConfig, bool) {
	for _, f := range p.feeds {
		if FeedID(f.URL) == id {
			return f, true
		}
	}
	return FeedConfig{}, false
}

// afterPoll keeps the feed's subscription in step with the hub it
// advertises (fr.Hub, from the Link header, before the document's).
func (p *Poller) afterPoll(ctx context.Context, feedURL string, fr *FetchResult, parsed *Parsed) {
	if p.websub == nil {
		return
	}
	hub, topic := fr.Hub, fr.Self
	if hub == "" && parsed != nil {
		hub, topic = parsed.Hub, parsed.Self
	} else if topic == "" && parsed != nil {
		topic = parsed.Self
	}
	if parsed == nil && hub == "" {
		// A 304 without Link headers says nothing new about the hub: keep
		// the subscription there is (its lease may be due for renewal).
		st, err := p.store.FeedState(ctx, feedURL)
		if err != nil || st.Push == nil || st.Push.State == PushUnsubscribing {
			return
		}
		hub, topic = st.Push.Hub, st.Push.Topic
	}
	if hub != "" && topic == "" {
		topic = feedURL
	}
	p.websub.reconcile(ctx, feedURL, hub, topic)
}

// hubRequest is one subscribe or unsubscribe to send.
type hubRequest struct {
	mode, hub, topic string
}

// reconcile decides, in one store transaction, what the subscription
// needs (a first subscribe, a renewal, a move to another hub, leaving a
// hub no longer advertised), records it as requested, then asks the hubs.
// The state is saved before the request goes out: a hub may verify
// before it has even answered.
func (w *webSub) reconcile(ctx context.Context, feedURL, hub, topic string) {
	now := w.p.now()
	interval := w.p.config(feedURL).Interval
	var reqs []hubRequest
	_, err := w.p.store.UpdateFeedState(ctx, feedURL, func(st *herald.FeedState) error {
		reqs = reqs[:0]
		cur := st.Push
		switch {
		case hub == "":
			if cur == nil || cur.State == PushUnsubscribing {
				return nil
			}
			reqs = append(reqs, hubRequest{"unsubscribe", cur.Hub, cur.Topic})
			cur.State, cur.RequestedAt, cur.Error = PushUnsubscribing, now, ""
		case cur != nil && (cur.Hub != hub || cur.Topic != topic):
			next := &herald.PushState{Hub: hub, Topic: topic, State: PushSubscribing, RequestedAt: now}
			if cur.State == PushActive || cur.State == PushSubscribing {
				reqs = append(reqs, hubRequest{"unsubscribe", cur.Hub, cur.Topic})
				next.OldHub, next.OldTopic = cur.Hub, cur.Topic
			}
			reqs = append(reqs, hubRequest{"subscribe", hub, topic})
			st.Push = next
		case cur == nil:
			reqs = append(reqs, hubRequest{"subscribe", hub, topic})
			st.Push = &herald.PushState{Hub: hub, Topic: topic, State: PushSubscribing, RequestedAt: now}
		case w.due(cur, now, interval):
			reqs = append(reqs, hubRequest{"subscribe", hub, topic})
			cur.RequestedAt = now
			if cur.State != PushActive { // an active lease stays active while it is renewed
				cur.State, cur.Error = PushSubscribing, ""
			}
		}
		return nil
	})
	if err != nil {
		w.p.log.ErrorContext(ctx, "websub: save state", "feed", feedURL, "err", err)
		return
	}
	for _, r := range reqs {
		if err := w.ask(ctx, feedURL, r); err != nil {
			w.p.log.WarnContext(ctx, "websub: hub request failed; polling goes on", "feed", feedURL, "hub", r.hub, "mode", r.mode, "err", err)
			if r.mode == "subscribe" {
				w.fail(ctx, feedURL, r, now, err)
			}
			continue
		}
		w.p.log.InfoContext(ctx, "websub: hub request accepted", "feed", feedURL, "hub", r.hub, "mode", r.mode, "topic", r.topic)
	}
}

// due says whether a subscription should be asked for again: a lease
// near its end, or a request that failed, was denied or was never
// verified, an hour on.
func (w *webSub) due(cur *herald.PushState, now time.Time, interval time.Duration) bool {
	if cur.State == PushActive {
		if cur.RequestedAt.After(cur.VerifiedAt) && now.Sub(cur.RequestedAt) < hubRetry {
			return false // a renewal is on its way
		}
		renewBefore := max(2*interval, time.Hour)
		return !now.Before(cur.LeaseExpires.Add(-renewBefore))
	}
	return now.Sub(cur.RequestedAt) >= hubRetry || cur.State == PushUnsubscribing
}

// fail records a subscribe the hub did not accept, unless a newer request
// or the hub's verification has overtaken it.
func (w *webSub) fail(ctx context.Context, feedURL string, r hubRequest, at time.Time, cause error) {
	_, err := w.p.store.UpdateFeedState(ctx, feedURL, func(st *herald.FeedState) error {
		cur := st.Push
		if cur == nil || cur.Hub != r.hub || cur.Topic != r.topic || !cur.RequestedAt.Equal(at) || cur.VerifiedAt.After(at) {
			return nil
		}
		cur.Error = cause.Error()
		if cur.State != PushActive {
			cur.State = PushFailed
		}
		return nil
	})
	if err != nil {
		w.p.log.ErrorContext(ctx, "websub: save state", "feed", feedURL, "err", err)
	}
}

// ask sends one subscribe or unsubscribe request to a hub (W3C WebSub
// 5.1); the hub answers 202 and verifies the intent at the callback.
func (w *webSub) ask(ctx context.Context, feedURL string, r hubRequest) error {
	form := url.Values{
		"hub.callback": {w.callback(feedURL)},
		"hub.mode":     {r.mode},
		"hub.topic":    {r.topic},
	}
	if r.mode == "subscribe" {
		form.Set("hub.lease_seconds", strconv.Itoa(int(w.opt.Lease/time.Second)))
		form.Set("hub.secret", string(w.secret(r.hub, r.topic)))
	}
	ctx, cancel := context.WithTimeout(ctx, hubTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.hub, strings.NewReader(form.Encode()))
	if err != nil {
		return fmt.Errorf("feed: websub: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if w.p.fetcher.userAgent != "" {
		req.Header.Set("User-Agent", w.p.fetcher.userAgent)
	}
	resp, err := w.client.Do(req)
	if err != nil {
		return fmt.Errorf("feed: websub: %s %s: %w", r.mode, r.hub, err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("feed: websub: hub answered %s to %s: %s", resp.Status, r.mode, strings.TrimSpace(collapseSpace(string(msg))))
	}
	return nil
}

// VerifyIntent answers a hub's verification of intent (W3C WebSub 5.3)
// at GET /websub/{feed}: it returns the challenge to echo when herald did
// ask for what the hub verifies (that mode, that topic), and ENOTFOUND
// (404, as the recommendation asks) when it did not. A hub's denial is
// recorded and acknowledged with an empty challenge.
func (p *Poller) VerifyIntent(ctx context.Context, feedID string, q url.Values) (string, error) {
	if p.websub == nil {
		return "", herald.Errorf(herald.ENOTFOUND, "WebSub is off")
	}
	f, ok := p.feedByID(feedID)
	if !ok {
		return "", herald.Errorf(herald.ENOTFOUND, "no feed has the WebSub callback %q", feedID)
	}
	mode, topic, challenge := q.Get("hub.mode"), q.Get("hub.topic"), q.Get("hub.challenge")
	if topic == "" {
		return "", herald.Errorf(herald.EINVALID, "hub.topic is missing").WithField("hub.topic")
	}
	if (mode == "subscribe" || mode == "unsubscribe") && challenge == "" {
		return "", herald.Errorf(herald.EINVALID, "hub.challenge is missing").WithField("hub.challenge")
	}
	now := p.now()
	var refused error
	_, err := p.store.UpdateFeedState(ctx, f.URL, func(st *herald.FeedState) error {
		refused = nil
		cur := st.Push
		switch mode {
		case "subscribe":
			if cur == nil || cur.Topic != topic || cur.State == PushUnsubscribing || !cur.RequestedAt.After(cur.VerifiedAt) {
				refused = herald.Errorf(herald.ENOTFOUND, "herald did not ask to subscribe to %q", topic)
				return nil
			}
			lease := p.websub.opt.Lease
			if secs, err := strconv.Atoi(q.Get("hub.lease_seconds")); err == nil && secs > 0 {
				lease = time.Duration(secs) * time.Second
			}
			cur.State, cur.Error, cur.VerifiedAt, cur.LeaseExpires = PushActive, "", now, now.Add(lease)
		case "unsubscribe":
			switch {
			case cur != nil && cur.State == PushUnsubscribing && cur.Topic == topic:
				st.Push = nil
			case cur != nil && cur.OldTopic == topic:
				cur.OldHub, cur.OldTopic = "", ""
			default:
				refused = herald.Errorf(herald.ENOTFOUND, "herald did not ask to unsubscribe from %q", topic)
			}
		case "denied":
			if cur == nil || cur.Topic != topic {
				refused = herald.Errorf(herald.ENOTFOUND, "herald has no subscription to %q", topic)
				return nil
			}
			cur.State, cur.Error = PushDenied, "the hub denied the subscription"
			if r := q.Get("hub.reason"); r != "" {
				cur.Error += ": " + truncate(collapseSpace(r), 200)
			}
			challenge = ""
		default:
			refused = herald.Errorf(herald.ENOTFOUND, "herald never asks for hub.mode %q", mode)
		}
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("feed: websub verify: %w", err)
	}
	if refused != nil {
		p.log.WarnContext(ctx, "websub: verification refused", "feed", f.URL, "mode", mode, "topic", topic, "why", refused)
		return "", refused
	}
	p.log.InfoContext(ctx, "websub: verified", "feed", f.URL, "mode", mode, "topic", topic)
	return challenge, nil
}

// Push takes content a hub distributed (W3C WebSub 7) at POST
// /websub/{feed}. The X-Hub-Signature must be the HMAC of the body under
// the subscription's secret (sha1, sha256, sha384 or sha512); a bad or
// missing one is EFORBIDDEN and changes nothing. A good body goes through
// the same ingest path as a polled one.
func (p *Poller) Push(ctx context.Context, feedID, signature, contentType string, body []byte) (*PollResult, error) {
	if p.websub == nil {
		return nil, herald.Errorf(herald.ENOTFOUND, "WebSub is off")
	}
	f, ok := p.feedByID(feedID)
	if !ok {
		return nil, herald.Errorf(herald.ENOTFOUND, "no feed has the WebSub callback %q", feedID)
	}
	st, err := p.store.FeedState(ctx, f.URL)
	if err != nil {
		return nil, fmt.Errorf("feed: load state of %s: %w", f.URL, err)
	}
	cur := st.Push
	if cur == nil || cur.State == PushUnsubscribing {
		return nil, herald.Errorf(herald.EFORBIDDEN, "herald holds no WebSub subscription for this feed")
	}
	if err := checkSignature(signature, p.websub.secret(cur.Hub, cur.Topic), body); err != nil {
		p.log.WarnContext(ctx, "websub: push refused", "feed", f.URL, "why", err)
		return nil, err
	}

	unlock, err := p.lock(ctx, f.URL)
	if err != nil {
		return nil, err
	}
	defer unlock()
	res := &PollResult{Feed: f.URL, Push: true}
	body, err = toUTF8(body, contentType)
	if err != nil {
		return nil, herald.Errorf(herald.EMALFORMED, "the pushed content is no feed: %s", err)
	}
	parsed, err := p.parser.Parse(body, cur.Topic)
	if err != nil {
		return nil, herald.Errorf(herald.EMALFORMED, "the pushed content is no feed: %s", strings.TrimPrefix(err.Error(), "feed: "))
	}
	// Read the state again under the lock: a poll may have finished since.
	if st, err = p.store.FeedState(ctx, f.URL); err != nil {
		return nil, fmt.Errorf("feed: load state of %s: %w", f.URL, err)
	}
	now := p.now()
	if err := p.ingest(ctx, res, st, f, parsed, now); err != nil {
		return nil, err
	}
	_, err = p.store.UpdateFeedState(ctx, f.URL, func(cur *herald.FeedState) error {
		cur.Initialized = true
		cur.NewPosts, cur.Held, cur.TotalPosts, cur.Skipped = st.NewPosts, st.Held, cur.TotalPosts+st.NewPosts, st.Skipped
		if cur.Push != nil {
			cur.Push.LastPush = now
			cur.Push.Pushes++
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("feed: save state of %s: %w", f.URL, err)
	}
	p.log.InfoContext(ctx, "websub: push taken", "feed", f.URL, "items", res.Items, "new", res.New, "held", res.Held)
	if p.onPoll != nil {
		p.onPoll(res)
	}
	return res, nil
}

// checkSignature verifies an X-Hub-Signature header, "method=hexdigest".
func checkSignature(header string, secret, body []byte) error {
	if header == "" {
		return herald.Errorf(herald.EFORBIDDEN, "the push carries no X-Hub-Signature")
	}
	method, digest, ok := strings.Cut(strings.TrimSpace(header), "=")
	var mk func() hash.Hash
	switch strings.ToLower(method) {
	case "sha1":
		mk = sha1.New
	case "sha256":
		mk = sha256.New
	case "sha384":
		mk = sha512.New384
	case "sha512":
		mk = sha512.New
	default:
		return herald.Errorf(herald.EFORBIDDEN, "X-Hub-Signature method %q is not sha1, sha256, sha384 or sha512", method)
	}
	got, err := hex.DecodeString(digest)
	if !ok || err != nil {
		return herald.Errorf(herald.EFORBIDDEN, "X-Hub-Signature is not method=hexdigest")
	}
	m := hmac.New(mk, secret)
	m.Write(body)
	if !hmac.Equal(got, m.Sum(nil)) {
		return herald.Errorf(herald.EFORBIDDEN, "X-Hub-Signature does not match the content")
	}
	return nil
}
