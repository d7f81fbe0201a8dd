package bounce

import (
	"bytes"
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/herald-dev/herald"
	"github.com/herald-dev/herald/internal/imaptest"
	"github.com/herald-dev/herald/store"
	"github.com/herald-dev/herald/subscription"
	"github.com/herald-dev/herald/templates"
)

// recorder is the subscription service on bbolt, with the readers
// given confirmed, tapped to record the reports it applied.
type recorder struct {
	herald.SubscriptionService
	db  *store.DB
	mu  sync.Mutex
	got []herald.Bounce
}

func (r *recorder) Bounce(ctx context.Context, email string, kind herald.BounceKind) (*herald.Subscriber, error) {
	sub, err := r.SubscriptionService.Bounce(ctx, email, kind)
	if err == nil {
		r.mu.Lock()
		r.got = append(r.got, herald.Bounce{Email: email, Kind: kind})
		r.mu.Unlock()
	}
	return sub, err
}

func (r *recorder) reports() []herald.Bounce {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]herald.Bounce(nil), r.got...)
}

// readers builds the subscription service on a bbolt file with the
// addresses as confirmed readers.
func readers(t *testing.T, emails ...string) *recorder {
	t.Helper()
	ctx := context.Background()
	db, err := store.Open(ctx, filepath.Join(t.TempDir(), "herald.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	tpl, err := templates.Load()
	if err != nil {
		t.Fatal(err)
	}
	secret, err := subscription.LoadSecret(ctx, db, "")
	if err != nil {
		t.Fatal(err)
	}
	tokens, err := subscription.NewTokens(secret, nil)
	if err != nil {
		t.Fatal(err)
	}
	svc, err := subscription.New(db, tokens, tpl, subscription.Options{SiteName: "My Blog", SiteURL: "https://blog.example.org",
		BaseURL: "https://herald.blog.example.org", From: "My Blog <digest@blog.example.org>"})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range emails {
		if _, err := svc.Subscribe(ctx, herald.SubscribeRequest{Email: e, Frequency: "daily", Confirmed: true, Source: "import"}); err != nil {
			t.Fatal(err)
		}
	}
	return &recorder{SubscriptionService: svc, db: db}
}

// The bounce mailbox holds reports as Postfix, Exim, Gmail and Microsoft
// 365 write them, mapped back by VERP or by the original Message-ID, one
// for an address herald no longer has, one for a message it never sent,
// and an auto-reply. Each known report is applied and moved out of the
// inbox; the others are left; a second poll changes nothing.
func TestMailboxPoll(t *testing.T) {
	srv := imaptest.Start(t)
	verp, err := NewVERP("bounces@blog.example.org", []byte("0123456789abcdef"))
	if err != nil {
		t.Fatal(err)
	}
	rec := readers(t, "alice@example.net", "bob@example.com", "erin@gmail.com", "frank@contoso.com")
	db := rec.db
	ctx := context.Background()
	now := time.Now()
	if err := db.RecordSent(ctx, []herald.SentMessage{
		{MessageID: "<gmail-1@blog.example.org>", To: "erin@gmail.com", At: now},
		{MessageID: "<m365-1@blog.example.org>", To: "frank@contoso.com", At: now},
	}); err != nil {
		t.Fatal(err)
	}
	plain := "bounces@blog.example.org"
	add := func(file, returnPath, msgID string) {
		srv.Append(fill(mustRead(t, file), returnPath, msgID))
	}
	add("postfix.eml", verp.Address("alice@example.net"), "<p1@blog.example.org>")       // VERP, hard
	add("postfix-delayed.eml", verp.Address("bob@example.com"), "<p2@blog.example.org>") // VERP, soft
	add("exim.eml", verp.Address("carol@example.org"), "<e1@blog.example.org>")          // VERP, a reader herald no longer has
	add("gmail.eml", plain, "<GMAIL-1@blog.example.org>")                                // Message-ID
	add("m365.eml", plain, "<m365-1@blog.example.org>")                                  // Message-ID
	add("exim-plain.eml", plain, "<never-sent@blog.example.org>")                        // unknown: left
	add("autoreply.eml", plain, "")                                                      // no report: left

	mb, err := NewMailbox(MailboxOptions{
		URL: srv.URL(), Password: imaptest.Password,
		VERP: verp, Sent: db, Subscriptions: rec,
	})
	if err != nil {
		t.Fatal(err)
	}
	res, err := mb.Poll(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if res != (PollResult{Read: 7, Applied: 4, Unknown: 1, Left: 2}) {
		t.Fatalf("poll: %+v", res)
	}
	want := map[string]herald.BounceKind{"alice@example.net": herald.BounceHard, "bob@example.com": herald.BounceSoft,
		"erin@gmail.com": herald.BounceHard, "frank@contoso.com": herald.BounceHard}
	got := rec.reports()
	if len(got) != len(want) {
		t.Fatalf("applied %+v", got)
	}
	for _, b := range got {
		if want[b.Email] != b.Kind {
			t.Errorf("applied %+v, want kind %q", b, want[b.Email])
		}
	}
	if inbox := srv.Subjects("INBOX"); len(inbox) != 2 {
		t.Fatalf("left in the inbox: %q, want the unknown report and the auto-reply", inbox)
	}
	if done := srv.Subjects("herald-processed"); len(done) != 5 {
		t.Fatalf("moved: %q", done)
	}
	res, err = mb.Poll(ctx)
	if err != nil || res != (PollResult{}) {
		t.Fatalf("second poll: %+v %v", res, err)
	}
	if len(rec.reports()) != 4 {
		t.Fatal("a second poll applied reports again")
	}
}

func TestMailboxURL(t *testing.T) {
	rec := readers(t)
	for _, bad := range []string{"", "http://h/INBOX", "imaps://host/INBOX", "imaps://u:pw@host/INBOX", "imap+insecure://u@mail.example.org/INBOX"} {
		if _, err := NewMailbox(MailboxOptions{URL: bad, Subscriptions: rec}); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	for _, good := range []string{"imaps://u@mail.example.org/INBOX", "imap://u@mail.example.org", "imap+insecure://u@127.0.0.1:1143/Bounces"} {
		if _, err := NewMailbox(MailboxOptions{URL: good, Subscriptions: rec}); err != nil {
			t.Errorf("%q: %v", good, err)
		}
	}
}

func mustRead(t *testing.T, name string) []byte {
	t.Helper()
	b := corpus(t, name)
	// corpus filled the placeholders with the test defaults; undo that
	// for the mailbox test, which fills its own.
	b = bytes.ReplaceAll(b, []byte(testReturnPath), []byte("{{RETURN_PATH}}"))
	return bytes.ReplaceAll(b, []byte(testMessageID), []byte("{{MESSAGE_ID}}"))
}
