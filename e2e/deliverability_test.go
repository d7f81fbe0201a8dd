package e2e

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-msgauth/dkim"

	"github.com/herald-dev/herald/internal/smtptest"
	"github.com/herald-dev/herald/internal/testmail"
	"github.com/herald-dev/herald/mailer"
)

// TestWholeProcessDeliverability: the built binary signs its mail, marks
// an address whose confirmation bounced, archives a digest without any
// reader's links, and takes bounce reports.
func TestWholeProcessDeliverability(t *testing.T) {
	sm := smtptest.Start(t)
	sm.RejectRecipient(func(addr string) (int, string, bool) {
		return 550, "5.1.1 no such user", strings.HasPrefix(addr, "ghost@")
	})
	keyPEM, txt, err := mailer.GenerateKey("rsa")
	if err != nil {
		t.Fatal(err)
	}
	key := filepath.Join(t.TempDir(), "dkim.pem")
	if err := os.WriteFile(key, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	in := newInstance(t, smtpConfig(sm.Port(), fmt.Sprintf("[dkim]\ndomain = \"example.org\"\nselector = \"e2e\"\nprivate_key = %q\n", key)))
	p := in.start()

	if r := in.api("POST", "/api/v1/subscribers", `{"email":"reader@example.com","frequency":"daily","confirmed":true}`); r.Status != 201 {
		t.Fatalf("add reader: %d %s", r.Status, r.Body)
	}
	if r := in.do("POST", "/subscribe", "application/x-www-form-urlencoded", form(map[string]string{"email": "ghost@example.com"})); r.Status != 303 {
		t.Fatalf("subscribe ghost: %d", r.Status)
	}
	if r := in.api("POST", "/api/v1/posts", `{"guid":"d1","url":"https://blog.example.org/d1/","title":"Déjà vu","summary":"<p>Again.</p>","published_at":"2026-11-25T07:00:00Z"}`); r.Status != 201 && r.Status != 200 {
		t.Fatalf("add post: %d %s", r.Status, r.Body)
	}
	run := in.runAndWait("daily")
	if run["state"] != "done" || run["sent"] != float64(1) {
		t.Fatalf("run %v", run)
	}
	msgs := sm.WaitFor(t, 1, 10*time.Second)
	m := msgs[len(msgs)-1]
	if m.To[0] != "reader@example.com" {
		t.Fatalf("digest went to %v", m.To)
	}
	vs, err := dkim.VerifyWithOptions(bytes.NewReader(m.Data), &dkim.VerifyOptions{
		LookupTXT: func(name string) ([]string, error) {
			if name != "e2e._domainkey.example.org" {
				return nil, fmt.Errorf("no record at %s", name)
			}
			return []string{txt}, nil
		},
	})
	if err != nil || len(vs) != 1 || vs[0].Err != nil {
		t.Fatalf("digest does not verify: %v %+v", err, vs)
	}
	if errs := testmail.Lint(m.Data, testmail.LintOptions{FromAddress: "digest@example.org", Subject: "Déjà vu"}); len(errs) > 0 {
		t.Errorf("digest: %v", errs)
	}

	// The archive has it, without the reader's links.
	id := fmt.Sprint(uint64(run["id"].(float64)))
	deadline := time.Now().Add(10 * time.Second)
	var list response
	for time.Now().Before(deadline) {
		if list = in.do("GET", "/archive", "", ""); strings.Contains(list.Body, "/archive/"+id) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if list.Status != 200 || !strings.Contains(list.Body, "/archive/"+id) {
		t.Fatalf("/archive: %d\n%s", list.Status, list.Body)
	}
	page := in.do("GET", "/archive/"+id, "", "")
	if page.Status != 200 || !strings.Contains(page.Body, "Déjà vu") || strings.Contains(page.Body, "token=") || strings.Contains(page.Body, "reader@example.com") {
		t.Fatalf("/archive/%s: %d\n%s", id, page.Status, page.Body)
	}
	if feed := in.do("GET", "/archive.xml", "", ""); feed.Status != 200 || !strings.Contains(feed.Body, in.base+"/archive/"+id) {
		t.Fatalf("/archive.xml: %d\n%s", feed.Status, feed.Body)
	}

	// The confirmation to ghost@ got a 550: that address is bounced.
	deadline = time.Now().Add(10 * time.Second)
	for in.status("ghost@example.com") != "bounced" {
		if time.Now().After(deadline) {
			t.Fatalf("ghost is %s", in.status("ghost@example.com"))
		}
		time.Sleep(50 * time.Millisecond)
	}
	// A complaint from the relay unsubscribes at once.
	if r := in.api("POST", "/api/v1/bounces", `{"email":"reader@example.com","kind":"complaint"}`); r.Status != 200 || in.status("reader@example.com") != "unsubscribed" {
		t.Fatalf("complaint: %d %s", r.Status, r.Body)
	}
	p.stop()
}
