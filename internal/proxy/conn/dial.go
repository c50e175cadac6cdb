package conn

import (
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
