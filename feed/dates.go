package feed

import (
	"net/http"
	"strings"
	"time"
)

// dateLayouts are tried in order on a date gofeed could not read (and on
// every JSON Feed date). Beside RFC 3339 and RFC 822 and their common
// slips, they are what hand-rolled and CMS feeds were seen to emit. A
// date without a zone is taken as UTC.
var dateLayouts = []string{
	time.RFC3339Nano,
	"2006-01-02T15:04:05Z0700",
	"2006-01-02T15:04:05",
	"2006-01-02T15:04Z07:00",
	"2006-01-02T15:04",
	"2006-01-02 15:04:05Z07:00",
	"2006-01-02 15:04:05 -0700",
	"2006-01-02 15:04:05 MST",
	"2006-01-02 15:04:05",
	"2006-01-02 15:04",
	"2006-01-02",
	"2006/1/2 15:04:05",
	"2006/1/2 15:04",
	"2006/1/2",
	"2006.01.02 15:04:05",
	"2.1.2006 15:04",
	"2.1.2006",
	time.RFC1123Z,
	time.RFC1123,
	"Mon, 2 Jan 2006 15:04:05 -0700",
	"Mon, 2 Jan 2006 15:04:05 MST",
	"Mon, 2 Jan 2006 15:04 -0700",
	"2 Jan 2006 15:04:05 -0700",
	"2 Jan 2006 15:04:05 MST",
	"Monday, January 2, 2006 - 15:04",
	"January 2, 2006 15:04:05",
	"January 2, 2006",
	"Jan 2, 2006",
	time.ANSIC,
	time.UnixDate,
}

// parseDate reads s with the layouts above; ok is false when none fits or
// the year is implausible (before 1970 or past 9999, where a time.Time
// no longer marshals to JSON).
func parseDate(s string) (time.Time, bool) {
	s = strings.Join(strings.Fields(s), " ")
	if s == "" {
		return time.Time{}, false
	}
	for _, layout := range dateLayouts {
		if t, err := time.Parse(layout, s); err == nil {
			return plausible(t)
		}
	}
	if t, err := http.ParseTime(s); err == nil {
		return plausible(t)
	}
	return time.Time{}, false
}

func plausible(t time.Time) (time.Time, bool) {
	if t.Year() < 1970 || t.Year() > 9999 {
		return time.Time{}, false
	}
	return t.UTC(), true
}
