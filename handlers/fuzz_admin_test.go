package handlers

import (
	"net/http"
	"net/netip"
	"strings"
	"testing"

	"github.com/herald-dev/herald"
	"github.com/herald-dev/herald/api"
)

// FuzzAdminJSON feeds the JSON bodies of the admin API (POST
// /api/v1/posts, /runs, /subscribers, /test-email, /bounces; PATCH
// /api/v1/subscribers/{email}) to the
// decoding and checking those routes do: no input panics; a body that
// does not decode is EMALFORMED, one that decodes but breaks a rule is
// EINVALID with the field named; and whatever passes is clean.
func FuzzAdminJSON(f *testing.F) {
	for _, s := range []struct {
		route uint8
		body  string
	}{
		{0, `{"guid":"g1","url":"https://blog.example.org/a/","title":"A post","summary":"<p>s</p>","content":"<p>c</p>","author":"Ann","categories":["x","y"],"published_at":"2026-11-25T07:00:00Z"}`},
		{0, `{"url":"javascript:alert(1)","title":"x"}`},
		{0, `{"url":"https://a.example/\r\nX: y","title":" "}`},
		{0, `{"url":"https://a.example/","title":"t","published_at":"yesterday","categories":null}`},
		{0, `{"url":"https://a.example/","title":"t","extra":1}`},
		{1, `{"frequency":"daily","dry_run":true}`},
		{1, `{"frequency":"hourly"}`},
		{1, `{"frequency":1}`},
		{1, ``},
		{2, `{"email":"a@b.org","name":"Ann","frequency":"weekly","confirmed":true}`},
		{2, `{"email":"a@b.org\r\nBcc: c@d.org","source":"import"}`},
		{2, `{"email":"a@b.org"}{"email":"c@d.org"}`},
		{3, `{"to":"ops@example.org"}`},
		{3, `{"to":["x"]}`},
		{4, `{"email":"a@b.org","kind":"hard"}`},
		{4, `{"email":"a@b.org","kind":"COMPLAINT "}`},
		{4, `{"email":"a@b.org","kind":"bounce"}`},
		{4, "\xff\xfe{"},
		{5, `{"name":"Ann","frequency":"weekly","topics":["courts"],"timezone":"Asia/Kolkata","paused_until":"2030-01-02T03:04:05Z"}`},
		{5, `{"paused_until":null}`},
		{5, `{"paused_until":"soon","topics":["Sport"],"timezone":"Local"}`},
		{5, `{"topics":"Courts"}`},
	} {
		f.Add(s.route, []byte(s.body))
	}
	fuzzTopics, err := herald.NewOfferedTopics([]string{"Prisons", "Courts", "Policing"})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, route uint8, body []byte) {
		malformed := func(err error) {
			t.Helper()
			if c := herald.ErrorCode(err); c != herald.EMALFORMED {
				t.Fatalf("decode error with code %q: %v", c, err)
			}
		}
		invalid := func(err error) {
			t.Helper()
			if c := herald.ErrorCode(err); c != herald.EINVALID || herald.ErrorField(err) == "" {
				t.Fatalf("check error with code %q, field %q: %v", c, herald.ErrorField(err), err)
			}
		}
		switch route % 6 {
		case 0: // POST /api/v1/posts (the post's rules: posts.FuzzPostInput)
			var in herald.PostInput
			if err := decodeJSON(body, &in); err != nil {
				malformed(err)
			}
		case 1: // POST /api/v1/runs
			in := api.RunRequest{Frequency: "daily"}
			if len(strings.TrimSpace(string(body))) > 0 {
				if err := decodeJSON(body, &in); err != nil {
					malformed(err)
					return
				}
			}
			f, err := herald.ParseFrequency(in.Frequency)
			if err != nil {
				invalid(err)
				return
			}
			if !f.Valid() {
				t.Fatalf("frequency %q accepted", f)
			}
		case 2: // POST /api/v1/subscribers
			var in herald.SubscribeRequest
			if err := decodeJSON(body, &in); err != nil {
				malformed(err)
				return
			}
			if in.Source != "" {
				t.Fatalf("a JSON body set the source to %q", in.Source)
			}
			if e, err := herald.NormalizeEmail(in.Email); err != nil {
				invalid(err)
			} else if strings.ContainsAny(e, "\r\n<> ") || !strings.Contains(e, "@") {
				t.Fatalf("address %q accepted", e)
			}
			if n, err := herald.CleanName(in.Name); err != nil {
				invalid(err)
			} else if strings.ContainsFunc(n, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
				t.Fatalf("name %q accepted", n)
			}
		case 3: // POST /api/v1/test-email
			var in api.TestEmailRequest
			if err := decodeJSON(body, &in); err != nil {
				malformed(err)
			}
		case 4: // POST /api/v1/bounces
			var in api.BounceReport
			if err := decodeJSON(body, &in); err != nil {
				malformed(err)
				return
			}
			if _, err := herald.NormalizeEmail(in.Email); err != nil {
				invalid(err)
			}
			k, err := herald.ParseBounceKind(in.Kind)
			if err != nil {
				invalid(err)
				return
			}
			if k != herald.BounceHard && k != herald.BounceSoft && k != herald.BounceComplaint {
				t.Fatalf("bounce kind %q accepted", k)
			}
		case 5: // PATCH /api/v1/subscribers/{email}: the choices' checks
			var in herald.SubscriberPatch
			if err := decodeJSON(body, &in); err != nil {
				if herald.ErrorCode(err) == herald.EINVALID {
					invalid(err) // paused_until that is not a time
					return
				}
				malformed(err)
				return
			}
			if in.Topics != nil {
				topics, err := fuzzTopics.Parse(*in.Topics)
				if err != nil {
					invalid(err)
				} else if len(topics) > fuzzTopics.Len() {
					t.Fatalf("topics %q accepted", topics)
				}
				for _, tp := range topics {
					if _, ok := fuzzTopics.Lookup(tp); !ok {
						t.Fatalf("topic %q accepted", tp)
					}
				}
			}
			if in.Timezone != nil {
				if name, _, err := herald.ParseTimezone(*in.Timezone); err != nil {
					invalid(err)
				} else if strings.ContainsAny(name, " \r\n") {
					t.Fatalf("zone %q accepted", name)
				}
			}
		}
	})
}

// FuzzClientIP: X-Forwarded-For is outside input. Whatever it says, the
// client address is the peer unless the peer is a trusted proxy; behind
// one it is the right-most hop that is not a trusted proxy, and a
// malformed hop stops the walk (nothing left of it is believed).
func FuzzClientIP(f *testing.F) {
	f.Add("127.0.0.1:1234", "203.0.113.7")
	f.Add("127.0.0.1:1234", "10.0.0.1, 203.0.113.7, 127.0.0.1")
	f.Add("[::1]:80", "2001:db8::1,::ffff:192.0.2.1")
	f.Add("192.0.2.9:1", "127.0.0.1")
	f.Add("127.0.0.1:1", "garbage, 127.0.0.1")
	f.Add("not an address", "")
	s := &Server{opt: Options{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}}}
	f.Fuzz(func(t *testing.T, remote, xff string) {
		r := &http.Request{RemoteAddr: remote, Header: http.Header{}}
		if xff != "" {
			r.Header.Set("X-Forwarded-For", xff)
		}
		got := s.clientIP(r)
		var peer netip.Addr
		if ap, err := netip.ParseAddrPort(remote); err == nil {
			peer = ap.Addr().Unmap()
		} else if a, err := netip.ParseAddr(remote); err == nil {
			peer = a.Unmap()
		}
		if !s.trusted(peer) {
			if got != peer {
				t.Fatalf("untrusted peer %v with X-Forwarded-For %q became %v", peer, xff, got)
			}
			return
		}
		if !got.IsValid() {
			t.Fatalf("trusted peer %v with %q gave no address", peer, xff)
		}
		// The right-most hop that is not a trusted proxy; a malformed hop
		// ends the walk at the last trusted one.
		want := peer
		hops := strings.Split(xff, ",")
		for i := len(hops) - 1; i >= 0; i-- {
			a, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
			if err != nil {
				break
			}
			want = a.Unmap()
			if !s.trusted(want) {
				break
			}
		}
		if got != want {
			t.Fatalf("peer %v, X-Forwarded-For %q: client %v, want %v", peer, xff, got, want)
		}
	})
}
