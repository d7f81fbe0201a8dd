package subscription

import (
	"context"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/herald-dev/herald"
	"github.com/herald-dev/herald/subcsv"
)

func withTopics(t *testing.T, names ...string) func(*Options) {
	t.Helper()
	o, err := herald.NewOfferedTopics(names)
	if err != nil {
		t.Fatal(err)
	}
	return func(opt *Options) { opt.Topics = o }
}

func ptr[T any](v T) *T { return &v }

// A sign-up keeps the topics (in the site's spelling and order) and the
// zone; bad ones are refused, naming the field, and nothing is stored.
func TestSubscribeWithTopicsAndZone(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, withTopics(t, "Prisons", "Courts", "Policing"))
	sub, err := f.svc.Subscribe(ctx, herald.SubscribeRequest{Email: "a@example.org", Topics: []string{"policing", "Courts", "courts"}, Timezone: "Asia/Kolkata"})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(sub.Topics, herald.TopicList{"Courts", "Policing"}) || sub.Timezone != "Asia/Kolkata" {
		t.Errorf("stored %v %q", sub.Topics, sub.Timezone)
	}
	for _, c := range []struct {
		req   herald.SubscribeRequest
		field string
		msg   string
	}{
		{herald.SubscribeRequest{Topics: []string{"Sport"}}, "topics", "unknown topic"},
		{herald.SubscribeRequest{Topics: []string{"Courts", "Prisons", "Policing", "Courts"}}, "topics", "4 topics given, but the site offers 3"},
		{herald.SubscribeRequest{Topics: []string{"Courts\r\nBcc: x"}}, "topics", "line breaks"},
		{herald.SubscribeRequest{Timezone: "Mars/Olympus_Mons"}, "timezone", "unknown time zone"},
		{herald.SubscribeRequest{Timezone: "Local"}, "timezone", "unknown time zone"},
		{herald.SubscribeRequest{Timezone: "../../etc/passwd"}, "timezone", "unknown time zone"},
		{herald.SubscribeRequest{Timezone: "Europe/London\n"}, "timezone", "unknown time zone"},
	} {
		c.req.Email = "bad@example.org"
		_, err := f.svc.Subscribe(ctx, c.req)
		if herald.ErrorCode(err) != herald.EINVALID || herald.ErrorField(err) != c.field || !strings.Contains(herald.ErrorMessage(err), c.msg) {
			t.Errorf("%+v: %v (field %q)", c.req, err, herald.ErrorField(err))
		}
	}
	if _, err := f.db.SubscriberByEmail(ctx, "bad@example.org"); herald.ErrorCode(err) != herald.ENOTFOUND {
		t.Errorf("a refused sign-up was stored: %v", err)
	}
	// A site that offers none refuses any.
	g := newFixture(t, nil)
	if _, err := g.svc.Subscribe(ctx, herald.SubscribeRequest{Email: "b@example.org", Topics: []string{"Courts"}}); herald.ErrorField(err) != "topics" {
		t.Errorf("topics on a site without topics: %v", err)
	}
}

func TestPreferencesTopicsZonePause(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, withTopics(t, "Prisons", "Courts"))
	sub := f.confirmed(t, "p@example.org")
	tok := f.svc.ManageToken(sub.ID)
	got, changed, err := f.svc.SavePreferences(ctx, tok, herald.Preferences{Frequency: "weekly", Topics: []string{"courts"}, Timezone: "America/New_York"})
	if err != nil || !changed {
		t.Fatal(changed, err)
	}
	if got.Frequency != herald.Weekly || !slices.Equal(got.Topics, herald.TopicList{"Courts"}) || got.Timezone != "America/New_York" {
		t.Fatalf("saved %+v", got)
	}
	// Bad input changes nothing.
	for _, p := range []herald.Preferences{
		{Frequency: "daily", Topics: []string{"Sport"}},
		{Frequency: "daily", Timezone: "America/Nowhere"},
		{Frequency: "hourly"},
	} {
		if _, _, err := f.svc.SavePreferences(ctx, tok, p); herald.ErrorCode(err) != herald.EINVALID {
			t.Errorf("%+v: %v", p, err)
		}
	}
	if s := f.get(t, "p@example.org"); s.Frequency != herald.Weekly || len(s.Topics) != 1 || s.Timezone != "America/New_York" {
		t.Errorf("bad input changed the reader: %+v", s)
	}
	// None ticked: every post; no zone: the site's.
	if got, changed, _ = f.svc.SavePreferences(ctx, tok, herald.Preferences{Frequency: "weekly"}); len(got.Topics) != 0 || got.Timezone != "" || !changed {
		t.Errorf("cleared: %+v %v", got, changed)
	}
	// The same choices again: nothing to save.
	if _, changed, err = f.svc.SavePreferences(ctx, tok, herald.Preferences{Frequency: "weekly"}); err != nil || changed {
		t.Errorf("the same choices again: changed %v, %v", changed, err)
	}

	for _, n := range []int{0, 3, -1, 52} {
		if _, err := f.svc.Pause(ctx, tok, n); herald.ErrorField(err) != "weeks" {
			t.Errorf("pause for %d weeks: %v", n, err)
		}
	}
	now := f.clock.Now()
	got, err = f.svc.Pause(ctx, tok, 2)
	if err != nil || got.PausedUntil == nil || !got.PausedUntil.Equal(now.Add(14*24*time.Hour)) || !got.PausedAt.Equal(now) {
		t.Fatalf("paused: %+v %v", got, err)
	}
	f.clock.Add(24 * time.Hour)
	got, err = f.svc.Resume(ctx, tok)
	if err != nil || got.Paused(f.clock.Now()) || !got.PausedAt.Equal(now) {
		t.Fatalf("resumed: %+v %v", got, err)
	}
	// The API shows no pause once it is over.
	if s, _ := f.svc.Subscriber(ctx, "p@example.org"); s.PausedUntil != nil {
		t.Errorf("paused_until shown after the pause: %v", s.PausedUntil)
	}
	// A reader who left cannot pause.
	if _, err := f.svc.UnsubscribeFromPreferences(ctx, tok); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Pause(ctx, tok, 1); herald.ErrorCode(err) != herald.EINVALID {
		t.Errorf("pause after leaving: %v", err)
	}
}

// PATCH: each field changes alone; a bad one is EINVALID naming it, and
// nothing changes.
func TestUpdateSubscriber(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, withTopics(t, "Prisons", "Courts"))
	f.confirmed(t, "u@example.org")
	now := f.clock.Now()
	until := now.Add(10 * 24 * time.Hour)
	got, err := f.svc.UpdateSubscriber(ctx, "U@EXAMPLE.org", herald.SubscriberPatch{
		Name: ptr("Una"), Frequency: ptr("weekly"), Topics: &[]string{"prisons"}, Timezone: ptr("Pacific/Auckland"),
		PausedUntil: herald.OptionalTime{Set: true, Time: &until},
	})
	if err == nil {
		t.Fatalf("the domain is normalised, the local part is not: %+v", got)
	}
	got, err = f.svc.UpdateSubscriber(ctx, "u@EXAMPLE.org", herald.SubscriberPatch{
		Name: ptr("Una"), Frequency: ptr("weekly"), Topics: &[]string{"prisons"}, Timezone: ptr("Pacific/Auckland"),
		PausedUntil: herald.OptionalTime{Set: true, Time: &until},
	})
	if err != nil {
		t.Fatal(err)
	}
	if got.Name != "Una" || got.Frequency != herald.Weekly || !slices.Equal(got.Topics, herald.TopicList{"Prisons"}) ||
		got.Timezone != "Pacific/Auckland" || got.PausedUntil == nil || !got.PausedUntil.Equal(until) {
		t.Fatalf("patched %+v", got)
	}
	// Only what is set changes.
	if got, err = f.svc.UpdateSubscriber(ctx, "u@example.org", herald.SubscriberPatch{Name: ptr("Una B")}); err != nil || got.Frequency != herald.Weekly || len(got.Topics) != 1 {
		t.Fatalf("a name change: %+v %v", got, err)
	}
	past := now.Add(-time.Minute)
	far := now.Add(400 * 24 * time.Hour)
	for _, c := range []struct {
		p     herald.SubscriberPatch
		field string
	}{
		{herald.SubscriberPatch{Topics: &[]string{"Sport"}}, "topics"},
		{herald.SubscriberPatch{Topics: &[]string{"Prisons", "Courts", "Prisons"}}, "topics"},
		{herald.SubscriberPatch{Timezone: ptr("Nowhere/Land")}, "timezone"},
		{herald.SubscriberPatch{Frequency: ptr("hourly")}, "frequency"},
		{herald.SubscriberPatch{Name: ptr("a\nb")}, "name"},
		{herald.SubscriberPatch{PausedUntil: herald.OptionalTime{Set: true, Time: &past}}, "paused_until"},
		{herald.SubscriberPatch{PausedUntil: herald.OptionalTime{Set: true, Time: &now}}, "paused_until"},
		{herald.SubscriberPatch{PausedUntil: herald.OptionalTime{Set: true, Time: &far}}, "paused_until"},
		{herald.SubscriberPatch{Name: ptr("Fine"), Timezone: ptr("Bad/Zone")}, "timezone"},
	} {
		if _, err := f.svc.UpdateSubscriber(ctx, "u@example.org", c.p); herald.ErrorCode(err) != herald.EINVALID || herald.ErrorField(err) != c.field {
			t.Errorf("%+v: %v (field %q), want one naming %s", c.p, err, herald.ErrorField(err), c.field)
		}
	}
	if s := f.get(t, "u@example.org"); s.Name != "Una B" || s.Timezone != "Pacific/Auckland" {
		t.Errorf("a refused change changed the reader: %+v", s)
	}
	// null resumes.
	if got, err = f.svc.UpdateSubscriber(ctx, "u@example.org", herald.SubscriberPatch{PausedUntil: herald.OptionalTime{Set: true}}); err != nil || got.PausedUntil != nil {
		t.Fatalf("resume: %+v %v", got, err)
	}
	if _, err := f.svc.UpdateSubscriber(ctx, "nobody@example.org", herald.SubscriberPatch{Name: ptr("X")}); herald.ErrorCode(err) != herald.ENOTFOUND {
		t.Errorf("unknown reader: %v", err)
	}
}

// An import carries topics, zone and pause; a row with a topic the site
// does not offer, or a zone that does not exist, is reported and skipped.
func TestImportChoices(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, withTopics(t, "Prisons", "Courts"))
	f.confirmed(t, "known@example.org")
	until := f.clock.Now().Add(72 * time.Hour).UTC().Format(time.RFC3339)
	file := "email,frequency,topics,timezone,paused_until\n" +
		"new@example.org,daily,courts;Prisons,Europe/London," + until + "\n" +
		"known@example.org,,Courts,Asia/Kolkata,\n" +
		"badtopic@example.org,,Sport,,\n" +
		"badzone@example.org,,,Europe/Atlantis,\n" +
		"pastpause@example.org,,,,2001-01-01T00:00:00Z\n"
	r, err := subcsv.NewReader(strings.NewReader(file))
	if err != nil {
		t.Fatal(err)
	}
	rep, err := f.svc.Import(ctx, r, true)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Added != 2 || rep.Updated != 1 || rep.InvalidTotal != 2 {
		t.Fatalf("report %+v", rep)
	}
	for _, p := range rep.Invalid {
		if !(p.Line == 4 && strings.Contains(p.Error, "unknown topic")) && !(p.Line == 5 && strings.Contains(p.Error, "time zone")) {
			t.Errorf("invalid row %+v", p)
		}
	}
	n := f.get(t, "new@example.org")
	if !slices.Equal(n.Topics, herald.TopicList{"Prisons", "Courts"}) || n.Timezone != "Europe/London" || !n.Paused(f.clock.Now()) {
		t.Errorf("new reader %+v", n)
	}
	k := f.get(t, "known@example.org")
	if !slices.Equal(k.Topics, herald.TopicList{"Courts"}) || k.Timezone != "Asia/Kolkata" {
		t.Errorf("known reader %+v", k)
	}
	if p := f.get(t, "pastpause@example.org"); p.PausedUntil != nil {
		t.Errorf("a pause over before the import: %v", p.PausedUntil)
	}
	// The export carries them back, a pause that is over shown as none.
	var out strings.Builder
	w := subcsv.NewWriter(&out)
	subs, err := f.svc.ScanSubscribers(ctx, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range subs {
		w.Write(s)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	back, err := subcsv.NewReader(strings.NewReader(out.String()))
	if err != nil {
		t.Fatal(err)
	}
	for {
		row, err := back.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if row.Email == "new@example.org" && (!slices.Equal(row.Topics, []string{"Prisons", "Courts"}) || row.Timezone != "Europe/London" || row.PausedUntil.IsZero()) {
			t.Errorf("exported %+v", row)
		}
	}
}
