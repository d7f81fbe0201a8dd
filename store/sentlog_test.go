package store

import (
	"context"
	"testing"
	"time"

	"github.com/herald-dev/herald"
)

func TestSentLog(t *testing.T) {
	db := openTemp(t)
	ctx := context.Background()
	day0 := time.Date(2025, 3, 1, 23, 59, 0, 0, time.UTC)
	if err := db.RecordSent(ctx, []herald.SentMessage{
		{MessageID: "<A1@blog.example.org>", To: "alice@example.net", At: day0},
		{MessageID: "<b2@blog.example.org>", To: "bob@example.net", At: day0.Add(2 * time.Minute)},
	}); err != nil {
		t.Fatal(err)
	}
	for id, want := range map[string]string{
		"<a1@blog.example.org>": "alice@example.net", "A1@BLOG.EXAMPLE.ORG": "alice@example.net",
		"<b2@blog.example.org>": "bob@example.net", "<c3@blog.example.org>": "",
	} {
		if got, err := db.SentTo(ctx, id); err != nil || got != want {
			t.Errorf("SentTo(%s) = %q, %v; want %q", id, got, err, want)
		}
	}
	// Past the keep period the old days go.
	later := day0.AddDate(0, 0, SentLogKeep+1)
	if err := db.RecordSent(ctx, []herald.SentMessage{{MessageID: "<d4@x>", To: "d@example.net", At: later}}); err != nil {
		t.Fatal(err)
	}
	if got, _ := db.SentTo(ctx, "<a1@blog.example.org>"); got != "" {
		t.Errorf("a message older than %d days is still known: %q", SentLogKeep, got)
	}
	if got, _ := db.SentTo(ctx, "<b2@blog.example.org>"); got != "bob@example.net" {
		t.Errorf("a message within the keep period was dropped: %q", got)
	}
	if got, _ := db.SentTo(ctx, "<d4@x>"); got != "d@example.net" {
		t.Errorf("newest: %q", got)
	}
}
