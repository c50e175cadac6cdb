package conn

import (
	"crypto/tls"
	"fmt"
	"net"
	"time"
)

// DialTimeout bounds a connect to an endpoint.
const DialTimeout = 2 * time.Second

// dialers: TCP keep-alive probes find dead peers across the network; on
// loopback (the local app) they would only cost four system calls per
// connection. Go sets TCP_NODELAY on every TCP connection already.
var (
	dialer         = &net.Dialer{Timeout: DialTimeout, KeepAlive: 30 * time.Second}
	loopbackDialer = &net.Dialer{Timeout: DialTimeout, KeepAlive: -1}
)

// Dial connects to addr with the dialer that suits it. Not
// Dialer.DialTCP with an address parsed once: with no local address it
// binds the socket to 0.0.0.0:0 before connecting, and bind's search for a
// port does not reuse TIME_WAIT ports as connect's does. Under connection
// churn (bench/tcpbench) that made a new connection cost 1.9× the CPU per
// hop, more than the resolver's parsing it saves.
func Dial(addr string) (net.Conn, error) {
	if IsLoopback(addr) {
		return loopbackDialer.Dial("tcp", addr)
	}
	return dialer.Dial("tcp", addr)
}

// The ALPN protocols of mutual TLS between sidecars name what the
// connection carries once the handshake is done; the receiving sidecar
// tells mesh TLS from an app's own TLS by them.
const (
	ALPNMeshHTTP1 = "weft/http1"
	ALPNMeshH2    = "weft/h2"
	ALPNMeshTCP   = "weft/tcp"
)

// MeshALPN are the ALPN protocols of mutual TLS between sidecars.
var MeshALPN = []string{ALPNMeshH2, ALPNMeshHTTP1, ALPNMeshTCP}

// DialPeer connects to a peer sidecar at addr: over mutual TLS with cfg
// (the connection to carry alpn), or plain TCP when cfg is nil. It is
// the one dialer of connections to other sidecars, for every engine.
func DialPeer(addr string, cfg *tls.Config, alpn string) (net.Conn, error) {
	raw, err := Dial(addr)
	if err != nil || cfg == nil {
		return raw, err
	}
	c := cfg.Clone() // (the session cache is shared: resumption keeps the handshake short)
	c.NextProtos = []string{alpn}
	tc := tls.Client(raw, c)
	raw.SetDeadline(time.Now().Add(DialTimeout))
	if err := tc.Handshake(); err != nil {
		raw.Close()
		return nil, fmt.Errorf("mutual TLS with %s: %w", addr, err)
	}
	if got := tc.ConnectionState().NegotiatedProtocol; got != alpn {
		raw.Close()
		return nil, fmt.Errorf("mutual TLS with %s: the peer took %q for %q (not a Weft sidecar of this version?)", addr, got, alpn)
	}
	raw.SetDeadline(time.Time{})
	return tc, nil
}

// IsLoopback reports whether a host:port names this host's loopback.
func IsLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if ip := net.ParseIP(host); ip != nil {
		return ip.IsLoopback()
	}
	return host == "localhost"
}
