package server

import (
	"context"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"unicode"
)

// DefaultUserHeader is the header Kubeflow's auth (oauth2-proxy or dex
// through the Istio ingress gateway) sets to the signed-in user's id.
const DefaultUserHeader = "kubeflow-userid"

// maxUserIDBytes bounds an identity header's value; a longer one is not an id.
const maxUserIDBytes = 256

// client is who sent a request, as far as this server can tell.
type client struct {
	// addr is the address limits are kept by: the peer, or, for a request
	// from the gateway, the address the gateway saw (X-Forwarded-For).
	// IPv6 addresses are cut to their /64, which one host usually holds.
	addr netip.Addr
	// viaGateway says the request came through the trusted gateway, so its
	// X-Forwarded-For and identity header were believed.
	viaGateway bool
	// user is the identity header's value when viaGateway, else "".
	user string
}

type clientKey struct{}

// clientOf returns the client that the identify middleware stored.
func clientOf(ctx context.Context) client {
	c, _ := ctx.Value(clientKey{}).(client)
	return c
}

// trust decides which requests come from the gateway.
type trust struct {
	proxies    []netip.Prefix
	gatewayID  string
	userHeader string
}

// identify works out the client of r. A header that names a client address
// or an identity is believed only when the peer is a trusted proxy (the
// pod's Istio sidecar, which connects from 127.0.0.6) and, when a gateway
// identity is configured, the sidecar's X-Forwarded-Client-Cert says the
// mTLS peer was that gateway. A client that reaches the pod any other way
// (the LoadBalancer, another pod) is known by its peer address only.
func (t *trust) identify(r *http.Request) client {
	peer := peerAddr(r.RemoteAddr)
	c := client{addr: limitKey(peer)}
	if !t.trustedProxy(peer) {
		return c
	}
	if t.gatewayID != "" && !xfccPeerIs(r.Header.Values("X-Forwarded-Client-Cert"), t.gatewayID) {
		return c
	}
	c.viaGateway = true
	if a, ok := t.forwardedFor(r.Header.Values("X-Forwarded-For")); ok {
		c.addr = limitKey(a)
	}
	if u := r.Header.Get(t.userHeader); validUserID(u) {
		c.user = u
	}
	return c
}

func (t *trust) trustedProxy(a netip.Addr) bool {
	if !a.IsValid() {
		return false
	}
	for _, p := range t.proxies {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// forwardedFor returns the rightmost X-Forwarded-For address that is not a
// trusted proxy: the one the gateway itself saw. Entries left of it were
// written by the client and prove nothing.
func (t *trust) forwardedFor(values []string) (netip.Addr, bool) {
	var hops []string
	for _, v := range values {
		hops = append(hops, strings.Split(v, ",")...)
	}
	for i := len(hops) - 1; i >= 0; i-- {
		a, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			if ap, err2 := netip.ParseAddrPort(strings.TrimSpace(hops[i])); err2 == nil {
				a, err = ap.Addr(), nil
			}
		}
		if err != nil {
			return netip.Addr{}, false // a garbled hop: believe none left of it
		}
		a = a.Unmap()
		if !t.trustedProxy(a) {
			return a, true
		}
	}
	return netip.Addr{}, false
}

func peerAddr(remote string) netip.Addr {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		host = remote
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}
	}
	return a.Unmap()
}

// limitKey is the address limits are kept by: an IPv4 address, or the /64
// of an IPv6 address.
func limitKey(a netip.Addr) netip.Addr {
	if a.Is6() && !a.Is4In6() {
		p, err := a.Prefix(64)
		if err == nil {
			return p.Addr()
		}
	}
	return a
}

// validUserID accepts a non-empty printable id of bounded length (an email
// address, a user name, a subject id) and nothing that could break a log
// line or a header.
func validUserID(s string) bool {
	if s == "" || len(s) > maxUserIDBytes {
		return false
	}
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return false
		}
	}
	return true
}

// xfccPeerIs reports whether the last element of X-Forwarded-Client-Cert,
// the one the sidecar appended for the mTLS connection it accepted, carries
// URI=id. Envoy sends the header only for mTLS connections (Istio's sidecar
// mode APPEND_FORWARD), so a plain-text client cannot forge the last element.
func xfccPeerIs(values []string, id string) bool {
	if len(values) == 0 {
		return false
	}
	elems := splitQuoted(strings.Join(values, ","), ',')
	if len(elems) == 0 {
		return false
	}
	for _, kv := range splitQuoted(elems[len(elems)-1], ';') {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || !strings.EqualFold(strings.TrimSpace(k), "URI") {
			continue
		}
		v = strings.TrimSpace(v)
		if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
			v = v[1 : len(v)-1]
		}
		if v == id {
			return true
		}
	}
	return false
}

// splitQuoted splits s at sep outside double quotes (XFCC quotes values that
// hold ',', ';' or '=').
func splitQuoted(s string, sep byte) []string {
	var out []string
	start, quoted := 0, false
	for i := 0; i < len(s); i++ {
		switch {
		case s[i] == '\\' && quoted && i+1 < len(s):
			i++
		case s[i] == '"':
			quoted = !quoted
		case s[i] == sep && !quoted:
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return append(out, s[start:])
}
