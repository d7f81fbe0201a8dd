package locale

import (
	"strings"
	"testing"
	"time"
)

// TestEveryMessageInEveryLanguage: no language lacks a message English
// has, and none has one English lacks (a typo in an id).
func TestEveryMessageInEveryLanguage(t *testing.T) {
	missing, err := MissingMessages(Messages())
	if err != nil {
		t.Fatal(err)
	}
	for code, ids := range missing {
		t.Errorf("%s.toml: %d messages differ from en.toml: %s", code, len(ids), strings.Join(ids, ", "))
	}
	c, err := New("en")
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(c.Codes(), ","); got != "en,de,es,fr" {
		t.Errorf("languages = %s", got)
	}
	// Each language's file is its own, not English copied: these words
	// must differ.
	en := c.Lang("en")
	for _, code := range []string{"de", "fr", "es"} {
		l := c.Lang(code)
		for _, id := range []string{"subscribe_heading", "confirm_subject", "link_unsubscribe", "month_3"} {
			if l.T(id, "Site", "X") == en.T(id, "Site", "X") {
				t.Errorf("%s: %s is the English text", code, id)
			}
		}
	}
}

// TestMatch: ?lang= wins when herald speaks it, then Accept-Language
// with its weights and regional variants, then the default.
func TestMatch(t *testing.T) {
	c, err := New("en")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ query, accept, want string }{
		{"", "", "en"},
		{"", "de-DE,de;q=0.9,en;q=0.8", "de"},
		{"", "de-AT", "de"},
		{"", "fr-CA,en;q=0.5", "fr"},
		{"", "es-419", "es"},
		{"", "ja,ko;q=0.9", "en"},
		{"", "ja,es;q=0.3", "es"},
		{"", "*", "en"},
		{"", "garbage;;;q=x", "en"},
		{"fr", "de", "fr"},
		{"DE", "", "de"},
		{"xx", "es", "es"},
		{"ja", "", "en"},
	} {
		if got := c.Match(tc.query, tc.accept); got != tc.want {
			t.Errorf("Match(%q, %q) = %q, want %q", tc.query, tc.accept, got, tc.want)
		}
	}
	c, _ = New("de")
	if got := c.Match("", "ja"); got != "de" {
		t.Errorf("with default de: Match(ja) = %q", got)
	}
	for _, bad := range []string{"klingon", "ja", "x-y-z-", "tlh", "nb", "pt-BR"} {
		if _, err := c.Parse(bad); err == nil {
			t.Errorf("Parse(%q) took it", bad)
		}
	}
	if code, err := c.Parse(" es-MX "); err != nil || code != "es" {
		t.Errorf("Parse(es-MX) = %q, %v", code, err)
	}
	if _, err := New("ja"); err == nil {
		t.Error("New(ja) took a language herald does not speak")
	}
}

// TestDates: each language writes a day its own way, and plurals follow
// its rules (French counts 0 and 1 as one).
func TestDates(t *testing.T) {
	c, _ := New("en")
	day := time.Date(2026, time.March, 2, 7, 0, 0, 0, time.UTC)
	for code, want := range map[string]string{"en": "2 March 2026", "de": "2. März 2026", "fr": "2 mars 2026", "es": "2 de marzo de 2026"} {
		if got := c.Lang(code).Date(day); got != want {
			t.Errorf("%s: %q, want %q", code, got, want)
		}
	}
	for code, want := range map[string]string{"en": "Monday 2 March 2026 at 07:00", "de": "Montag, 2. März 2026 um 07:00",
		"fr": "lundi 2 mars 2026 à 07:00", "es": "lunes, 2 de marzo de 2026 a las 07:00"} {
		if got := c.Lang(code).DateTime(day); got != want {
			t.Errorf("%s: %q, want %q", code, got, want)
		}
	}
	if got := c.Lang("de").Duration(168 * time.Hour); got != "7 Tage" {
		t.Errorf("de 168h = %q", got)
	}
	if got := c.Lang("en").Duration(time.Hour); got != "1 hour" {
		t.Errorf("en 1h = %q", got)
	}
	if got := c.Lang("fr").N("digest_intro", 0); got != "0 nouvel article" {
		t.Errorf("fr 0 posts = %q", got)
	}
	if got := c.Lang("es").N("digest_intro", 2); got != "2 entradas nuevas" {
		t.Errorf("es 2 posts = %q", got)
	}
	if got := c.Lang("en").T("no_such_message"); got != "no_such_message" {
		t.Errorf("missing message = %q", got)
	}
	if c.Name("de") != "Deutsch" || c.Name("fr") != "Français" || c.Name("es") != "Español" {
		t.Errorf("names %s %s %s", c.Name("de"), c.Name("fr"), c.Name("es"))
	}
}
