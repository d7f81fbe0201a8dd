package api_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/herald-dev/herald"
	"github.com/herald-dev/herald/api"
	"github.com/herald-dev/herald/internal/testenv"
)

// The client against the real API (a whole herald in the test): every
// call decodes what the handlers encode, and failures come back as
// *api.Error with the server's message.
func TestClientAgainstTheAPI(t *testing.T) {
	app := testenv.New(t, testenv.Options{AdminToken: testenv.Token})
	c := &api.Client{BaseURL: app.URL, Token: testenv.Token}
	ctx := context.Background()

	added, err := c.AddSubscriber(ctx, herald.SubscribeRequest{Email: "Ann@Example.ORG", Name: "Ann", Frequency: "weekly", Confirmed: true})
	if err != nil || added.Email != "Ann@example.org" || added.Status != herald.StatusConfirmed {
		t.Fatalf("add: %+v %v", added, err)
	}
	_, err = c.AddSubscriber(ctx, herald.SubscribeRequest{Email: "Ann@example.org"})
	var ae *api.Error
	if !errors.As(err, &ae) || ae.Status != http.StatusConflict || ae.Field != "email" || !strings.Contains(ae.Message, "exists") {
		t.Fatalf("add again: %v", err)
	}
	if _, err := c.AddSubscriber(ctx, herald.SubscribeRequest{Email: "nope"}); api.StatusOf(err) != http.StatusUnprocessableEntity {
		t.Fatalf("bad address: %v", err)
	}
	rep, err := c.ImportCSV(ctx, strings.NewReader("email,name\nb@example.org,B\nc@example.org,C\nnot-an-address,X\n"), true)
	if err != nil || rep.Added != 2 || rep.InvalidTotal != 1 || rep.Invalid[0].Line != 4 {
		t.Fatalf("import: %+v %v", rep, err)
	}
	if _, err := c.ImportCSV(ctx, strings.NewReader("name\nX\n"), true); api.StatusOf(err) != http.StatusUnprocessableEntity || !strings.Contains(err.Error(), "no email column") {
		t.Fatalf("import without an email column: %v", err)
	}
	// An import that stops part-way brings the report of what it did.
	long := "email\nd@example.org\n\"" + strings.Repeat("x", 2<<20)
	rep, err = c.ImportCSV(ctx, strings.NewReader(long), true)
	if api.StatusOf(err) != http.StatusRequestEntityTooLarge || rep == nil || rep.Added != 1 {
		t.Fatalf("stopped import: %+v %v", rep, err)
	}
	l, err := c.ListSubscribers(ctx, api.SubscriberQuery{Status: herald.StatusConfirmed, Limit: 2})
	if err != nil || len(l.Subscribers) != 2 || l.Next == "" {
		t.Fatalf("list: %+v %v", l, err)
	}
	l2, err := c.ListSubscribers(ctx, api.SubscriberQuery{Status: herald.StatusConfirmed, Limit: 2, After: l.Next})
	if err != nil || len(l2.Subscribers) != 2 || l2.Subscribers[0].ID <= l.Subscribers[1].ID {
		t.Fatalf("next page: %+v %v", l2, err)
	}
	if s, err := c.Subscriber(ctx, "b@example.org"); err != nil || s.Name != "B" {
		t.Fatalf("get: %+v %v", s, err)
	}
	res, err := c.ExportCSV(ctx)
	if err != nil {
		t.Fatal(err)
	}
	csv, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if !strings.HasPrefix(string(csv), "email,name,frequency,status") || !strings.Contains(string(csv), "c@example.org,C,daily,confirmed") {
		t.Fatalf("export:\n%s", csv)
	}

	added2, err := c.AddPost(ctx, herald.PostInput{URL: "https://blog.example.org/one/", Title: "One <b>post</b>", Summary: "<p>Hi</p>"})
	if err != nil || !added2.Created || added2.Post.Title != "One post" {
		t.Fatalf("add post: %+v %v", added2, err)
	}
	if _, err := c.AddPost(ctx, herald.PostInput{URL: "ftp://x", Title: "t"}); api.StatusOf(err) != http.StatusUnprocessableEntity {
		t.Fatalf("bad post: %v", err)
	}
	if html, ok, err := c.Preview(ctx, "b@example.org"); err != nil || !ok || !strings.Contains(html, "One post") {
		t.Fatalf("preview: %v %v", ok, err)
	}
	started, err := c.StartRun(ctx, api.RunRequest{Frequency: "daily"})
	if err != nil || started.ID == 0 || started.Run.Frequency != herald.Daily {
		t.Fatalf("start run: %+v %v", started, err)
	}
	var run *herald.Run
	testenv.Eventually(t, time.Minute, "the run to end", func() bool {
		run, err = c.Run(ctx, started.ID)
		return err == nil && (run.State == herald.RunDone || run.State == herald.RunFailed)
	})
	if run.State != herald.RunDone || run.Sent != 3 {
		t.Fatalf("run %+v", run)
	}
	if _, ok, err := c.Preview(ctx, "b@example.org"); err != nil || ok {
		t.Fatalf("preview after the run: %v %v", ok, err)
	}
	// The daily run, and the instant run the new post woke (nobody reads
	// instantly), a page each.
	testenv.Eventually(t, time.Minute, "the instant run", func() bool {
		runs, err := c.ListRuns(ctx, api.RunQuery{Limit: 10})
		return err == nil && len(runs.Runs) == 2 && runs.Runs[0].FinishedAt != nil && runs.Runs[1].FinishedAt != nil
	})
	if runs, err := c.ListRuns(ctx, api.RunQuery{Limit: 1}); err != nil || len(runs.Runs) != 1 || runs.Next == "" {
		t.Fatalf("runs: %+v %v", runs, err)
	} else if older, err := c.ListRuns(ctx, api.RunQuery{Limit: 1, Before: runs.Next}); err != nil || len(older.Runs) != 1 || older.Runs[0].ID >= runs.Runs[0].ID {
		t.Fatalf("older runs: %+v %v", older, err)
	}
	if posts, err := c.ListPosts(ctx, 10, ""); err != nil || len(posts.Posts) != 1 || len(posts.Posts[0].Runs) != 1 || posts.Posts[0].Runs[0] != started.ID {
		t.Fatalf("posts: %+v %v", posts, err)
	}
	if _, err := c.Run(ctx, 999); api.StatusOf(err) != http.StatusNotFound {
		t.Fatalf("unknown run: %v", err)
	}
	if err := c.SendTest(ctx, "editor@example.org"); err != nil {
		t.Fatal(err)
	}
	if feeds, err := c.Feeds(ctx); err != nil || len(feeds) != 0 {
		t.Fatalf("feeds: %v %v", feeds, err)
	}
	if results, err := c.PollFeeds(ctx); err != nil || len(results) != 0 {
		t.Fatalf("poll: %v %v", results, err)
	}
	if b, err := c.Bounce(ctx, api.BounceReport{Email: "c@example.org", Kind: "complaint"}); err != nil || b.Status != herald.StatusUnsubscribed {
		t.Fatalf("bounce: %+v %v", b, err)
	}
	if _, err := c.Reactivate(ctx, "c@example.org"); api.StatusOf(err) != http.StatusConflict {
		t.Fatalf("reactivate an unsubscribed reader: %v", err)
	}
	app.OutboxSent()
	st, err := c.Stats(ctx)
	if err != nil || st.Subscribers.Total != 4 || st.Posts != 1 || st.Runs != 2 || st.Emails.Sent != 4 || st.Outbox != 0 {
		t.Fatalf("stats %+v %v", st, err)
	}
	res, err = c.Backup(ctx)
	if err != nil {
		t.Fatal(err)
	}
	n, _ := io.Copy(io.Discard, res.Body)
	res.Body.Close()
	if n == 0 {
		t.Fatal("empty backup")
	}
	if err := c.DeleteSubscriber(ctx, "b@example.org"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Subscriber(ctx, "b@example.org"); api.StatusOf(err) != http.StatusNotFound {
		t.Fatalf("after delete: %v", err)
	}

	// A wrong token, and no server at all.
	bad := &api.Client{BaseURL: app.URL, Token: "wrong"}
	if _, err := bad.Stats(ctx); api.StatusOf(err) != http.StatusUnauthorized {
		t.Fatalf("wrong token: %v", err)
	}
	gone := &api.Client{BaseURL: "http://127.0.0.1:1", Token: testenv.Token}
	if _, err := gone.Stats(ctx); err == nil || api.StatusOf(err) != 0 {
		t.Fatalf("no server: %v", err)
	}
}
