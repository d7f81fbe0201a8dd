package subcsv

import (
	"bytes"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/herald-dev/herald"
)

// rows reads a whole file: the rows, and the lines of the bad ones.
func rows(t *testing.T, file string) ([]herald.ImportRow, []int) {
	t.Helper()
	r, err := NewReader(strings.NewReader(file))
	if err != nil {
		t.Fatalf("header: %v", err)
	}
	var out []herald.ImportRow
	var bad []int
	for {
		row, err := r.Next()
		if errors.Is(err, io.EOF) {
			return out, bad
		}
		var re *herald.RowError
		if errors.As(err, &re) {
			bad = append(bad, re.Line)
			continue
		}
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		out = append(out, row)
	}
}

// The files other tools write, mapped onto herald's columns and words.
func TestReaderFormats(t *testing.T) {
	for _, c := range []struct {
		name string
		file string
		want []herald.ImportRow
		bad  []int
	}{
		{
			name: "herald's own export, BOM and CRLF",
			file: "\ufeffemail,name,frequency,status,created_at,confirmed_at\r\n" +
				"a@Example.ORG,\"Doe, Jane\",weekly,confirmed,2025-01-02T03:04:05Z,2025-01-03T00:00:00Z\r\n" +
				"b@example.org,'=SUM(A1),instant,unsubscribed,,\r\n",
			want: []herald.ImportRow{
				{Line: 2, Email: "a@example.org", Name: "Doe, Jane", Frequency: herald.Weekly, Status: herald.StatusConfirmed,
					CreatedAt: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC), ConfirmedAt: time.Date(2025, 1, 3, 0, 0, 0, 0, time.UTC)},
				{Line: 3, Email: "b@example.org", Name: "=SUM(A1)", Frequency: herald.Instant, Status: herald.StatusUnsubscribed},
			},
		},
		{
			name: "Mailchimp: split names, its times, its status files",
			file: "Email Address,First Name,Last Name,OPTIN_TIME,CONFIRM_TIME,UNSUB_TIME,CLEAN_TIME\n" +
				"m1@example.org,Ada,Lovelace,2019-03-04 10:11:12,2019-03-04 10:15:00,,\n" +
				"m2@example.org,Un,,,,2021-05-06 07:08:09,\n" +
				"m3@example.org,,Cleaned,,,2021-05-06 07:08:09,2021-05-06 07:08:09\n",
			want: []herald.ImportRow{
				{Line: 2, Email: "m1@example.org", Name: "Ada Lovelace",
					CreatedAt: time.Date(2019, 3, 4, 10, 11, 12, 0, time.UTC), ConfirmedAt: time.Date(2019, 3, 4, 10, 15, 0, 0, time.UTC)},
				{Line: 3, Email: "m2@example.org", Name: "Un", Status: herald.StatusUnsubscribed},
				{Line: 4, Email: "m3@example.org", Name: "Cleaned", Status: herald.StatusBounced},
			},
		},
		{
			name: "listmonk: its words and Go's time format",
			file: "uuid,email,name,status,created_at\n" +
				"u1,l1@example.org,One,enabled,2020-07-07 10:00:00.123456 +0000 UTC\n" +
				"u2,l2@example.org,Two,blocklisted,not a time\n",
			want: []herald.ImportRow{
				{Line: 2, Email: "l1@example.org", Name: "One", Status: herald.StatusConfirmed, CreatedAt: time.Date(2020, 7, 7, 10, 0, 0, 123456000, time.UTC)},
				{Line: 3, Email: "l2@example.org", Name: "Two", Status: herald.StatusUnsubscribed},
			},
		},
		{
			name: "herald's readers' choices",
			file: "email,topics,timezone,paused_until\n" +
				"c1@example.org,Courts; Prisons ,Europe/London,2030-01-02T03:04:05+01:00\n" +
				"c2@example.org,,,\n" +
				"c3@example.org,Courts,,next week\n",
			want: []herald.ImportRow{
				{Line: 2, Email: "c1@example.org", Topics: []string{"Courts", "Prisons"}, Timezone: "Europe/London",
					PausedUntil: time.Date(2030, 1, 2, 2, 4, 5, 0, time.UTC)},
				{Line: 3, Email: "c2@example.org"},
			},
			bad: []int{4},
		},
		{
			name: "semicolons, blank rows, bad rows",
			file: "email;frequency;status\ns@example.org;daily;pending\n;;\nnot-an-address;;\nx@example.org;hourly;\ny@example.org;;vip\n",
			want: []herald.ImportRow{{Line: 2, Email: "s@example.org", Frequency: herald.Daily, Status: herald.StatusPending}},
			bad:  []int{4, 5, 6},
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, bad := rows(t, c.file)
			if len(got) != len(c.want) {
				t.Fatalf("rows %+v, want %+v", got, c.want)
			}
			for i := range got {
				if !reflect.DeepEqual(got[i], c.want[i]) {
					t.Errorf("row %d: %+v, want %+v", i, got[i], c.want[i])
				}
			}
			if len(bad) != len(c.bad) {
				t.Fatalf("bad lines %v, want %v", bad, c.bad)
			}
			for i := range bad {
				if bad[i] != c.bad[i] {
					t.Fatalf("bad lines %v, want %v", bad, c.bad)
				}
			}
		})
	}
}

func TestReaderRefusesTheFile(t *testing.T) {
	for _, c := range []struct{ file, code, msg string }{
		{"", herald.EINVALID, "empty"},
		{"name,frequency\nAnn,daily\n", herald.EINVALID, "no email column"},
		{"email,Email Address\na@example.org,a@example.org\n", herald.EINVALID, "two email columns"},
		{"\xff\xfee\x00m\x00", herald.EMALFORMED, "UTF-16"},
		{"\"email,name\n", herald.EMALFORMED, "header line"},
	} {
		_, err := NewReader(strings.NewReader(c.file))
		if herald.ErrorCode(err) != c.code || !strings.Contains(herald.ErrorMessage(err), c.msg) {
			t.Errorf("%q: %v (%s), want %s with %q", c.file, err, herald.ErrorCode(err), c.code, c.msg)
		}
	}
	// A row past maxRow (an unclosed quote) stops the reading.
	r, err := NewReader(strings.NewReader("email\na@example.org\n\"" + strings.Repeat("x", 2*maxRow)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Next(); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Next(); herald.ErrorCode(err) != herald.ETOOLARGE {
		t.Fatalf("a huge row: %v", err)
	}
}

// The export writes what the import reads back.
func TestWriterRoundTrip(t *testing.T) {
	confirmed := time.Date(2025, 6, 7, 8, 9, 10, 0, time.UTC)
	subs := []*herald.Subscriber{
		{Email: "a@example.org", Name: "=HYPERLINK(\"x\")", Frequency: herald.Weekly, Status: herald.StatusConfirmed, CreatedAt: confirmed.Add(-time.Hour), ConfirmedAt: &confirmed},
		{Email: "b@example.org", Name: "Zoë, \"Z\"", Frequency: herald.Daily, Status: herald.StatusBounced,
			Topics: herald.TopicList{"Courts", "Law, order"}, Timezone: "Asia/Kolkata", PausedUntil: &confirmed},
	}
	var b bytes.Buffer
	w := NewWriter(&b)
	for _, s := range subs {
		w.Write(s)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(b.String(), ",=HYPERLINK") {
		t.Fatalf("a formula left as it is:\n%s", b.String())
	}
	got, bad := rows(t, b.String())
	if len(got) != 2 || len(bad) != 0 {
		t.Fatalf("rows %+v bad %v", got, bad)
	}
	for i, s := range subs {
		g := got[i]
		if g.Email != s.Email || g.Name != s.Name || g.Frequency != s.Frequency || g.Status != s.Status {
			t.Errorf("row %d: %+v, from %+v", i, g, s)
		}
	}
	if !got[0].ConfirmedAt.Equal(confirmed) || !got[0].CreatedAt.Equal(confirmed.Add(-time.Hour)) {
		t.Errorf("times %v %v", got[0].CreatedAt, got[0].ConfirmedAt)
	}
	if g := got[1]; !reflect.DeepEqual(g.Topics, []string{"Courts", "Law, order"}) || g.Timezone != "Asia/Kolkata" || !g.PausedUntil.Equal(confirmed) {
		t.Errorf("choices %+v", g)
	}
	if got[0].Topics != nil || got[0].Timezone != "" || !got[0].PausedUntil.IsZero() {
		t.Errorf("no choices read as %+v", got[0])
	}
}

// FuzzReader: no file makes the reader panic, every error is a row
// error or a client error, and every row it accepts is clean.
func FuzzReader(f *testing.F) {
	f.Add([]byte("email,name,frequency,status\na@example.org,Ann,daily,confirmed\n"))
	f.Add([]byte("\ufeffEmail Address,First Name,Last Name,UNSUB_TIME\r\nb@example.org,\"B, b\",C,2020-01-01 00:00:00\r\n"))
	f.Add([]byte("uuid,email,name,attributes,status,created_at\nx,c@example.org,C,\"{\"\"a\"\":1}\",blocklisted,2020-07-07 10:00:00 +0000 UTC\n"))
	f.Add([]byte("email;name\nd@example.org;D\n\"unclosed\n"))
	f.Add([]byte("email\n'=e@example.org\nbare\"quote\n"))
	f.Add([]byte("\xff\xfe"))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := NewReader(bytes.NewReader(data))
		if err != nil {
			switch herald.ErrorCode(err) {
			case herald.EMALFORMED, herald.EINVALID, herald.ETOOLARGE:
				return
			}
			t.Fatalf("header error %v (code %s)", err, herald.ErrorCode(err))
		}
		for range 10000 {
			row, err := r.Next()
			if errors.Is(err, io.EOF) {
				return
			}
			var re *herald.RowError
			if errors.As(err, &re) {
				if re.Line < 1 || re.Msg == "" {
					t.Fatalf("row error without a line or message: %+v", re)
				}
				continue
			}
			if err != nil {
				if c := herald.ErrorCode(err); c != herald.EMALFORMED && c != herald.ETOOLARGE {
					t.Fatalf("read error %v (code %s)", err, c)
				}
				return
			}
			if e, err := herald.NormalizeEmail(row.Email); err != nil || e != row.Email {
				t.Fatalf("row with an unclean address %q", row.Email)
			}
			if n, err := herald.CleanName(row.Name); err != nil || n != row.Name {
				t.Fatalf("row with an unclean name %q", row.Name)
			}
			if row.Frequency != "" && !row.Frequency.Valid() || row.Status != "" && !row.Status.Valid() {
				t.Fatalf("row %+v", row)
			}
		}
	})
}
