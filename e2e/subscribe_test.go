package e2e

import (
	"encoding/json"
	"fmt"
	"net/url"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/herald-dev/herald/internal/smtptest"
	"github.com/herald-dev/herald/internal/testenv"
	"github.com/herald-dev/herald/internal/testmail"
)

const adminToken = "e2e-admin-token-0123456789"

func smtpConfig(smtpPort int, extra string) string {
	return fmt.Sprintf(`
[server]
listen = "{{LISTEN}}"
base_url = "{{BASE}}"
[store]
path = "{{DIR}}/herald.db"
[site]
name = "E2E Blog"
url = "https://blog.example.org"
[mail]
from = "E2E Blog <digest@example.org>"
transport = "smtp"
[smtp]
host = "127.0.0.1"
port = %d
tls = "none"
connections = 2
timeout = "5s"
[admin]
token = "%s"
[log]
level = "debug"
%s`, smtpPort, adminToken, extra)
}

func (in *instance) status(email string) string {
	in.t.Helper()
	r := in.do("GET", "/api/v1/subscribers/"+url.PathEscape(email), "", "", "Authorization", "Bearer "+adminToken)
	if r.Status != 200 {
		in.t.Fatalf("GET subscriber %s: %d %s", email, r.Status, r.Body)
	}
	var s struct{ Status string }
	_ = json.Unmarshal([]byte(r.Body), &s)
	return s.Status
}

func form(vals map[string]string) string {
	v := url.Values{}
	for k, x := range vals {
		v.Set(k, x)
	}
	return v.Encode()
}

// TestWholeProcessSubscribeFlow walks the double opt-in over real HTTP and
// SMTP against the built binary, restarts it in the middle, and checks a
// second process can't open the same database.
func TestWholeProcessSubscribeFlow(t *testing.T) {
	sm := smtptest.Start(t)
	in := newInstance(t, smtpConfig(sm.Port(), ""))
	p := in.start()

	r := in.do("POST", "/subscribe", "application/x-www-form-urlencoded", form(map[string]string{"email": "reader@example.org", "frequency": "weekly"}))
	if r.Status != 303 {
		t.Fatalf("subscribe: %d %s", r.Status, r.Body)
	}
	msgs := sm.WaitFor(t, 1, 20*time.Second)
	conf := testmail.MustParse(t, msgs[0].Data)
	link := conf.Link("/confirm?token=")
	if !strings.HasPrefix(link, in.base+"/confirm?token=") {
		t.Fatalf("confirm link %q", link)
	}
	// A second herald on the same database fails at once, clearly.
	out, err := exec.Command(heraldBinary(t), "serve", "--config", in.config).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "database is in use by another herald process") {
		t.Fatalf("second process: %v\n%s", err, out)
	}

	// Restart between the email and the click: nothing is lost.
	p.stop()
	p = in.start()

	path := strings.TrimPrefix(link, in.base)
	if g := in.do("GET", path, "", ""); g.Status != 200 {
		t.Fatalf("GET confirm: %d", g.Status)
	}
	if st := in.status("reader@example.org"); st != "pending" {
		t.Fatalf("GET confirm changed status to %s", st)
	}
	u, _ := url.Parse(link)
	// A browser's POST confirms and is sent on to a page it may reload;
	// any other client gets the "you're subscribed" page itself (200), and
	// confirming again is harmless.
	confirmForm := form(map[string]string{"token": u.Query().Get("token")})
	if c := in.do("POST", "/confirm", "application/x-www-form-urlencoded", confirmForm, "Sec-Fetch-Mode", "navigate"); c.Status != 303 || !strings.HasPrefix(c.Header.Get("Location"), "/subscribed?token=") {
		t.Fatalf("POST confirm from a browser: %d %s", c.Status, c.Body)
	}
	if c := in.do("POST", "/confirm", "application/x-www-form-urlencoded", confirmForm); c.Status != 200 || !strings.Contains(c.Body, "subscribed") {
		t.Fatalf("POST confirm again from a script: %d %s", c.Status, c.Body)
	}
	if st := in.status("reader@example.org"); st != "confirmed" {
		t.Fatalf("after confirm: %s", st)
	}
	msgs = sm.WaitFor(t, 2, 20*time.Second)
	welcome := testmail.MustParse(t, msgs[1].Data)
	lu := strings.Trim(welcome.Header.Get("List-Unsubscribe"), "<>")
	if !strings.HasPrefix(lu, in.base+"/unsubscribe?token=") {
		t.Fatalf("List-Unsubscribe %q", lu)
	}
	if r := in.do("POST", strings.TrimPrefix(lu, in.base), "application/x-www-form-urlencoded", "List-Unsubscribe=One-Click"); r.Status != 200 {
		t.Fatalf("one-click unsubscribe: %d", r.Status)
	}
	if st := in.status("reader@example.org"); st != "unsubscribed" {
		t.Fatalf("after one-click: %s", st)
	}
	p.stop()
	if !strings.Contains(p.Output(), "stopped") {
		t.Fatalf("no clean shutdown in the log:\n%s", p.Output())
	}
}

// TestConfirmationWaitsForSMTP: SMTP is down when the reader subscribes;
// the sign-up is acknowledged (it is durable), and the confirmation goes
// out once the server comes back — even across a SIGKILL of herald.
func TestConfirmationWaitsForSMTP(t *testing.T) {
	sm := smtptest.Start(t)
	if err := sm.SetRefuse(true); err != nil {
		t.Fatal(err)
	}
	in := newInstance(t, strings.Replace(smtpConfig(sm.Port(), ""), "[mail]\n", "[mail]\nretry_backoff = \"200ms\"\n", 1))
	p := in.start()
	r := in.do("POST", "/subscribe", "application/json", `{"email":"patient@example.org"}`)
	if r.Status != 202 {
		t.Fatalf("subscribe: %d %s", r.Status, r.Body)
	}
	testenv.Eventually(t, time.Minute, "a failed attempt", func() bool { return strings.Contains(p.Output(), "message will be retried") })
	if sm.Count() != 0 {
		t.Fatal("mail arrived while SMTP refused connections")
	}
	p.kill()
	p = in.start()
	if err := sm.SetRefuse(false); err != nil {
		t.Fatal(err)
	}
	msgs := sm.WaitFor(t, 1, 30*time.Second)
	if msgs[0].To[0] != "patient@example.org" {
		t.Fatalf("to %v", msgs[0].To)
	}
	if testmail.MustParse(t, msgs[0].Data).Link("/confirm?token=") == "" {
		t.Fatal("no confirm link")
	}
	in.outboxSent()
	if n := sm.Count(); n != 1 {
		t.Fatalf("%d confirmation emails, want exactly 1", n)
	}
	p.stop()
}

func TestBadConfigExits1(t *testing.T) {
	in := newInstance(t, "[digest]\ndaily = \"every morning\"\n")
	out, err := exec.Command(heraldBinary(t), "serve", "--config", in.config).CombinedOutput()
	ee, ok := err.(*exec.ExitError)
	if !ok || ee.ExitCode() != 1 || !strings.Contains(string(out), "digest.daily") {
		t.Fatalf("serve with a bad config: %v\n%s", err, out)
	}
	out, err = exec.Command(heraldBinary(t), "check-config", "--config", in.config).CombinedOutput()
	ee, ok = err.(*exec.ExitError)
	if !ok || ee.ExitCode() != 1 || !strings.Contains(string(out), "digest.daily") {
		t.Fatalf("check-config with a bad config: %v\n%s", err, out)
	}
	out, err = exec.Command(heraldBinary(t), "version").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "go1.") {
		t.Fatalf("version: %v %s", err, out)
	}
}
