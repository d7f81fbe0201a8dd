package subscription

import (
	"strings"
	"testing"
	"time"

	"github.com/herald-dev/herald"
)

func TestTokenRoundTrip(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	k, err := NewTokens([]byte("0123456789abcdef0123456789abcdef"), func() time.Time { return now })
	if err != nil {
		t.Fatal(err)
	}
	for _, tok := range []Token{
		{Purpose: PurposeConfirm, SubscriberID: 7, Nonce: 99, Expires: now.Add(time.Hour)},
		{Purpose: PurposeUnsubscribe, SubscriberID: 1<<63 + 5},
		{Purpose: PurposeManage, SubscriberID: 1},
	} {
		s := k.Sign(tok)
		if strings.ContainsAny(s, "+/=") {
			t.Errorf("token %q is not URL-safe", s)
		}
		got, err := k.Verify(s, tok.Purpose)
		if err != nil {
			t.Fatalf("verify %v: %v", tok, err)
		}
		if got.SubscriberID != tok.SubscriberID || got.Nonce != tok.Nonce || !got.Expires.Equal(tok.Expires) {
			t.Errorf("round trip: got %+v want %+v", got, tok)
		}
	}
}

func TestTokenForgeryExpiryPurpose(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	clock := now
	k, _ := NewTokens([]byte("0123456789abcdef0123456789abcdef"), func() time.Time { return clock })
	other, _ := NewTokens([]byte("another-secret-of-32-bytes-......"), func() time.Time { return clock })
	good := k.Sign(Token{Purpose: PurposeConfirm, SubscriberID: 42, Nonce: 1, Expires: now.Add(time.Hour)})

	// Every single-character change is refused.
	alphabet := "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	for i := range good {
		c := alphabet[(strings.IndexByte(alphabet, good[i])+1)%len(alphabet)]
		bad := good[:i] + string(c) + good[i+1:]
		if _, err := k.Verify(bad, PurposeConfirm); err == nil {
			t.Fatalf("tampered token at %d accepted", i)
		} else if herald.ErrorCode(err) != herald.EINVALID {
			t.Fatalf("tampered token: code %q", herald.ErrorCode(err))
		}
	}
	for _, bad := range []string{"", "x", good + "A", good[:len(good)-1], strings.Repeat("A", len(good)), "%%%%", other.Sign(Token{Purpose: PurposeConfirm, SubscriberID: 42, Nonce: 1, Expires: now.Add(time.Hour)})} {
		if _, err := k.Verify(bad, PurposeConfirm); err == nil {
			t.Errorf("token %q accepted", bad)
		}
	}
	// A token of one purpose never works for another.
	unsub := k.Sign(Token{Purpose: PurposeUnsubscribe, SubscriberID: 42})
	if _, err := k.Verify(unsub, PurposeConfirm); err == nil {
		t.Error("unsubscribe token accepted as confirm")
	}
	if _, err := k.Verify(unsub, PurposeManage); err == nil {
		t.Error("unsubscribe token accepted as preferences")
	}
	if _, err := k.Verify(good, PurposeUnsubscribe); err == nil {
		t.Error("confirm token accepted as unsubscribe")
	}
	// Expiry.
	clock = now.Add(time.Hour)
	if _, err := k.Verify(good, PurposeConfirm); err == nil || !strings.Contains(err.Error(), "expired") {
		t.Errorf("expired token: %v", err)
	}
	// Unsubscribe tokens never expire.
	clock = now.Add(10 * 365 * 24 * time.Hour)
	if _, err := k.Verify(unsub, PurposeUnsubscribe); err != nil {
		t.Errorf("unsubscribe token expired: %v", err)
	}
}

func FuzzVerifyToken(f *testing.F) {
	now := time.Unix(1_800_000_000, 0)
	k, _ := NewTokens([]byte("0123456789abcdef0123456789abcdef"), func() time.Time { return now })
	f.Add(k.Sign(Token{Purpose: PurposeConfirm, SubscriberID: 1, Nonce: 2, Expires: now.Add(time.Hour)}))
	f.Add(k.Sign(Token{Purpose: PurposeUnsubscribe, SubscriberID: 3}))
	f.Add("")
	f.Add("not-a-token")
	f.Fuzz(func(t *testing.T, s string) {
		for _, p := range []Purpose{PurposeConfirm, PurposeUnsubscribe, PurposeManage} {
			tok, err := k.Verify(s, p)
			if err != nil {
				if herald.ErrorCode(err) != herald.EINVALID {
					t.Fatalf("error code %q for %q", herald.ErrorCode(err), s)
				}
				continue
			}
			// Anything accepted must be exactly what we would sign.
			if k.Sign(tok) != s || tok.Purpose != p {
				t.Fatalf("accepted a token we did not sign: %q", s)
			}
		}
	})
}

func TestNormalizeEmail(t *testing.T) {
	for in, want := range map[string]string{
		"  Reader@Example.ORG ":   "Reader@example.org",
		"a.b+tag@sub.Example.com": "a.b+tag@sub.example.com",
	} {
		got, err := herald.NormalizeEmail(in)
		if err != nil || got != want {
			t.Errorf("NormalizeEmail(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	long := strings.Repeat("a", 64) + "@" + strings.Repeat("b", 186) + ".org"
	for _, in := range []string{"", "nope", "a@b", "a@@b.org", "Name <a@b.org>", "a@b.org\r\nBcc: x@y.org", "a\n@b.org", "a@b..org", "a@.b.org", long, "a b@c.org"} {
		if _, err := herald.NormalizeEmail(in); err == nil || herald.ErrorField(err) != "email" {
			t.Errorf("NormalizeEmail(%q) accepted or no field: %v", in, err)
		}
	}
	if _, err := herald.CleanName(strings.Repeat("é", 101)); err == nil {
		t.Error("101-character name accepted")
	}
	if n, err := herald.CleanName(strings.Repeat("é", 100)); err != nil || n == "" {
		t.Errorf("100-character name refused: %v", err)
	}
	if _, err := herald.CleanName("Eve\r\nBcc: x@y.org"); err == nil {
		t.Error("name with CRLF accepted")
	}
}
