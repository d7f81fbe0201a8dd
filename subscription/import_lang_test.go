package subscription

import (
	"context"
	"strings"
	"testing"

	"github.com/herald-dev/herald/subcsv"
)

// TestImportLanguage: the language column sets a new reader's language
// and changes a known one's; a language herald does not speak is a bad
// row, named by its line, and the rest go on.
func TestImportLanguage(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, nil)
	file := "email,language\nann@example.org,de\nbob@example.org,fr-CA\ncat@example.org,tlh\ndan@example.org,\n"
	rows, err := subcsv.NewReader(strings.NewReader(file))
	if err != nil {
		t.Fatal(err)
	}
	rep, err := f.svc.Import(ctx, rows, true)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Added != 3 || len(rep.Invalid) != 1 || rep.Invalid[0].Line != 4 || !strings.Contains(rep.Invalid[0].Error, "unknown language") {
		t.Fatalf("report %+v", rep)
	}
	for email, want := range map[string]string{"ann@example.org": "de", "bob@example.org": "fr", "dan@example.org": ""} {
		if s, err := f.db.SubscriberByEmail(ctx, email); err != nil || s.Language != want {
			t.Errorf("%s: language %q, want %q (%v)", email, s.Language, want, err)
		}
	}
	rows, _ = subcsv.NewReader(strings.NewReader("email,lang\nann@example.org,es\n"))
	if _, err := f.svc.Import(ctx, rows, true); err != nil {
		t.Fatal(err)
	}
	if s, _ := f.db.SubscriberByEmail(ctx, "ann@example.org"); s.Language != "es" {
		t.Errorf("a known reader's language: %q", s.Language)
	}
}
