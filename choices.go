package herald

import (
	"bytes"
	"encoding/json"
	"strings"
	"time"
	"unicode/utf8"
)

// A reader's choices beyond the frequency: the topics they want, the
// time zone their mornings are in, and a pause.

// TopicList is a reader's topics, in the site's spelling. Empty means
// every post; it is written as [] in JSON, never null.
type TopicList []string

// MarshalJSON writes nil as [].
func (l TopicList) MarshalJSON() ([]byte, error) {
	if l == nil {
		return []byte("[]"), nil
	}
	return json.Marshal([]string(l))
}

// MaxTopics is how many topics a site may offer (digest.topics): a
// reader's choice is then one machine word (see OfferedTopics.Mask).
const MaxTopics = 64

// MaxTopicLen is the longest topic name, in characters.
const MaxTopicLen = 100

// OfferedTopics are the topics the site offers its readers
// (digest.topics), in the site's spelling. They are matched against
// post categories and readers' choices case-insensitively. The zero
// value offers none. It is read-only once made, so safe to share.
type OfferedTopics struct {
	names []string
	index map[string]int // lower-cased name → position
	exact map[string]int // name as configured → position
}

// NewOfferedTopics checks the configured topics: at most MaxTopics, each
// non-empty, printable, without ';' (the CSV column's separator), and no
// two the same when case is ignored.
func NewOfferedTopics(names []string) (*OfferedTopics, error) {
	if len(names) > MaxTopics {
		return nil, Errorf(EINVALID, "%d topics: at most %d can be offered", len(names), MaxTopics)
	}
	t := &OfferedTopics{index: make(map[string]int, len(names)), exact: make(map[string]int, len(names))}
	for _, raw := range names {
		n := strings.TrimSpace(raw)
		switch {
		case n == "":
			return nil, Errorf(EINVALID, "a topic is empty")
		case !utf8.ValidString(n) || utf8.RuneCountInString(n) > MaxTopicLen:
			return nil, Errorf(EINVALID, "topic %.40q is not valid UTF-8 of at most %d characters", n, MaxTopicLen)
		case strings.ContainsRune(n, ';'):
			return nil, Errorf(EINVALID, "topic %q contains ';', which separates topics in CSV files", n)
		case strings.IndexFunc(n, func(r rune) bool { return r < 0x20 || r == 0x7f }) >= 0:
			return nil, Errorf(EINVALID, "topic %q contains a control character", n)
		}
		k := strings.ToLower(n)
		if i, dup := t.index[k]; dup {
			return nil, Errorf(EINVALID, "topics %q and %q are the same topic (case does not count)", t.names[i], n)
		}
		t.index[k] = len(t.names)
		t.exact[n] = len(t.names)
		t.names = append(t.names, n)
	}
	return t, nil
}

// Names are the offered topics in the configured order.
func (t *OfferedTopics) Names() []string {
	if t == nil {
		return nil
	}
	return t.names
}

// Len is how many topics are offered.
func (t *OfferedTopics) Len() int {
	if t == nil {
		return 0
	}
	return len(t.names)
}

// Lookup returns the site's spelling of name (any case) and whether it
// is offered.
func (t *OfferedTopics) Lookup(name string) (string, bool) {
	if t == nil {
		return "", false
	}
	i, ok := t.index[strings.ToLower(strings.TrimSpace(name))]
	if !ok {
		return "", false
	}
	return t.names[i], true
}

// Parse checks a reader's choice of topics and returns it in the site's
// spelling and order, without repeats. Empty input is every post. An
// unknown topic, or more topics than are offered, is EINVALID naming the
// field "topics".
func (t *OfferedTopics) Parse(in []string) (TopicList, error) {
	if len(in) > t.Len() {
		if t.Len() == 0 {
			return nil, Errorf(EINVALID, "this site offers no topics to choose from").WithField("topics")
		}
		return nil, Errorf(EINVALID, "%d topics given, but the site offers %d", len(in), t.Len()).WithField("topics")
	}
	var mask uint64
	for _, name := range in {
		if strings.ContainsAny(name, "\r\n") {
			return nil, Errorf(EINVALID, "a topic must not contain line breaks").WithField("topics")
		}
		i, ok := t.index[strings.ToLower(strings.TrimSpace(name))]
		if !ok {
			return nil, Errorf(EINVALID, "unknown topic %.60q (this site offers: %s)", name, strings.Join(t.names, ", ")).WithField("topics")
		}
		mask |= 1 << i
	}
	if mask == 0 {
		return TopicList{}, nil
	}
	out := make(TopicList, 0, len(in))
	for i, n := range t.names {
		if mask&(1<<i) != 0 {
			out = append(out, n)
		}
	}
	return out, nil
}

// Mask is a set of offered topics as bits (bit i: the i-th topic). Names
// not offered (any more) count for nothing.
func (t *OfferedTopics) Mask(names []string) uint64 {
	if t.Len() == 0 {
		return 0
	}
	var m uint64
	for _, n := range names {
		// A reader's topics are in the configured spelling: found without
		// lower-casing (no allocation for every reader of a run).
		if i, ok := t.exact[n]; ok {
			m |= 1 << i
		} else if i, ok := t.index[strings.ToLower(strings.TrimSpace(n))]; ok {
			m |= 1 << i
		}
	}
	return m
}

// Wants is the matching rule: a post whose categories are postMask goes
// to a reader who chose readerMask when the reader chose nothing (every
// post), when the post carries none of the offered topics (it goes to
// everyone), or when they share a topic.
func Wants(readerMask, postMask uint64) bool {
	return readerMask == 0 || postMask == 0 || readerMask&postMask != 0
}

// MaxTimezoneLen bounds a time zone name (the longest IANA name is 32).
const MaxTimezoneLen = 64

// oldZoneNames are the old names browsers still report (ICU keeps them:
// Chromium says Asia/Calcutta for India), with the names the IANA
// database uses now; the same zone then has one name.
var oldZoneNames = map[string]string{
	"Asia/Calcutta": "Asia/Kolkata", "Asia/Katmandu": "Asia/Kathmandu", "Asia/Saigon": "Asia/Ho_Chi_Minh",
	"Asia/Rangoon": "Asia/Yangon", "Asia/Dacca": "Asia/Dhaka", "Asia/Thimbu": "Asia/Thimphu",
	"Asia/Ulan_Bator": "Asia/Ulaanbaatar", "Asia/Macao": "Asia/Macau", "Asia/Ujung_Pandang": "Asia/Makassar",
	"Europe/Kiev": "Europe/Kyiv", "Europe/Uzhgorod": "Europe/Kyiv", "Europe/Zaporozhye": "Europe/Kyiv",
	"Atlantic/Faeroe": "Atlantic/Faroe", "Africa/Asmera": "Africa/Asmara",
	"America/Buenos_Aires": "America/Argentina/Buenos_Aires", "America/Catamarca": "America/Argentina/Catamarca",
	"America/Cordoba": "America/Argentina/Cordoba", "America/Jujuy": "America/Argentina/Jujuy",
	"America/Mendoza": "America/Argentina/Mendoza", "America/Indianapolis": "America/Indiana/Indianapolis",
	"America/Louisville": "America/Kentucky/Louisville", "America/Godthab": "America/Nuuk",
	"Pacific/Truk": "Pacific/Chuuk", "Pacific/Ponape": "Pacific/Pohnpei", "Pacific/Enderbury": "Pacific/Kanton",
	"Australia/Canberra": "Australia/Sydney",
}

// ParseTimezone checks an IANA time zone name ("Europe/London"); "" is
// the site's zone and comes back as it is, with a nil location. An old
// name a browser may report comes back as today's (Asia/Calcutta:
// Asia/Kolkata). An unknown name is EINVALID naming the field "timezone".
func ParseTimezone(name string) (string, *time.Location, error) {
	if !strings.ContainsAny(name, "\r\n") {
		name = strings.TrimSpace(name)
	}
	if name == "" {
		return "", nil, nil
	}
	bad := func() (string, *time.Location, error) {
		return "", nil, Errorf(EINVALID, "unknown time zone %.70q: want an IANA name such as Europe/London or America/New_York", name).WithField("timezone")
	}
	if len(name) > MaxTimezoneLen || name == "Local" || strings.IndexFunc(name, func(r rune) bool { return r <= ' ' || r == 0x7f }) >= 0 {
		return bad()
	}
	if now, ok := oldZoneNames[name]; ok {
		if loc, err := time.LoadLocation(now); err == nil {
			return now, loc, nil
		}
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		return bad()
	}
	return name, loc, nil
}

// TopicChoice is one offered topic on a form: a checkbox, ticked when
// the reader chose it.
type TopicChoice struct {
	Name    string
	Checked bool
}

// TopicChoices are the offered topics in order, those in chosen ticked
// (case and surrounding spaces aside), for the forms that show them.
func TopicChoices(offered, chosen []string) []TopicChoice {
	out := make([]TopicChoice, len(offered))
	for i, t := range offered {
		out[i].Name = t
		for _, c := range chosen {
			if strings.EqualFold(strings.TrimSpace(c), t) {
				out[i].Checked = true
			}
		}
	}
	return out
}

// PauseWeeks are the pause lengths a reader may choose, in weeks.
var PauseWeeks = []int{1, 2, 4}

// MaxPause bounds paused_until set through the API.
const MaxPause = 366 * 24 * time.Hour

// Paused reports whether nothing may be sent to s at now.
func (s *Subscriber) Paused(now time.Time) bool {
	return s.PausedUntil != nil && now.Before(*s.PausedUntil)
}

// Pause makes s paused from now until until. A pause whose posts no digest
// has dealt with yet (PausedAt still set) is extended from its start, so
// no post that arrived during either pause is ever sent.
func (s *Subscriber) Pause(now, until time.Time) {
	if s.PausedAt.IsZero() || s.PausedUntil == nil {
		s.PausedAt = now
	}
	u := until
	s.PausedUntil = &u
}

// Resume ends a pause at now; the posts that arrived during it stay unsent.
func (s *Subscriber) Resume(now time.Time) {
	if s.Paused(now) {
		t := now
		s.PausedUntil = &t
	}
}

// SubscriberPatch is an admin's change to one reader (PATCH
// /api/v1/subscribers/{email}): a field left out (nil, or for
// PausedUntil unset) stays as it is, so a patch names only what it
// changes.
type SubscriberPatch struct {
	Name      *string   `json:"name,omitempty"`
	Frequency *string   `json:"frequency,omitempty"`
	Topics    *[]string `json:"topics,omitempty"`
	Timezone  *string   `json:"timezone,omitempty"`
	// Language is the reader's language code; "" is the site's.
	Language *string `json:"language,omitempty"`
	// PausedUntil: a time pauses the reader until then (it must be in the
	// future); null ends a pause now.
	PausedUntil OptionalTime `json:"paused_until,omitzero"`
}

// OptionalTime is a JSON field that may be absent, null or a time.
type OptionalTime struct {
	Set  bool       // the field was present
	Time *time.Time // nil: it was null
}

// UnmarshalJSON records that the field was present, and its time.
func (o *OptionalTime) UnmarshalJSON(b []byte) error {
	o.Set = true
	if bytes.Equal(bytes.TrimSpace(b), []byte("null")) {
		o.Time = nil
		return nil
	}
	var t time.Time
	if err := json.Unmarshal(b, &t); err != nil {
		return Errorf(EINVALID, "paused_until must be an RFC 3339 time such as \"2030-01-02T15:04:05Z\", or null to resume").WithField("paused_until")
	}
	o.Time = &t
	return nil
}

// MarshalJSON writes the time, or null; an unset field is left out
// (omitzero, through IsZero).
func (o OptionalTime) MarshalJSON() ([]byte, error) {
	if o.Time == nil {
		return []byte("null"), nil
	}
	return json.Marshal(*o.Time)
}

// IsZero: the field was not set.
func (o OptionalTime) IsZero() bool { return !o.Set }
