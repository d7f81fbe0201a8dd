package templates

import (
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

var brand = Site{
	Name: "Field Notes", URL: "https://blog.example.org", LogoURL: "https://cdn.example.org/logo.png",
	Footer: "Field Notes Ltd\n1 Mill Street, Leeds LS1 1AA", Colors: NewPalette("#8a2be2"),
}

// override writes a templates_dir with a digest.txt of the owner's own
// and a page of theirs.
func override(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	write := func(name, body string) {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("email/digest.txt", `{{define "subject"}}OWNER {{tn "digest_subject" .Count "Site" .Site.Name}}{{end}}{{define "preheader"}}OWNER PREHEADER{{end}}OWNER TEXT {{.Site.Name}} {{range .Posts}}{{.Title}} {{date .PublishedAt}}{{end}}`)
	write("pages/confirmed.html", `{{template "head" .}}<h1>OWNER CONFIRMED {{t "confirmed_heading"}}</h1>{{template "foot" .}}`)
	return dir
}

// TestEveryEmailAndPage renders every email kind and every page with a
// logo, an accent colour, a footer and an override, in every language,
// and checks what came out.
func TestEveryEmailAndPage(t *testing.T) {
	s, err := Load(Options{Site: brand, Dir: override(t)})
	if err != nil {
		t.Fatal(err)
	}
	words := map[string][]string{ // a word of each language's emails and pages
		"en": {"Unsubscribe", "2 March 2026"}, "de": {"Abmelden", "2. März 2026"},
		"fr": {"désabonner", "2 mars 2026"}, "es": {"baja", "2 de marzo de 2026"},
	}
	for _, code := range s.Catalog().Codes() {
		if len(s.langs[code].emailHTML) < 4 {
			t.Fatalf("%s: only %d email kinds", code, len(s.langs[code].emailHTML))
		}
		for name := range s.langs[code].emailHTML { // every kind, new ones included
			out, err := s.Email(code, name, SampleEmail(name))
			if err != nil {
				t.Fatalf("%s %s: %v", code, name, err)
			}
			h := out.HTML
			for _, want := range []string{
				`lang="` + code + `"`, `<meta name="color-scheme" content="light dark"`, "prefers-color-scheme: dark",
				`src="https://cdn.example.org/logo.png"`, `alt="Field Notes"`, "1 Mill Street, Leeds LS1 1AA",
				"#8a2be2", `class="preheader"`, "<!--[if mso]>", `width="600"`,
			} {
				if !strings.Contains(h, want) {
					t.Errorf("%s %s: HTML lacks %q", code, name, want)
				}
			}
			if name == "digest" {
				if !strings.Contains(out.Subject, "OWNER") || !strings.Contains(out.Text, "OWNER TEXT Field Notes") || !strings.Contains(out.Text, words[code][1]) {
					t.Errorf("%s: the override text part was not used: %q / %q", code, out.Subject, out.Text)
				}
				if !strings.Contains(h, ">OWNER PREHEADER<") || !strings.Contains(h, words[code][1]) {
					t.Errorf("%s: digest HTML lacks the preheader or the date", code)
				}
			} else {
				if !strings.Contains(out.Text, "1 Mill Street") || out.Subject == "" || strings.Contains(out.Subject, "OWNER") {
					t.Errorf("%s %s: subject %q, text %q", code, name, out.Subject, out.Text)
				}
			}
			if (name == "digest" || name == "welcome") && !strings.Contains(h+out.Text, words[code][0]) {
				t.Errorf("%s %s: no %q in it", code, name, words[code][0])
			}
			// Every kind's subject is in the reader's language.
			if en, err := s.Email("en", name, SampleEmail(name)); err != nil {
				t.Fatal(err)
			} else if code != "en" && name != "digest" && out.Subject == en.Subject {
				t.Errorf("%s %s: the subject %q is the English one", code, name, out.Subject)
			}
			checkEmailCraft(t, code+" "+name, h)
		}
		for name := range s.langs[code].pages {
			var b strings.Builder
			if err := s.Page(&b, code, name, SamplePage(name)); err != nil {
				t.Fatalf("%s %s: %v", code, name, err)
			}
			p := b.String()
			for _, want := range []string{`<html lang="` + code + `"`, `src="https://cdn.example.org/logo.png"`, "1 Mill Street", "--accent:#8a2be2"} {
				if !strings.Contains(p, want) {
					t.Errorf("%s page %s lacks %q", code, name, want)
				}
			}
			if name == "confirmed" && !strings.Contains(p, "OWNER CONFIRMED") {
				t.Errorf("%s: the override page was not used", code)
			}
			if name == "subscribe" && !strings.Contains(p, `name="lang" value="`+code+`"`) {
				t.Errorf("%s: the subscribe form does not send its language", code)
			}
		}
	}
}

// checkEmailCraft: every table is a layout table, no picture is wider
// than the 600px card in its attributes, the preheader is hidden.
func checkEmailCraft(t *testing.T, what, h string) {
	t.Helper()
	for _, tbl := range regexp.MustCompile(`<table[^>]*>`).FindAllString(h, -1) {
		if !strings.Contains(tbl, `role="presentation"`) {
			t.Errorf("%s: %s is not role=presentation", what, tbl)
		}
	}
	for _, m := range regexp.MustCompile(`<img[^>]*?width="(\d+)"`).FindAllStringSubmatch(h, -1) {
		if w, _ := strconv.Atoi(m[1]); w > 600 {
			t.Errorf("%s: an image %dpx wide", what, w)
		}
	}
	if !regexp.MustCompile(`class="preheader" style="[^"]*display:none`).MatchString(h) {
		t.Errorf("%s: the preheader is not hidden", what)
	}
}

// TestPalettes: in the light and the dark palette of any accepted accent,
// text, muted text and links read at 4.5:1 on the card, and button text
// on the button.
func TestPalettes(t *testing.T) {
	for _, accent := range []string{DefaultAccent, "#8a2be2", "#0b6e4f", "#b3261e", "#000000", "#595959", "#1a1a80"} {
		if err := CheckAccent(accent); err != nil {
			t.Fatalf("%s refused: %v", accent, err)
		}
		p := NewPalette(accent)
		for name, c := range map[string]Colors{"light": p.Light, "dark": p.Dark} {
			pairs := [][2]string{{c.Ink, c.Card}, {c.Muted, c.Card}, {c.Accent, c.Card}, {c.AccentInk, c.Accent}, {c.Ink, c.Bg}, {c.Muted, c.Bg}}
			for _, pr := range pairs {
				a, _ := ParseColor(pr[0])
				b, _ := ParseColor(pr[1])
				if r := Contrast(a, b); r < MinContrast {
					t.Errorf("accent %s, %s palette: %s on %s is %.2f:1", accent, name, pr[0], pr[1], r)
				}
			}
		}
	}
	for _, bad := range []string{"#ffcc00", "#7aa7ff", "#999"} {
		err := CheckAccent(bad)
		if err == nil || !strings.Contains(err.Error(), ":1 against white") {
			t.Errorf("%s: %v", bad, err)
		}
	}
	if err := CheckAccent("#ffcc00"); !strings.Contains(err.Error(), "1.51:1") {
		t.Errorf("the ratio is not in the message: %v", err)
	}
	for _, bad := range []string{"blue", "#12345", "1f5fbf", "#ggg"} {
		if err := CheckAccent(bad); err == nil {
			t.Errorf("%q taken as a colour", bad)
		}
	}
}

// TestOverrideErrors: a broken override is refused at load with its
// file and line; a file that overrides nothing is refused by name; a
// template that only fails when it runs fails at load too.
func TestOverrideErrors(t *testing.T) {
	for _, c := range []struct{ file, body, want string }{
		{"email/digest.html", "{{template \"ehead\" .}}\n\n{{if .Posts}}\n{{end", "email/digest.html:4:"},
		{"pages/subscribe.html", "{{template \"head\" .}}\n{{.NoSuchField.X}}{{template \"foot\" .}}", ""},
		{"email/confirm.html", "{{define \"footer\"}}{{end}}{{template \"ehead\" .}}\n{{.NoSuchField}}\n{{template \"efoot\" .}}", "email/confirm.html:2:"},
		{"email/welcome.txt", "no blocks here", "email/welcome.txt: defines no {{define \"subject\"}}"},
		{"email/digets.html", "typo", "email/digets.html: overrides no built-in template"},
		{"email/confirm.txt", `{{define "subject"}}{{t "x" 1 2 3}}{{end}}{{define "preheader"}}{{end}}{{tn "x"}}`, "email/confirm.txt:1:"},
	} {
		dir := t.TempDir()
		p := filepath.Join(dir, filepath.FromSlash(c.file))
		_ = os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(c.body), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := Load(Options{Dir: dir})
		if c.want == "" {
			// A missing field of a map is no error: pages get maps.
			if err != nil {
				t.Errorf("%s: %v", c.file, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), filepath.Join(dir, "")) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want one naming %s", c.file, err, c.want)
		}
	}
	if _, err := Load(Options{Dir: filepath.Join(t.TempDir(), "nope")}); err == nil {
		t.Error("a templates_dir that does not exist was taken")
	}
}

// TestLoadIsOnce: rendering does not parse; a Set renders from many
// goroutines at once (go test -race).
func TestConcurrentRender(t *testing.T) {
	s, err := Load(Options{Site: brand})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 8)
	for i := range 8 {
		go func() {
			code := s.Catalog().Codes()[i%4]
			_, err := s.Email(code, "digest", SampleEmail("digest"))
			if err == nil {
				err = s.Page(io.Discard, code, "subscribe", SamplePage("subscribe"))
			}
			done <- err
		}()
	}
	for range 8 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	_ = time.Now
}

// TestChoicesInEveryLanguage: the topics, time zone and pause on the
// preferences page and the subscribe form are in the page's language,
// the pause's end written as that language writes a moment.
func TestChoicesInEveryLanguage(t *testing.T) {
	s, err := Load(Options{Site: brand})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{
		"en": {"Which topics?", "Your time zone", "Going away?", "Pause 1 week", "Pause 4 weeks", "Mail is paused", "Resume now"},
		"de": {"Welche Themen?", "Ihre Zeitzone", "Unterwegs?", "1 Woche pausieren", "4 Wochen pausieren", "E-Mails sind pausiert", "Jetzt fortsetzen"},
		"fr": {"Quels sujets ?", "Votre fuseau horaire", "Vous partez ?", "Pause de 1 semaine", "Pause de 4 semaines", "Les envois sont en pause", "Reprendre maintenant"},
		"es": {"¿Qué temas?", "Tu zona horaria", "¿Te vas unos días?", "Pausar 1 semana", "Pausar 4 semanas", "Los correos están en pausa", "Reanudar ahora"},
	}
	when := time.Date(2026, time.March, 2, 7, 0, 0, 0, time.UTC)
	for _, code := range s.Catalog().Codes() {
		var b strings.Builder
		if err := s.Page(&b, code, "preferences", SamplePage("preferences")); err != nil {
			t.Fatal(err)
		}
		data := SamplePage("preferences")
		data["Paused"], data["Resumes"] = true, s.Lang(code).DateTime(when)+" (Europe/Berlin)"
		if err := s.Page(&b, code, "preferences", data); err != nil {
			t.Fatal(err)
		}
		if err := s.Page(&b, code, "subscribe", SamplePage("subscribe")); err != nil {
			t.Fatal(err)
		}
		page := b.String()
		for _, w := range append(want[code], s.Lang(code).Date(when), `value="Garden" checked`, `placeholder="Europe/London"`) {
			if !strings.Contains(page, w) {
				t.Errorf("%s: the choices lack %q", code, w)
			}
		}
	}
}
