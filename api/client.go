package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"

	"github.com/herald-dev/herald"
)

// Client calls a herald's admin API. The admin UI uses it in-process
// (an HTTP client whose transport calls the handler), the command line and
// the load harness over the network.
type Client struct {
	// BaseURL is herald's address without a trailing slash, such as
	// "http://127.0.0.1:8080".
	BaseURL string
	// Token is admin.token.
	Token string
	// HTTP sends the requests; nil is http.DefaultClient.
	HTTP      *http.Client
	UserAgent string
}

// Error is an answer of the server that is not a success.
type Error struct {
	Status int
	// Message is the server's message (or, when the answer had none, the
	// status), safe to show.
	Message string
	Field   string
	// Body is the whole answer, as read (at most 16 MiB).
	Body []byte
}

func (e *Error) Error() string { return e.Message }

// StatusOf is the HTTP status of an *Error in err's chain, 0 for others.
func StatusOf(err error) int {
	var e *Error
	if errors.As(err, &e) {
		return e.Status
	}
	return 0
}

// maxAnswer bounds what is read of an answer that is not streamed.
const maxAnswer = 16 << 20

// Do sends a request and returns the response when its status is 2xx;
// the caller closes its body. Any other status is an *Error.
func (c *Client) Do(ctx context.Context, method, path, contentType string, body io.Reader) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.BaseURL+path, body)
	if err != nil {
		return nil, fmt.Errorf("api: %s %s: %w", method, path, err)
	}
	req.Header.Set("Authorization", "Bearer "+c.Token)
	req.Header.Set("Accept", "application/json")
	if c.UserAgent != "" {
		req.Header.Set("User-Agent", c.UserAgent)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	res, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("api: %s %s: %w", method, path, err)
	}
	if res.StatusCode/100 == 2 {
		return res, nil
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(res.Body, maxAnswer))
	e := &Error{Status: res.StatusCode, Body: b}
	var eb ErrorBody
	if json.Unmarshal(b, &eb) == nil && eb.Error != "" {
		e.Message, e.Field = eb.Error, eb.Field
	} else {
		e.Message = fmt.Sprintf("the server answered %d %s", res.StatusCode, http.StatusText(res.StatusCode))
	}
	return nil, e
}

// call sends in (as JSON, when not nil) and decodes the answer into out
// (when not nil).
func (c *Client) call(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	ct := ""
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("api: encode %s: %w", path, err)
		}
		body, ct = bytes.NewReader(b), "application/json"
	}
	res, err := c.Do(ctx, method, path, ct, body)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	return decode(res, path, out)
}

func decode(res *http.Response, path string, out any) error {
	if out == nil || res.StatusCode == http.StatusNoContent {
		_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, maxAnswer))
		return nil
	}
	if err := json.NewDecoder(io.LimitReader(res.Body, maxAnswer)).Decode(out); err != nil {
		return fmt.Errorf("api: unreadable answer from %s: %w", path, err)
	}
	return nil
}

// SubscriberQuery selects a page of GET /api/v1/subscribers; empty fields
// are left out.
type SubscriberQuery struct {
	Status herald.Status
	Q      string
	Limit  int
	After  string // the Next of the previous page
	// Newest lists the newest first (order=newest).
	Newest bool
}

// ListSubscribers reads a page of subscribers.
func (c *Client) ListSubscribers(ctx context.Context, q SubscriberQuery) (*SubscriberList, error) {
	v := url.Values{}
	if q.Status != "" {
		v.Set("status", string(q.Status))
	}
	if q.Q != "" {
		v.Set("q", q.Q)
	}
	if q.Limit > 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	if q.After != "" {
		v.Set("after", q.After)
	}
	if q.Newest {
		v.Set("order", "newest")
	}
	var out SubscriberList
	return &out, c.call(ctx, http.MethodGet, "/api/v1/subscribers?"+v.Encode(), nil, &out)
}

// Subscriber reads one subscriber.
func (c *Client) Subscriber(ctx context.Context, email string) (*herald.Subscriber, error) {
	var out herald.Subscriber
	return &out, c.call(ctx, http.MethodGet, "/api/v1/subscribers/"+url.PathEscape(email), nil, &out)
}

// UpdateSubscriber changes the fields p sets (PATCH), and returns the
// reader as they are now.
func (c *Client) UpdateSubscriber(ctx context.Context, email string, p herald.SubscriberPatch) (*herald.Subscriber, error) {
	var out herald.Subscriber
	return &out, c.call(ctx, http.MethodPatch, "/api/v1/subscribers/"+url.PathEscape(email), p, &out)
}

// AddSubscriber adds one (409 when the address is known).
func (c *Client) AddSubscriber(ctx context.Context, r herald.SubscribeRequest) (*herald.Subscriber, error) {
	var out herald.Subscriber
	return &out, c.call(ctx, http.MethodPost, "/api/v1/subscribers", r, &out)
}

// ResendConfirmation sends a pending reader the confirmation again.
func (c *Client) ResendConfirmation(ctx context.Context, email string) (*herald.Subscriber, error) {
	var out herald.Subscriber
	return &out, c.call(ctx, http.MethodPost, "/api/v1/subscribers/"+url.PathEscape(email)+"/resend", nil, &out)
}

// DeleteSubscriber erases one and their history.
func (c *Client) DeleteSubscriber(ctx context.Context, email string) error {
	return c.call(ctx, http.MethodDelete, "/api/v1/subscribers/"+url.PathEscape(email), nil, nil)
}

// ExportCSV starts the CSV export; the caller reads and closes the
// response's body (its headers name the file).
func (c *Client) ExportCSV(ctx context.Context) (*http.Response, error) {
	return c.Do(ctx, http.MethodGet, "/api/v1/subscribers.csv", "", nil)
}

// ImportCSV streams a CSV file to the import. When the import stopped
// part-way, the report of what was done comes with the *Error.
func (c *Client) ImportCSV(ctx context.Context, file io.Reader, confirmed bool) (*herald.ImportReport, error) {
	path := "/api/v1/subscribers.csv"
	if confirmed {
		path += "?confirmed=true"
	}
	res, err := c.Do(ctx, http.MethodPost, path, "text/csv", file)
	var e *Error
	if errors.As(err, &e) {
		var stopped ImportStopped
		if json.Unmarshal(e.Body, &stopped) == nil && stopped.ImportReport != nil && stopped.Rows > 0 {
			return stopped.ImportReport, err
		}
		return nil, err
	} else if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	var rep herald.ImportReport
	return &rep, decode(res, path, &rep)
}

// Stats reads the counts.
func (c *Client) Stats(ctx context.Context) (*herald.Stats, error) {
	var out herald.Stats
	return &out, c.call(ctx, http.MethodGet, "/api/v1/stats", nil, &out)
}

// page is the query of a page of a list: its size, and where the
// previous page ended (name: the cursor's parameter).
func page(limit int, name, cursor string) string {
	v := url.Values{}
	if limit > 0 {
		v.Set("limit", strconv.Itoa(limit))
	}
	if cursor != "" {
		v.Set(name, cursor)
	}
	return v.Encode()
}

// ListPosts reads a page of posts, newest first; after is the Next of the
// previous page.
func (c *Client) ListPosts(ctx context.Context, limit int, after string) (*PostList, error) {
	var out PostList
	return &out, c.call(ctx, http.MethodGet, "/api/v1/posts?"+page(limit, "after", after), nil, &out)
}

// AddPost sends a post, as a CMS webhook does.
func (c *Client) AddPost(ctx context.Context, p herald.PostInput) (*PostAdded, error) {
	var out PostAdded
	return &out, c.call(ctx, http.MethodPost, "/api/v1/posts", p, &out)
}

// SendPost makes a silent post go out with every reader's next email.
func (c *Client) SendPost(ctx context.Context, id uint64) (*herald.Post, error) {
	var out PostSent
	err := c.call(ctx, http.MethodPost, "/api/v1/posts/"+strconv.FormatUint(id, 10)+"/send", nil, &out)
	return out.Post, err
}

// Feeds reads what is known of every feed.
func (c *Client) Feeds(ctx context.Context) ([]*herald.FeedState, error) {
	var out FeedList
	err := c.call(ctx, http.MethodGet, "/api/v1/feeds", nil, &out)
	return out.Feeds, err
}

// PollFeeds polls every feed now.
func (c *Client) PollFeeds(ctx context.Context) ([]*herald.PollResult, error) {
	var out PollResults
	err := c.call(ctx, http.MethodPost, "/api/v1/feeds/poll", nil, &out)
	return out.Results, err
}

// StartRun starts a digest run.
func (c *Client) StartRun(ctx context.Context, r RunRequest) (*RunStarted, error) {
	var out RunStarted
	return &out, c.call(ctx, http.MethodPost, "/api/v1/runs", r, &out)
}

// Run reads a run.
func (c *Client) Run(ctx context.Context, id uint64) (*herald.Run, error) {
	var out herald.Run
	return &out, c.call(ctx, http.MethodGet, "/api/v1/runs/"+strconv.FormatUint(id, 10), nil, &out)
}

// RunQuery selects a page of GET /api/v1/runs.
type RunQuery struct {
	Limit  int
	Before string // the Next of the previous page
	// SkipEmpty leaves out the runs that ended mailing nobody (dry runs,
	// runs with nothing new for anyone).
	SkipEmpty bool
}

// ListRuns reads a page of runs, newest first.
func (c *Client) ListRuns(ctx context.Context, q RunQuery) (*RunList, error) {
	path := "/api/v1/runs?" + page(q.Limit, "before", q.Before)
	if q.SkipEmpty {
		path += "&skip_empty=true"
	}
	var out RunList
	return &out, c.call(ctx, http.MethodGet, path, nil, &out)
}

// Schedule reads when runs start by themselves.
func (c *Client) Schedule(ctx context.Context) (*herald.Timetable, error) {
	var out herald.Timetable
	return &out, c.call(ctx, http.MethodGet, "/api/v1/schedule", nil, &out)
}

// Preview is the HTML digest the reader would get if a run started now;
// ok is false when nothing is new for them.
func (c *Client) Preview(ctx context.Context, email string) (html string, ok bool, err error) {
	res, err := c.Do(ctx, http.MethodGet, "/api/v1/preview?email="+url.QueryEscape(email), "", nil)
	if err != nil {
		return "", false, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(io.LimitReader(res.Body, maxAnswer))
	if err != nil {
		return "", false, fmt.Errorf("api: preview: %w", err)
	}
	return string(b), res.StatusCode != http.StatusNoContent && len(b) > 0, nil
}

// SendTest queues a test digest to any address.
func (c *Client) SendTest(ctx context.Context, to string, topics ...string) error {
	return c.call(ctx, http.MethodPost, "/api/v1/test-email", TestEmailRequest{To: to, Topics: topics}, nil)
}

// Bounce reports a bounce or a complaint.
func (c *Client) Bounce(ctx context.Context, r BounceReport) (*BounceAnswer, error) {
	var out BounceAnswer
	return &out, c.call(ctx, http.MethodPost, "/api/v1/bounces", r, &out)
}

// Reactivate makes a bounced reader confirmed again.
func (c *Client) Reactivate(ctx context.Context, email string) (*herald.Subscriber, error) {
	var out herald.Subscriber
	return &out, c.call(ctx, http.MethodPost, "/api/v1/subscribers/"+url.PathEscape(email)+"/reactivate", nil, &out)
}

// Backup starts a download of the database; the caller reads and closes
// the response's body.
func (c *Client) Backup(ctx context.Context) (*http.Response, error) {
	return c.Do(ctx, http.MethodGet, "/api/v1/backup", "", nil)
}
