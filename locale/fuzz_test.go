package locale

import (
	"slices"
	"strings"
	"testing"
)

// FuzzMatch gives the language picker what browsers and people send
// (?lang= and Accept-Language, well-formed or not): it never panics,
// always answers a language herald speaks, and Parse either names one
// or says which it knows.
func FuzzMatch(f *testing.F) {
	for _, s := range [][2]string{
		{"", ""}, {"de", ""}, {"", "de-DE,de;q=0.9,en-US;q=0.8,en;q=0.7"},
		{"FR", "es-419,es;q=0.9"}, {"x-klingon", "*"}, {"en-GB-oxendict", "zh-Hant-TW;q=0.5, pt-BR"},
		{"de_AT", "en;q=abc, ;;;"}, {"tlh", "i-klingon, sgn-BE-FR"}, {strings.Repeat("a-", 200), strings.Repeat("de;q=0.1,", 300)},
	} {
		f.Add(s[0], s[1])
	}
	c, err := New("en")
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, query, accept string) {
		if got := c.Match(query, accept); !c.Has(got) {
			t.Fatalf("Match(%q, %q) = %q, not a language herald speaks", query, accept, got)
		}
		code, err := c.Parse(query)
		switch {
		case err != nil && (code != "" || !strings.Contains(err.Error(), "want one of")):
			t.Fatalf("Parse(%q) = %q, %v", query, code, err)
		case err == nil && code != "" && !slices.Contains(c.Codes(), code):
			t.Fatalf("Parse(%q) = %q, not a language herald speaks", query, code)
		case err == nil && code == "" && strings.TrimSpace(query) != "":
			t.Fatalf("Parse(%q) gave nothing and no error", query)
		}
	})
}
