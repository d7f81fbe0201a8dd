package handlers

import (
	"net/http"
	"net/netip"
)

// DefaultIPv6Prefix is security.ipv6_prefix's default: one IPv6 visitor
// is a /64, what an ISP hands one home or phone.
const DefaultIPv6Prefix = 64

// VisitorOf is who a client address counts as for every per-visitor
// limit (sign-ups, resends, admin logins; Server.perVisitor): an IPv4
// address on its own, an IPv6 address by its first v6Bits bits, since
// one host holds a whole /64 and can rotate through 2^64 addresses in it.
// IPv4-mapped IPv6 addresses count as the IPv4 address. An invalid
// address is the zero Prefix: every client whose address is unknown
// shares one allowance.
func VisitorOf(a netip.Addr, v6Bits int) netip.Prefix {
	if !a.IsValid() {
		return netip.Prefix{}
	}
	a = a.Unmap()
	bits := 32
	if a.Is6() {
		bits = v6Bits
		if bits <= 0 || bits > 128 {
			bits = DefaultIPv6Prefix
		}
	}
	p, _ := a.WithZone("").Prefix(bits)
	return p
}

type visitorKey struct{}

// Visitor is the visitor of this request as the middleware worked it out
// (server.trusted_proxies peeled off, then security.ipv6_prefix
// applied), for handlers mounted under it (the admin UI's login
// throttle). Outside the middleware it is the peer's, by the default
// prefix.
func Visitor(r *http.Request) netip.Prefix {
	if p, ok := r.Context().Value(visitorKey{}).(netip.Prefix); ok {
		return p
	}
	return VisitorOf(ClientIP(r), DefaultIPv6Prefix)
}
