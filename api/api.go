// Package api is herald's admin API seen from outside: the request and
// answer bodies of /api/v1 (the handlers encode them; the admin UI, the
// command line and the load harness decode them), and the one client of
// it they share.
package api

import "github.com/herald-dev/herald"

// ErrorBody is the answer to a request that failed: a message safe to
// show, and the input field at fault when there is one.
type ErrorBody struct {
	Error string `json:"error"`
	Field string `json:"field,omitempty"`
}

// ChallengeAsked is the 429 of a JSON POST /subscribe while sign-ups
// must solve the challenge: why (a bad solution says what was wrong
// with it), and a fresh challenge to solve and send back as "challenge"
// and "solution".
type ChallengeAsked struct {
	ErrorBody
	Challenge herald.Challenge `json:"challenge"`
}

// SubscriberList is GET /api/v1/subscribers.
type SubscriberList struct {
	Subscribers []*herald.Subscriber `json:"subscribers"`
	// Next is the after of the next page; "" when this is the last.
	Next string `json:"next"`
}

// SubscriberExists is the 409 of POST /api/v1/subscribers: the address is
// known, and this is the reader as they are.
type SubscriberExists struct {
	ErrorBody
	Subscriber *herald.Subscriber `json:"subscriber"`
}

// ImportStopped is the answer to an import that stopped part-way: why,
// and what was done before.
type ImportStopped struct {
	Error string `json:"error"`
	*herald.ImportReport
}

// PostList is GET /api/v1/posts, newest first.
type PostList struct {
	Posts []*herald.PostRuns `json:"posts"`
	Next  string             `json:"next"`
}

// PostAdded is the answer to POST /api/v1/posts (201 when created, 200
// when it updated a known post).
type PostAdded struct {
	Post    *herald.Post `json:"post"`
	Created bool         `json:"created"`
}

// PostSent is the answer to POST /api/v1/posts/{id}/send: the post, a
// silent one made the newest, for every reader's next email.
type PostSent struct {
	Post *herald.Post `json:"post"`
}

// FeedList is GET /api/v1/feeds.
type FeedList struct {
	Feeds []*herald.FeedState `json:"feeds"`
}

// PollResults is the answer to POST /api/v1/feeds/poll.
type PollResults struct {
	Results []*herald.PollResult `json:"results"`
}

// PushResult is the answer to a WebSub hub's content distribution
// (POST /websub/{feed}): what the pushed body brought.
type PushResult struct {
	Result *herald.PollResult `json:"result"`
}

// RunRequest is the body of POST /api/v1/runs; an empty body starts a run
// of the default frequency.
type RunRequest struct {
	Frequency string `json:"frequency,omitempty"`
	DryRun    bool   `json:"dry_run"`
}

// RunStarted is the 202 of POST /api/v1/runs.
type RunStarted struct {
	ID  uint64      `json:"id"`
	Run *herald.Run `json:"run"`
}

// RunList is GET /api/v1/runs, newest first.
type RunList struct {
	Runs []*herald.Run `json:"runs"`
	Next string        `json:"next"`
}

// TestEmailRequest is the body of POST /api/v1/test-email. With topics,
// the sample holds the latest posts a reader with those topics would get.
type TestEmailRequest struct {
	To     string   `json:"to"`
	Topics []string `json:"topics,omitempty"`
}

// TestEmailQueued is its 202.
type TestEmailQueued struct {
	Status string `json:"status"` // "queued"
	To     string `json:"to"`
}

// BounceReport is the body of POST /api/v1/bounces.
type BounceReport struct {
	Email string `json:"email"`
	Kind  string `json:"kind"` // hard, soft or complaint
}

// BounceAnswer says where the reader stands after a report.
type BounceAnswer struct {
	Email   string        `json:"email"`
	Kind    string        `json:"kind,omitempty"`
	Status  herald.Status `json:"status"`
	Bounces int           `json:"bounces"`
}

// Health is GET /healthz.
type Health struct {
	Status string `json:"status"` // "ok" or "unavailable"
	Error  string `json:"error,omitempty"`
}
