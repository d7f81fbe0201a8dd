package handlers_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/herald-dev/herald"
	"github.com/herald-dev/herald/handlers"
	"github.com/herald-dev/herald/internal/testenv"
	"github.com/herald-dev/herald/internal/testmail"
	"github.com/herald-dev/herald/templates"
)

// TestReadersLanguage: a page speaks the browser's language
// (Accept-Language) unless ?lang= says otherwise; the form carries the
// page's language, the reader keeps it (API object), and their
// confirmation, welcome and pages after it are in it, whatever the next
// browser asks for.
func TestReadersLanguage(t *testing.T) {
	e := newEnv(t, testenv.Options{AdminToken: adminToken, SiteName: "Test Blög"})
	r := e.do(http.MethodGet, "/", "", "", "Accept-Language", "de-DE,de;q=0.9,en;q=0.5")
	if r.Status != 200 || !strings.Contains(r.Body, `<html lang="de"`) || !strings.Contains(r.Body, "Jeden Beitrag per E-Mail") ||
		!strings.Contains(r.Body, `name="lang" value="de"`) || r.Header.Get("Content-Language") != "de" || !strings.Contains(r.Header.Get("Vary"), "Accept-Language") {
		t.Fatalf("German subscribe page: %d %v\n%s", r.Status, r.Header, r.Body)
	}
	if !strings.Contains(r.Body, `href="/?lang=fr"`) || !strings.Contains(r.Body, ">Français<") {
		t.Error("no language menu")
	}
	if r = e.do(http.MethodGet, "/?lang=es", "", "", "Accept-Language", "de"); !strings.Contains(r.Body, "Recibe cada entrada por correo") {
		t.Fatalf("?lang=es did not win:\n%s", r.Body)
	}
	if r = e.do(http.MethodGet, "/", "", "", "Accept-Language", "ja"); !strings.Contains(r.Body, "Get every post by email") {
		t.Fatal("a language herald does not speak: not the default")
	}
	// A mistake on the form is told in the form's language.
	r = e.form("/subscribe", url.Values{"email": {"not-an-address"}, "lang": {"fr"}})
	if r.Status != http.StatusUnprocessableEntity || !strings.Contains(r.Body, "n’est pas une adresse e-mail valide") || !strings.Contains(r.Body, `<html lang="fr"`) {
		t.Fatalf("French form error: %d\n%s", r.Status, r.Body)
	}
	r = e.form("/subscribe", url.Values{"email": {"leser@example.org"}, "frequency": {"weekly"}, "lang": {"de"}})
	if r.Status != http.StatusSeeOther || r.Header.Get("Location") != "/subscribe/check-email?lang=de" {
		t.Fatalf("subscribe: %d %s", r.Status, r.Header.Get("Location"))
	}
	if r = e.do(http.MethodGet, r.Header.Get("Location"), "", ""); !strings.Contains(r.Body, "Bitte sehen Sie in Ihr Postfach") {
		t.Fatalf("check-email page not in German:\n%s", r.Body)
	}
	if sub := e.sub("leser@example.org"); sub.Language != "de" {
		t.Fatalf("language kept: %q", sub.Language)
	}
	if r = e.api(http.MethodGet, "/api/v1/subscribers/leser@example.org", ""); !strings.Contains(r.Body, `"language":"de"`) {
		t.Fatalf("API object: %s", r.Body)
	}
	confirm := testmail.MustParse(t, e.SMTP.WaitFor(t, 1, 10*time.Second)[0].Data)
	if confirm.Subject != "Bitte bestätigen Sie Ihr Abonnement von Test Blög" || !strings.Contains(confirm.HTML, "Abonnement bestätigen") ||
		!strings.Contains(confirm.HTML, `lang="de"`) || !strings.Contains(confirm.Text, "als wöchentliche Übersicht") {
		t.Fatalf("confirmation not in German: %q\n%s", confirm.Subject, confirm.Text)
	}
	link := confirm.Link("/confirm?token=")
	// The reader confirms from a browser set to English: the pages about
	// them stay in their language.
	r = e.do(http.MethodPost, "/confirm", "application/x-www-form-urlencoded", url.Values{"token": {tokenOf(t, link)}}.Encode(), "Accept-Language", "en")
	if r.Status != 200 || !strings.Contains(r.Body, "Sie sind dabei") {
		t.Fatalf("confirmed page: %d\n%s", r.Status, r.Body)
	}
	welcome := testmail.MustParse(t, e.SMTP.WaitFor(t, 2, 10*time.Second)[1].Data)
	if welcome.Subject != "Willkommen bei Test Blög" || !strings.Contains(welcome.HTML, "Abmelden") {
		t.Fatalf("welcome not in German: %q", welcome.Subject)
	}
	unsub := welcome.Link("/unsubscribe?token=")
	u, _ := url.Parse(unsub)
	if r = e.do(http.MethodGet, u.RequestURI(), "", "", "Accept-Language", "en"); !strings.Contains(r.Body, "Abmelden") || !strings.Contains(r.Body, `<html lang="de"`) {
		t.Fatalf("unsubscribe page not in the reader's language:\n%s", r.Body)
	}
	// JSON names the language itself; one herald does not speak is a 422.
	r = e.do(http.MethodPost, "/subscribe", "application/json", `{"email":"lector@example.org","language":"es-MX"}`)
	if r.Status != http.StatusAccepted || e.sub("lector@example.org").Language != "es" {
		t.Fatalf("JSON with a language: %d %s", r.Status, r.Body)
	}
	r = e.do(http.MethodPost, "/subscribe", "application/json", `{"email":"x@example.org","language":"tlh"}`)
	if r.Status != http.StatusUnprocessableEntity || !strings.Contains(r.Body, `"field":"language"`) {
		t.Fatalf("JSON with an unknown language: %d %s", r.Status, r.Body)
	}
	// A bad link's page is in the visitor's language too.
	if r = e.do(http.MethodGet, "/unsubscribe?token=garbage", "", "", "Accept-Language", "es"); r.Status != 400 || !strings.Contains(r.Body, "Este enlace no funciona") {
		t.Fatalf("bad link in Spanish: %d\n%s", r.Status, r.Body)
	}
	if r = e.do(http.MethodGet, "/nope", "", "", "Accept-Language", "fr"); r.Status != 404 || !strings.Contains(r.Body, "Page introuvable") {
		t.Fatalf("404 in French: %d\n%s", r.Status, r.Body)
	}
}

// TestPagesCarryTheBrand: the logo (allowed by the CSP's img-src), the
// accent colour and the owner's footer are on every public page.
func TestPagesCarryTheBrand(t *testing.T) {
	e := newEnv(t, testenv.Options{Archive: true, Templates: templates.Options{Site: templates.Site{
		Name: "Field Notes", URL: "https://blog.example.org", LogoURL: "https://cdn.example.org/logo.png",
		Footer: "Field Notes Ltd, 1 Mill Street", Colors: templates.NewPalette("#0b6e4f"),
	}}})
	for _, path := range []string{"/", "/subscribe/check-email", "/confirm?token=bad", "/nope", "/archive"} {
		r := e.do(http.MethodGet, path, "", "")
		for _, want := range []string{`src="https://cdn.example.org/logo.png"`, "--accent:#0b6e4f", "Field Notes Ltd, 1 Mill Street"} {
			if !strings.Contains(r.Body, want) {
				t.Errorf("%s (%d) lacks %q", path, r.Status, want)
			}
		}
		if csp := r.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "img-src 'self' data: https://cdn.example.org;") {
			t.Errorf("%s: CSP %q does not allow the logo", path, csp)
		}
	}
}

// untranslated records the messages handlers report a reader saw in
// English instead of their language.
type untranslated struct {
	mu   sync.Mutex
	msgs []string
}

func (u *untranslated) Enabled(context.Context, slog.Level) bool { return true }
func (u *untranslated) WithAttrs([]slog.Attr) slog.Handler       { return u }
func (u *untranslated) WithGroup(string) slog.Handler            { return u }
func (u *untranslated) Handle(_ context.Context, r slog.Record) error {
	if !strings.Contains(r.Message, "no translation") {
		return nil
	}
	var lang, msg string
	r.Attrs(func(a slog.Attr) bool {
		switch a.Key {
		case "lang":
			lang = a.Value.String()
		case "message":
			msg = a.Value.String()
		}
		return true
	})
	u.mu.Lock()
	defer u.mu.Unlock()
	u.msgs = append(u.msgs, lang+": "+msg)
	return nil
}

func (u *untranslated) take() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	out := u.msgs
	u.msgs = nil
	return out
}

// TestReaderMessagesInTheirLanguage walks what a reader can get wrong or
// meet (a bad address, a long name, broken and stale links, a change
// while unsubscribed, too many sign-ups) in each language but English:
// every message the services say is shown translated. A message the
// files lack (a tampered form's action) is reported, so the check can
// tell.
func TestReaderMessagesInTheirLanguage(t *testing.T) {
	u := &untranslated{}
	e := newEnv(t, testenv.Options{Logger: slog.New(u), SubscribePerIP: handlers.Rate{N: 16, Period: time.Hour}})
	sub, err := e.Subs.Subscribe(context.Background(), herald.SubscribeRequest{Email: "left@example.org", Confirmed: true})
	if err != nil {
		t.Fatal(err)
	}
	tok := e.Subs.ManageToken(sub.ID)
	if _, err := e.Subs.Unsubscribe(context.Background(), e.Subs.UnsubscribeToken(sub.ID)); err != nil {
		t.Fatal(err)
	}
	for _, lang := range []string{"de", "fr", "es"} {
		al := []string{"Accept-Language", lang}
		for _, v := range []url.Values{
			{"email": {""}}, {"email": {"not-an-address"}}, {"email": {strings.Repeat("a", 250) + "@example.org"}},
			{"email": {"n@example.org"}, "name": {strings.Repeat("n", 101)}}, {"email": {"n@example.org"}, "name": {"Ann\tOther"}},
		} {
			v.Set("lang", lang)
			if r := e.form("/subscribe", v); r.Status != http.StatusUnprocessableEntity || !strings.Contains(r.Body, `<html lang="`+lang+`"`) {
				t.Fatalf("%s %v: %d", lang, v, r.Status)
			}
		}
		for _, path := range []string{"/confirm?token=garbage", "/confirm?token=", "/unsubscribe?token=garbage", "/preferences?token=garbage", "/nope"} {
			if r := e.do(http.MethodGet, path, "", "", al...); r.Status < 400 || !strings.Contains(r.Body, `<html lang="`+lang+`"`) {
				t.Fatalf("%s %s: %d", lang, path, r.Status)
			}
		}
		if _, err := e.Subs.UpdateSubscriber(context.Background(), "left@example.org", herald.SubscriberPatch{Language: &lang}); err != nil {
			t.Fatal(err)
		}
		if r := e.form("/preferences", url.Values{"token": {tok}, "action": {"save"}, "frequency": {"daily"}}); r.Status != http.StatusConflict {
			t.Fatalf("%s: save while unsubscribed: %d", lang, r.Status)
		}
		if got := u.take(); len(got) > 0 {
			t.Errorf("shown in English to a reader of %s:\n%s", lang, strings.Join(got, "\n"))
		}
	}
	// Too many sign-ups from one network, in German.
	for i := 0; ; i++ {
		r := e.form("/subscribe", url.Values{"email": {fmt.Sprintf("r%d@example.org", i)}, "lang": {"de"}})
		if r.Status == http.StatusTooManyRequests {
			break
		}
		if i > 10 {
			t.Fatal("never limited")
		}
	}
	if got := u.take(); len(got) > 0 {
		t.Errorf("shown in English:\n%s", strings.Join(got, "\n"))
	}
	// The check sees a message the files lack.
	if r := e.do(http.MethodPost, "/preferences", "application/x-www-form-urlencoded", url.Values{"token": {tok}, "action": {"dance"}}.Encode(), "Accept-Language", "de"); r.Status != http.StatusUnprocessableEntity {
		t.Fatalf("unknown action: %d", r.Status)
	}
	if got := u.take(); len(got) != 1 || !strings.Contains(got[0], `unknown action "dance"`) {
		t.Errorf("an untranslated message was not reported: %q", got)
	}
}

// TestChoicesInTheReadersLanguage: a German reader's topics, time zone
// and pause speak German: a made-up zone is refused in German, a pause
// says when mail resumes as German writes a moment, and nothing they
// meet is left in English.
func TestChoicesInTheReadersLanguage(t *testing.T) {
	u := &untranslated{}
	e := newEnv(t, testenv.Options{Logger: slog.New(u), Topics: []string{"Garten", "Werkstatt"}})
	sub, err := e.Subs.Subscribe(context.Background(), herald.SubscribeRequest{Email: "leser@example.org", Language: "de", Confirmed: true})
	if err != nil {
		t.Fatal(err)
	}
	tok := e.Subs.ManageToken(sub.ID)
	prefs := "/preferences?token=" + url.QueryEscape(tok)
	r := e.do(http.MethodGet, prefs, "", "", "Accept-Language", "en")
	for _, want := range []string{"Welche Themen?", `value="Garten"`, "Ihre Zeitzone", "Unterwegs?", "1 Woche pausieren", "2 Wochen pausieren"} {
		if !strings.Contains(r.Body, want) {
			t.Errorf("preferences lack %q", want)
		}
	}
	r = e.form("/preferences", url.Values{"token": {tok}, "action": {"save"}, "frequency": {"daily"}, "timezone": {"Mars/Olympus_Mons"}})
	if r.Status != http.StatusUnprocessableEntity || !strings.Contains(r.Body, "Unbekannte Zeitzone „Mars/Olympus_Mons“") {
		t.Fatalf("a made-up zone: %d\n%s", r.Status, r.Body)
	}
	r = e.form("/preferences", url.Values{"token": {tok}, "action": {"pause"}, "weeks": {"3"}})
	if r.Status != http.StatusUnprocessableEntity || !strings.Contains(r.Body, "Eine Pause dauert 1, 2 oder 4 Wochen.") {
		t.Fatalf("three weeks: %d\n%s", r.Status, r.Body)
	}
	r = e.form("/preferences", url.Values{"token": {tok}, "action": {"pause"}, "weeks": {"1"}})
	if r.Status != http.StatusSeeOther {
		t.Fatalf("pause: %d", r.Status)
	}
	until := *e.sub("leser@example.org").PausedUntil
	r = e.do(http.MethodGet, r.Location(), "", "")
	wd := map[time.Weekday]string{time.Sunday: "Sonntag", time.Monday: "Montag", time.Tuesday: "Dienstag", time.Wednesday: "Mittwoch",
		time.Thursday: "Donnerstag", time.Friday: "Freitag", time.Saturday: "Samstag"}[until.UTC().Weekday()]
	for _, want := range []string{"Pausiert.", "E-Mails sind pausiert", wd + ", " + until.UTC().Format("2.") + " ", " um " + until.UTC().Format("15:04") + " (UTC)", "Jetzt fortsetzen"} {
		if !strings.Contains(r.Body, want) {
			t.Errorf("paused page lacks %q\n%s", want, r.Body)
		}
	}
	r = e.form("/preferences", url.Values{"token": {tok}, "action": {"resume"}})
	if r = e.do(http.MethodGet, r.Location(), "", ""); !strings.Contains(r.Body, "Sie erhalten ab jetzt wieder E-Mails.") {
		t.Errorf("resumed page:\n%s", r.Body)
	}
	if got := u.take(); len(got) > 0 {
		t.Errorf("shown in English:\n%s", strings.Join(got, "\n"))
	}
}
