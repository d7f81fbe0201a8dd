package challenge

import (
	"encoding/base64"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/herald-dev/herald"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

func newIssuer(t testing.TB, c *clock, difficulty int) *Issuer {
	t.Helper()
	i, err := New(Options{Secret: []byte("0123456789abcdef0123456789abcdef"), Difficulty: difficulty, Now: c.Now, SpentCapacity: 1000})
	if err != nil {
		t.Fatal(err)
	}
	return i
}

func solve(ch herald.Challenge) string { return Solve(ch) }

func TestIssueSolveVerify(t *testing.T) {
	c := &clock{t: time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)}
	iss := newIssuer(t, c, 0) // the default: the real work
	ch := iss.Issue()
	if ch.Difficulty != DefaultDifficulty || len(ch.Challenge) != 36 || !ch.ExpiresAt.Equal(c.Now().Add(DefaultTTL)) {
		t.Fatalf("issued %+v", ch)
	}
	if len(ch.Challenge)+1+MaxSolution > 55 {
		t.Fatal("a challenge and a solution no longer fit one SHA-256 block")
	}
	sol := solve(ch)
	if err := iss.Verify(ch.Challenge, sol); err != nil {
		t.Fatalf("a right solution: %v", err)
	}
	// Usable once.
	if err := iss.Verify(ch.Challenge, sol); herald.ErrorCode(err) != herald.EINVALID || !strings.Contains(herald.ErrorMessage(err), "used already") {
		t.Fatalf("the same solution again: %v", err)
	}
	// A second challenge is its own.
	ch2 := iss.Issue()
	if ch2.Challenge == ch.Challenge {
		t.Fatal("two challenges alike")
	}
	sol2 := solve(ch2)
	for _, tc := range []struct{ name, ch, sol, want string }{
		{"no solution", ch2.Challenge, "", "no challenge solution"},
		{"not a number", ch2.Challenge, "12a", "decimal"},
		{"too long", ch2.Challenge, strings.Repeat("1", MaxSolution+1), "too long"},
		{"not base64", "!!!", "1", "not one herald issued"},
		{"short", ch2.Challenge[:20], "1", "not one herald issued"},
		{"tampered", tamper(ch2.Challenge), sol2, "not one herald issued"},
		{"easier difficulty forged", forgeDifficulty(ch2.Challenge, 1), "0", "not one herald issued"},
		{"no work", ch2.Challenge, wrong(ch2), "does not do the work"},
	} {
		err := iss.Verify(tc.ch, tc.sol)
		if herald.ErrorCode(err) != herald.EINVALID || !strings.Contains(herald.ErrorMessage(err), tc.want) || herald.ErrorField(err) != "solution" {
			t.Errorf("%s: %v, want EINVALID about %q", tc.name, err, tc.want)
		}
	}
	// A failed try spends nothing.
	if err := iss.Verify(ch2.Challenge, sol2); err != nil {
		t.Fatalf("the right solution after wrong ones: %v", err)
	}
	// Expired.
	ch3 := iss.Issue()
	sol3 := solve(ch3)
	c.Add(DefaultTTL)
	if err := iss.Verify(ch3.Challenge, sol3); !strings.Contains(herald.ErrorMessage(err), "expired") {
		t.Fatalf("at its expiry: %v", err)
	}
	// Another process (a restart) does not know this one's challenges.
	other := newIssuer(t, c, 0)
	ch4 := iss.Issue()
	if err := other.Verify(ch4.Challenge, solve(ch4)); !strings.Contains(herald.ErrorMessage(err), "not one herald issued") {
		t.Fatalf("a challenge from before a restart: %v", err)
	}
}

// TestSpentAcrossWindows: a spent solution stays spent for as long as its
// challenge could be used, through the swap of the two filters.
func TestSpentAcrossWindows(t *testing.T) {
	c := &clock{t: time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)}
	iss := newIssuer(t, c, 4)
	var chs []herald.Challenge
	var sols []string
	for i := range 40 {
		ch := iss.Issue()
		chs, sols = append(chs, ch), append(sols, solve(ch))
		if err := iss.Verify(ch.Challenge, sols[i]); err != nil {
			t.Fatal(err)
		}
		c.Add(DefaultTTL / 20) // over two windows in all
		for j := range i + 1 {
			if c.Now().Before(chs[j].ExpiresAt) {
				if err := iss.Verify(chs[j].Challenge, sols[j]); err == nil {
					t.Fatalf("solution %d accepted again %v after it was spent", j, time.Duration(i-j+1)*DefaultTTL/20)
				}
			}
		}
	}
}

func TestLeadingZeros(t *testing.T) {
	for _, tc := range []struct {
		b    []byte
		want int
	}{{[]byte{0x80}, 0}, {[]byte{0x01}, 7}, {[]byte{0, 0x0f}, 12}, {[]byte{0, 0, 0}, 24}, {nil, 0}} {
		if got := LeadingZeros(tc.b); got != tc.want {
			t.Errorf("LeadingZeros(%x) = %d, want %d", tc.b, got, tc.want)
		}
	}
}

func tamper(ch string) string {
	b := []byte(ch)
	if b[30] == 'A' {
		b[30] = 'B'
	} else {
		b[30] = 'A'
	}
	return string(b)
}

// forgeDifficulty rewrites the difficulty byte, keeping the old MAC.
func forgeDifficulty(ch string, bits byte) string {
	raw, _ := base64.RawURLEncoding.DecodeString(ch)
	raw[1] = bits
	return base64.RawURLEncoding.EncodeToString(raw)
}

// wrong is a number that does not solve ch.
func wrong(ch herald.Challenge) string {
	for n := 0; ; n++ {
		if s := strconv.Itoa(n); !Solves(ch.Challenge, s, ch.Difficulty) {
			return s
		}
	}
}

// FuzzVerify: challenges and solutions are outside input. Whatever they
// are, Verify answers nil or EINVALID naming the solution field, never
// panics; it accepts only what does the work for a challenge it issued,
// and never the same twice.
func FuzzVerify(f *testing.F) {
	c := &clock{t: time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)}
	iss := newIssuer(f, c, 6)
	for range 3 {
		ch := iss.Issue()
		f.Add(ch.Challenge, solve(ch))
	}
	f.Add("", "")
	f.Add("AQYAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "0")
	f.Add(strings.Repeat("A", 36), "99999999999999999999")
	f.Add("AQ", "-1")
	f.Fuzz(func(t *testing.T, ch, sol string) {
		err := iss.Verify(ch, sol)
		if err != nil {
			if herald.ErrorCode(err) != herald.EINVALID || herald.ErrorField(err) != "solution" {
				t.Fatalf("Verify(%q, %q) = %v, want EINVALID on the solution", ch, sol, err)
			}
			return
		}
		raw, derr := base64.RawURLEncoding.DecodeString(ch)
		if derr != nil || len(raw) != rawLen || !Solves(ch, sol, int(raw[1])) || int(raw[1]) != 6 {
			t.Fatalf("Verify accepted %q %q, which does not do the work asked", ch, sol)
		}
		if iss.Verify(ch, sol) == nil {
			t.Fatalf("Verify accepted %q %q twice", ch, sol)
		}
	})
}
