package subscription

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"hash"
	"sync"
	"time"

	"github.com/herald-dev/herald"
)

// Purpose says what a token may do; a token of one purpose never works for
// another.
type Purpose byte

const (
	PurposeConfirm     Purpose = 1
	PurposeUnsubscribe Purpose = 2
	PurposeManage      Purpose = 3 // the preferences page
)

func (p Purpose) String() string {
	switch p {
	case PurposeConfirm:
		return "confirm"
	case PurposeUnsubscribe:
		return "unsubscribe"
	case PurposeManage:
		return "preferences"
	}
	return "unknown"
}

// Token is what a link carries. Tokens are stateless: the HMAC vouches for
// them, so the store keeps no per-link rows. Confirm tokens carry the
// subscriber's Nonce (a later opt-in voids them) and an expiry; unsubscribe
// and preferences tokens never expire.
type Token struct {
	Purpose      Purpose
	SubscriberID uint64
	Nonce        uint64
	Expires      time.Time // zero = never
}

const (
	tokenBody = 1 + 8 + 8 + 8
	tokenMAC  = 16 // 128 bits of HMAC-SHA256 is plenty against forgery
	tokenLen  = tokenBody + tokenMAC
)

// Tokens signs and checks tokens with one secret.
type Tokens struct {
	key []byte
	now func() time.Time
	// macs keeps keyed HMACs for reuse: a digest run signs two links per
	// reader, and a fresh HMAC costs more than the signing.
	macs sync.Pool
}

// NewTokens returns a signer; the secret must be at least 16 bytes.
func NewTokens(secret []byte, now func() time.Time) (*Tokens, error) {
	if len(secret) < 16 {
		return nil, fmt.Errorf("subscription: token secret must be at least 16 bytes")
	}
	if now == nil {
		now = time.Now
	}
	k := &Tokens{key: append([]byte(nil), secret...), now: now}
	k.macs.New = func() any { return hmac.New(sha256.New, k.key) }
	return k, nil
}

// Sign encodes t as a URL-safe string.
func (k *Tokens) Sign(t Token) string {
	var b [tokenLen]byte
	b[0] = byte(t.Purpose)
	binary.BigEndian.PutUint64(b[1:], t.SubscriberID)
	binary.BigEndian.PutUint64(b[9:], t.Nonce)
	var exp int64
	if !t.Expires.IsZero() {
		exp = t.Expires.Unix()
	}
	binary.BigEndian.PutUint64(b[17:], uint64(exp))
	copy(b[tokenBody:], k.mac(b[:tokenBody]))
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func (k *Tokens) mac(body []byte) []byte {
	m := k.macs.Get().(hash.Hash)
	m.Reset()
	m.Write(body)
	sum := m.Sum(make([]byte, 0, sha256.Size))[:tokenMAC]
	k.macs.Put(m)
	return sum
}

// Verify decodes s and checks its signature, purpose and expiry. Every
// failure is an EINVALID error with a message a reader can act on.
func (k *Tokens) Verify(s string, want Purpose) (Token, error) {
	invalid := herald.Errorf(herald.EINVALID, "This link is not valid. It may have been cut short when it was copied.").WithField("token")
	if s == "" {
		return Token{}, herald.Errorf(herald.EINVALID, "This link has no token in it.").WithField("token")
	}
	if len(s) != base64.RawURLEncoding.EncodedLen(tokenLen) {
		return Token{}, invalid
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(s) // Strict: one token, one spelling
	if err != nil || len(b) != tokenLen {
		return Token{}, invalid
	}
	if !hmac.Equal(b[tokenBody:], k.mac(b[:tokenBody])) {
		return Token{}, invalid
	}
	t := Token{
		Purpose:      Purpose(b[0]),
		SubscriberID: binary.BigEndian.Uint64(b[1:]),
		Nonce:        binary.BigEndian.Uint64(b[9:]),
	}
	if exp := int64(binary.BigEndian.Uint64(b[17:])); exp != 0 {
		t.Expires = time.Unix(exp, 0)
	}
	if t.Purpose != want {
		return Token{}, invalid
	}
	if !t.Expires.IsZero() && !k.now().Before(t.Expires) {
		return Token{}, herald.Errorf(herald.EINVALID, "This confirmation link has expired. Subscribe again to get a new one.").WithField("token")
	}
	return t, nil
}

// NewNonce returns a random nonce (never zero).
func NewNonce() uint64 {
	var b [8]byte
	for {
		if _, err := rand.Read(b[:]); err != nil {
			panic("subscription: crypto/rand failed: " + err.Error()) // the OS is broken; nothing safe to do
		}
		if n := binary.BigEndian.Uint64(b[:]); n != 0 {
			return n
		}
	}
}
