package subscription

import (
	"testing"
	"time"
)

// Every digest email carries two signed links, and every click on one is
// checked: Sign and Verify are per reader, per run.
func BenchmarkTokens(b *testing.B) {
	k, err := NewTokens([]byte("0123456789abcdef0123456789abcdef"), nil)
	if err != nil {
		b.Fatal(err)
	}
	unsub := Token{Purpose: PurposeUnsubscribe, SubscriberID: 123456}
	confirm := Token{Purpose: PurposeConfirm, SubscriberID: 123456, Nonce: 42, Expires: time.Now().Add(time.Hour)}
	b.Run("sign", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = k.Sign(unsub)
		}
	})
	b.Run("sign-parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				_ = k.Sign(unsub)
			}
		})
	})
	for _, c := range []struct {
		name string
		tok  string
		p    Purpose
		ok   bool
	}{
		{"verify", k.Sign(unsub), PurposeUnsubscribe, true},
		{"verify-confirm", k.Sign(confirm), PurposeConfirm, true},
		{"verify-forged", k.Sign(unsub)[:40] + "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"[:len(k.Sign(unsub))-40], PurposeUnsubscribe, false},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := k.Verify(c.tok, c.p); (err == nil) != c.ok {
					b.Fatalf("verify: %v", err)
				}
			}
		})
	}
}
