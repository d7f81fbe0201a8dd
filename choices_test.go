package herald

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"
	_ "time/tzdata"
)

func TestOfferedTopics(t *testing.T) {
	for _, c := range []struct {
		names []string
		err   string
	}{
		{[]string{"Courts", "courts"}, "same topic"},
		{[]string{"Courts", " "}, "empty"},
		{[]string{"A;B"}, "';'"},
		{[]string{"Tab\there"}, "control character"},
		{[]string{strings.Repeat("x", MaxTopicLen+1)}, "at most"},
		{make([]string, MaxTopics+1), "at most 64"},
	} {
		if _, err := NewOfferedTopics(c.names); err == nil || !strings.Contains(err.Error(), c.err) {
			t.Errorf("%.60q: %v, want an error with %q", c.names, err, c.err)
		}
	}
	o, err := NewOfferedTopics([]string{"Prisons", " Courts ", "Policing"})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(o.Names(), []string{"Prisons", "Courts", "Policing"}) {
		t.Errorf("names %q", o.Names())
	}
	got, err := o.Parse([]string{"policing", " PRISONS", "Prisons"})
	if err != nil || !slices.Equal(got, TopicList{"Prisons", "Policing"}) {
		t.Errorf("parse: %q %v", got, err)
	}
	if got, err := o.Parse(nil); err != nil || got == nil || len(got) != 0 {
		t.Errorf("no topics: %#v %v", got, err)
	}
	for _, bad := range [][]string{{"Sport"}, {"Courts", "Courts", "Courts", "Courts"}, {""}, {"Courts\n"}} {
		if _, err := o.Parse(bad); ErrorCode(err) != EINVALID || ErrorField(err) != "topics" {
			t.Errorf("%q: %v", bad, err)
		}
	}
	// Categories of posts: any case, surrounding space; unknown ones count for nothing.
	courts, prisons := o.Mask([]string{"Courts"}), o.Mask([]string{"Prisons"})
	if courts == 0 || prisons == 0 || courts == prisons || o.Mask([]string{" cOURTS "}) != courts || o.Mask([]string{"Sport"}) != 0 {
		t.Errorf("masks %b %b", courts, prisons)
	}
	for _, c := range []struct {
		reader, post uint64
		want         bool
	}{
		{0, courts, true},                // a reader without topics gets everything
		{courts, 0, true},                // a post without offered topics goes to everyone
		{courts, courts | prisons, true}, // one shared topic is enough
		{courts, prisons, false},
	} {
		if Wants(c.reader, c.post) != c.want {
			t.Errorf("Wants(%b, %b) = %v", c.reader, c.post, !c.want)
		}
	}
	var none *OfferedTopics
	if none.Len() != 0 || none.Mask([]string{"Courts"}) != 0 {
		t.Error("no topics offered")
	}
	if _, err := none.Parse([]string{"Courts"}); ErrorField(err) != "topics" {
		t.Errorf("a topic where none is offered: %v", err)
	}
}

func TestParseTimezone(t *testing.T) {
	for _, ok := range []string{"Europe/London", " Asia/Kolkata ", "UTC", "America/Argentina/Buenos_Aires", ""} {
		name, _, err := ParseTimezone(ok)
		if err != nil || name != strings.TrimSpace(ok) {
			t.Errorf("%q: %q %v", ok, name, err)
		}
	}
	// The old names browsers report come back as today's.
	for old, now := range oldZoneNames {
		name, loc, err := ParseTimezone(old)
		if err != nil || name != now || loc == nil {
			t.Errorf("%q: %q %v, want %q", old, name, err, now)
		}
	}
	for _, bad := range []string{"Local", "Mars/Base", "europe/london", "../zoneinfo/UTC", "/etc/localtime", "Europe/London\n", strings.Repeat("A", 70), "Europe/ London", "\x00"} {
		if _, _, err := ParseTimezone(bad); ErrorCode(err) != EINVALID || ErrorField(err) != "timezone" {
			t.Errorf("%q: %v", bad, err)
		}
	}
}

func FuzzParseTimezone(f *testing.F) {
	for _, s := range []string{"Europe/London", "Local", "../x", "", "Etc/GMT+5"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		name, loc, err := ParseTimezone(s)
		if err != nil {
			if ErrorField(err) != "timezone" {
				t.Fatalf("%q: %v", s, err)
			}
			return
		}
		if (name == "") != (loc == nil) || strings.ContainsAny(name, "\r\n ") {
			t.Fatalf("%q: %q %v", s, name, loc)
		}
	})
}

func TestPatchJSON(t *testing.T) {
	for _, c := range []struct {
		body string
		set  bool
		null bool
	}{
		{`{}`, false, false},
		{`{"paused_until":null}`, true, true},
		{`{"paused_until":"2030-01-02T03:04:05Z"}`, true, false},
	} {
		var p SubscriberPatch
		if err := json.Unmarshal([]byte(c.body), &p); err != nil {
			t.Fatalf("%s: %v", c.body, err)
		}
		if p.PausedUntil.Set != c.set || (p.PausedUntil.Time == nil) != (c.null || !c.set) {
			t.Errorf("%s: %+v", c.body, p.PausedUntil)
		}
		// And back: absent stays absent, null stays null.
		b, _ := json.Marshal(p)
		if strings.Contains(string(b), "paused_until") != c.set || strings.Contains(string(b), "null") != c.null {
			t.Errorf("%s came back as %s", c.body, b)
		}
	}
	var p SubscriberPatch
	err := json.Unmarshal([]byte(`{"paused_until":"next week"}`), &p)
	if ErrorField(err) != "paused_until" {
		t.Errorf("a bad time: %v", err)
	}
	b, _ := json.Marshal(&Subscriber{})
	if !strings.Contains(string(b), `"topics":[]`) || !strings.Contains(string(b), `"paused_until":null`) || !strings.Contains(string(b), `"timezone":""`) {
		t.Errorf("a subscriber without choices: %s", b)
	}
}

func TestPauseAndResume(t *testing.T) {
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	var s Subscriber
	s.Pause(t0, t0.Add(7*24*time.Hour))
	if !s.Paused(t0) || !s.Paused(t0.Add(6*24*time.Hour)) || s.Paused(t0.Add(7*24*time.Hour)) {
		t.Errorf("paused %v", s.PausedUntil)
	}
	// Longer while paused: from the same start.
	s.Pause(t0.Add(time.Hour), t0.Add(14*24*time.Hour))
	if !s.PausedAt.Equal(t0) {
		t.Errorf("extended pause starts at %v", s.PausedAt)
	}
	s.Resume(t0.Add(2 * time.Hour))
	if s.Paused(t0.Add(2*time.Hour)) || !s.PausedAt.Equal(t0) || !s.PausedUntil.Equal(t0.Add(2*time.Hour)) {
		t.Errorf("resumed: %v %v", s.PausedAt, s.PausedUntil)
	}
	// A pause whose posts no digest has passed yet: the next one starts where it did.
	s.Pause(t0.Add(3*time.Hour), t0.Add(4*time.Hour))
	if !s.PausedAt.Equal(t0) {
		t.Errorf("a pause before the last one was dealt with starts at %v", s.PausedAt)
	}
	// Once a digest passed it, a new pause starts now.
	s.PausedAt = time.Time{}
	s.Pause(t0.Add(5*time.Hour), t0.Add(6*time.Hour))
	if !s.PausedAt.Equal(t0.Add(5 * time.Hour)) {
		t.Errorf("a fresh pause starts at %v", s.PausedAt)
	}
}

// The forms tick the offered topics a reader chose, whatever the case.
func TestTopicChoices(t *testing.T) {
	got := TopicChoices([]string{"Prisons", "Courts", "Policing"}, []string{" courts", "POLICING", "Sport"})
	want := []TopicChoice{{"Prisons", false}, {"Courts", true}, {"Policing", true}}
	if !slices.Equal(got, want) {
		t.Fatalf("%v, want %v", got, want)
	}
	if got := TopicChoices(nil, []string{"Courts"}); len(got) != 0 {
		t.Fatalf("no topics offered: %v", got)
	}
}
