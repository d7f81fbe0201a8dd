// Package challenge is the proof of work herald asks of sign-ups under
// pressure (security.challenge): SHA-256 over a signed, expiring nonce of
// its own, solved by the subscribe page's script (templates/static/
// challenge.js) or by a blog's embed. It issues challenges, checks
// solutions, and remembers spent ones in a fixed amount of memory.
//
// A challenge is base64url(payload || mac): payload is a version byte,
// the difficulty in bits, the expiry (Unix seconds, 5 bytes, big-endian)
// and a random id of 10 bytes; mac is the first 10 bytes of
// HMAC-SHA256(key, payload). The whole is 36 characters, so a challenge,
// ":" and a solution of up to 18 digits fit one SHA-256 block. A solution
// is a decimal number n such that SHA-256(challenge + ":" + n) starts
// with difficulty zero bits.
package challenge

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"math/bits"
	"strconv"
	"sync"
	"time"

	"github.com/bits-and-blooms/bloom/v3"

	"github.com/herald-dev/herald"
)

// DefaultDifficulty is the work asked: 2^18 (262,144) hashes expected.
// The page's script hashes 1.2 to 1.7 million a second on one core of
// herald's build machine in headless Chromium (e2e TestBrowserChallenge
// prints it), so 0.15 to 0.2 s there; a mid-range phone's JavaScript runs
// at a third to a fifth of such a core, which makes 0.5 to 1 s, a low-end
// one about 1.5 s (and 3 times that for the unlucky 5%: the number of
// tries is geometric). Native code is 5 to 7 times faster than the script
// (Go with SHA extensions, same core, same run): this slows a bot down,
// it does not stop one; the budget's lanes do the rest.
const DefaultDifficulty = 18

// DefaultTTL is how long a challenge can be solved and used.
const DefaultTTL = 20 * time.Minute

// DefaultSpentCapacity is how many spent solutions each TTL window
// remembers at a false-positive rate of one in a million (about 3.6 MB
// per window, two windows); past it, the rate of fresh solutions taken
// for spent ones grows slowly (about 2% at twice as many), which only
// moves those sign-ups to the unsolved lane.
const DefaultSpentCapacity = 1 << 20

const (
	version    = 1
	idLen      = 10
	macLen     = 10
	payloadLen = 1 + 1 + 5 + idLen
	rawLen     = payloadLen + macLen
	// MaxSolution is the longest solution accepted, in digits.
	MaxSolution = 18
)

// Options configure an Issuer.
type Options struct {
	// Secret is security.secret; with a random value drawn at start it
	// keys the challenges' MAC, so challenges die with the process that
	// remembers which were spent.
	Secret []byte
	// Difficulty in bits (default DefaultDifficulty, at most 32: the
	// script compares the first word of the hash).
	Difficulty int
	TTL        time.Duration
	// Required says whether sign-ups must solve one now (the subscription
	// service's ChallengeRequired); nil: never.
	Required func() bool
	// SpentCapacity sizes the memory of spent solutions (default
	// DefaultSpentCapacity per TTL window).
	SpentCapacity uint
	Now           func() time.Time
}

// Issuer issues and verifies challenges; it implements
// herald.ChallengeService.
type Issuer struct {
	opt   Options
	key   []byte
	spent *spentSet
}

var _ herald.ChallengeService = (*Issuer)(nil)

// New returns an Issuer.
func New(opt Options) (*Issuer, error) {
	if len(opt.Secret) == 0 {
		return nil, fmt.Errorf("challenge: a secret is required")
	}
	if opt.Difficulty == 0 {
		opt.Difficulty = DefaultDifficulty
	}
	if opt.Difficulty < 1 || opt.Difficulty > 32 {
		return nil, fmt.Errorf("challenge: difficulty %d bits: want 1 to 32", opt.Difficulty)
	}
	if opt.TTL <= 0 {
		opt.TTL = DefaultTTL
	}
	if opt.SpentCapacity == 0 {
		opt.SpentCapacity = DefaultSpentCapacity
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	boot := make([]byte, 16)
	if _, err := rand.Read(boot); err != nil {
		return nil, fmt.Errorf("challenge: %w", err)
	}
	m := hmac.New(sha256.New, opt.Secret)
	m.Write([]byte("herald/challenge/v1\x00"))
	m.Write(boot)
	return &Issuer{opt: opt, key: m.Sum(nil), spent: newSpentSet(opt.SpentCapacity, opt.TTL)}, nil
}

// Required says whether sign-ups are asked to solve a challenge now.
func (i *Issuer) Required() bool { return i.opt.Required != nil && i.opt.Required() }

// Issue returns a fresh challenge.
func (i *Issuer) Issue() herald.Challenge {
	exp := i.opt.Now().Add(i.opt.TTL).Truncate(time.Second)
	raw := make([]byte, payloadLen, rawLen)
	raw[0] = version
	raw[1] = byte(i.opt.Difficulty)
	var e [8]byte
	binary.BigEndian.PutUint64(e[:], uint64(exp.Unix()))
	copy(raw[2:7], e[3:])
	_, _ = rand.Read(raw[7:payloadLen])
	raw = append(raw, i.mac(raw)...)
	return herald.Challenge{Challenge: base64.RawURLEncoding.EncodeToString(raw), Difficulty: i.opt.Difficulty, ExpiresAt: exp.UTC()}
}

func (i *Issuer) mac(payload []byte) []byte {
	m := hmac.New(sha256.New, i.key)
	m.Write(payload)
	return m.Sum(nil)[:macLen]
}

func invalid(format string, args ...any) error {
	return herald.Errorf(herald.EINVALID, format, args...).WithField("solution")
}

// Verify checks a solution and spends it. The cheap checks come first:
// the signature before the hash of the work, the work before the memory
// of spent ones, so made-up input costs one HMAC.
func (i *Issuer) Verify(challenge, solution string) error {
	if challenge == "" || solution == "" {
		return invalid("no challenge solution was sent")
	}
	if len(solution) > MaxSolution {
		return invalid("the challenge solution is too long (at most %d digits)", MaxSolution)
	}
	for _, c := range []byte(solution) {
		if c < '0' || c > '9' {
			return invalid("the challenge solution must be a decimal number")
		}
	}
	raw, err := base64.RawURLEncoding.DecodeString(challenge)
	if err != nil || len(raw) != rawLen || raw[0] != version {
		return invalid("the challenge is not one herald issued")
	}
	payload := raw[:payloadLen]
	if !hmac.Equal(raw[payloadLen:], i.mac(payload)) {
		return invalid("the challenge is not one herald issued (or herald restarted since): ask for a new one")
	}
	var e [8]byte
	copy(e[3:], raw[2:7])
	if exp := time.Unix(int64(binary.BigEndian.Uint64(e[:])), 0); !i.opt.Now().Before(exp) {
		return invalid("the challenge expired: ask for a new one")
	}
	if !Solves(challenge, solution, int(raw[1])) {
		return invalid("the challenge solution does not do the work asked")
	}
	var id [idLen]byte
	copy(id[:], raw[7:payloadLen])
	if !i.spent.spend(id, i.opt.Now()) {
		return invalid("this challenge solution was used already: ask for a new one")
	}
	return nil
}

// Solves reports whether SHA-256(challenge + ":" + solution) starts with
// difficulty zero bits.
func Solves(challenge, solution string, difficulty int) bool {
	h := sha256.Sum256([]byte(challenge + ":" + solution))
	return LeadingZeros(h[:]) >= difficulty
}

// Solve finds the smallest solution of c, as the page's script does: for
// Go clients of the API (and the tests). It tries up to 2^(difficulty+8)
// numbers (about 256 times the work expected) and returns "" past them.
func Solve(c herald.Challenge) string {
	limit := 1 << min(max(c.Difficulty, 0)+8, 40)
	for n := range limit {
		if s := strconv.Itoa(n); Solves(c.Challenge, s, c.Difficulty) {
			return s
		}
	}
	return ""
}

// LeadingZeros counts the zero bits at the start of b.
func LeadingZeros(b []byte) int {
	n := 0
	for _, c := range b {
		if c != 0 {
			return n + bits.LeadingZeros8(c)
		}
		n += 8
	}
	return n
}

// spentSet remembers spent challenge ids in fixed memory: two Bloom
// filters, the current window's and the one before, swapped every TTL.
// An id spent at t stays in one of them until at least t+TTL, past its
// challenge's expiry; a Bloom filter never forgets what it holds, so a
// solution is never accepted twice, and a fresh one is taken for spent
// at the filter's false-positive rate.
type spentSet struct {
	mu        sync.Mutex
	capacity  uint
	ttl       time.Duration
	cur, prev *bloom.BloomFilter
	rotated   time.Time
}

func newSpentSet(capacity uint, ttl time.Duration) *spentSet {
	return &spentSet{capacity: capacity, ttl: ttl}
}

// spend records id and reports whether it was fresh.
func (s *spentSet) spend(id [idLen]byte, now time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cur == nil { // allocated at the first solution, not at start
		s.cur = bloom.NewWithEstimates(s.capacity, 1e-6)
		s.prev = bloom.NewWithEstimates(s.capacity, 1e-6)
		s.rotated = now
	}
	if now.Sub(s.rotated) >= s.ttl {
		s.prev.ClearAll()
		s.cur, s.prev = s.prev, s.cur
		s.rotated = now
	}
	if s.prev.Test(id[:]) {
		return false
	}
	return !s.cur.TestAndAdd(id[:])
}
