package adminui

import (
	"context"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/herald-dev/herald/internal/testmail"
	"github.com/herald-dev/herald/templates"
)

// TestLookPageAndPreview: the Look page shows the configured logo,
// accent (with its contrast, light and dark), footer and overrides; its
// frame renders a digest with them in the language picked (sample posts
// before there are any, the latest after), through the override
// template; the test email uses the same templates, with Reply-To.
func TestLookPageAndPreview(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "email"), 0o755); err != nil {
		t.Fatal(err)
	}
	over := `{{define "footer"}}OWNER FOOTER {{t "link_unsubscribe"}}{{end}}{{template "ehead" .}}{{range .Posts}}<tr><td class="post">OWNER POST {{.Title}} · {{date .PublishedAt}}</td></tr>{{end}}{{template "efoot" .}}`
	if err := os.WriteFile(filepath.Join(dir, "email", "digest.html"), []byte(over), 0o644); err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, envOpts{replyTo: "Ada <ada@blog.example.org>", templates: templates.Options{Dir: dir, Site: templates.Site{
		Name: "Test Blog", URL: "https://blog.example.org", LogoURL: "https://cdn.example.org/logo.png",
		Footer: "Test Blog Ltd\n1 Mill Street", Colors: templates.NewPalette("#0b6e4f"),
	}}})
	b := e.browser()
	b.login()
	r := b.get("/admin/look")
	for _, want := range []string{"#0b6e4f", ":1 on white", "dark mode", `src="https://cdn.example.org/logo.png"`, "Test Blog Ltd<br>1 Mill Street", "email/digest.html", `src="/admin/look/frame?lang=en"`, ">Deutsch<"} {
		if !strings.Contains(r.body, want) {
			t.Errorf("look page lacks %q", want)
		}
	}
	r = b.get("/admin/look/frame?lang=de")
	if r.status != http.StatusOK || !strings.Contains(r.body, "OWNER POST A bench from an old door · 2. März 2026") || !strings.Contains(r.body, "OWNER FOOTER Abmelden") ||
		!strings.Contains(r.body, "cdn.example.org/logo.png") || !strings.Contains(r.body, "1 Mill Street") || !strings.Contains(r.body, `lang="de"`) {
		t.Fatalf("sample preview in German: %d\n%s", r.status, r.body)
	}
	e.addPosts(2)
	r = b.get("/admin/look/frame?lang=fr")
	if !strings.Contains(r.body, "OWNER POST Post number 2") || !strings.Contains(r.body, "Se désabonner") {
		t.Fatalf("preview of the latest posts in French:\n%s", r.body)
	}
	if r = b.get("/admin/look/frame?lang=tlh"); r.status != http.StatusUnprocessableEntity || !strings.Contains(r.body, "unknown language") {
		t.Fatalf("an unknown language: %d\n%s", r.status, r.body)
	}
	r = b.form("/admin/preview/test", url.Values{"to": {"me@example.org"}})
	if r.status != http.StatusSeeOther {
		t.Fatalf("test email: %d", r.status)
	}
	msgs := e.smtp.WaitFor(t, 1, 10*time.Second)
	p := testmail.MustParse(t, msgs[len(msgs)-1].Data)
	if !strings.Contains(p.HTML, "OWNER POST Post number 2") || !strings.Contains(p.Header.Get("Reply-To"), "ada@blog.example.org") || !strings.Contains(p.Subject, "[Test]") {
		t.Fatalf("the test email does not use the override or lacks Reply-To: %q %q\n%s", p.Subject, p.Header.Get("Reply-To"), p.HTML)
	}
}

// TestSubscriberLanguage: the subscriber page shows a reader's language
// and changes it through PATCH; one herald does not speak is refused.
func TestSubscriberLanguage(t *testing.T) {
	e := newEnv(t, envOpts{})
	e.addConfirmed("ann@example.org", "Ann", "weekly")
	b := e.browser()
	b.login()
	r := b.get("/admin/subscribers/ann@example.org")
	if !strings.Contains(r.body, `<select id="sub-language-pick" name="language">`) || !strings.Contains(r.body, `<option value="de">de</option>`) {
		t.Fatalf("no language choice:\n%s", r.body)
	}
	r = b.form("/admin/subscribers/ann@example.org", url.Values{"name": {"Ann"}, "frequency": {"weekly"}, "language": {"de"}})
	if r.status != http.StatusSeeOther {
		t.Fatalf("save: %d\n%s", r.status, r.body)
	}
	if s, _ := e.db.SubscriberByEmail(context.Background(), "ann@example.org"); s.Language != "de" {
		t.Fatalf("language %q", s.Language)
	}
	if r = b.get("/admin/subscribers/ann@example.org"); !strings.Contains(r.body, `<dd id="sub-language">de</dd>`) {
		t.Fatal("the page does not show the language")
	}
	r = b.form("/admin/subscribers/ann@example.org", url.Values{"name": {"Ann"}, "frequency": {"weekly"}, "language": {"tlh"}})
	if r.status != http.StatusUnprocessableEntity || !strings.Contains(r.body, "unknown language") {
		t.Fatalf("bad language: %d", r.status)
	}
}
