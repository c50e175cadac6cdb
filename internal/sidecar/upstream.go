package sidecar

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/weftmesh/weft/internal/proxy"
	"github.com/weftmesh/weft/internal/proxy/plan"
	"github.com/weftmesh/weft/internal/proxy/stdhttp"
	"github.com/weftmesh/weft/internal/proxy/tcp"
	"github.com/weftmesh/weft/internal/registry"
)

// Upstream is a local listener bound to one mesh service, written
// SERVICE=[HOST:]PORT[/tcp] on the command line. Connections to it reach
// an instance of the service: HTTP requests through the HTTP path, whatever
// their Host; anything else as bytes. /tcp declares the service TCP on this
// port: no protocol detection, for protocols in which the server speaks first.
type Upstream struct {
	Service string // the mesh service connections go to
	Listen  string // host:port
	TCP     bool   // declared TCP: no protocol detection
}

// ParseUpstream reads SERVICE=[HOST:]PORT[/tcp].
func ParseUpstream(s string) (Upstream, error) {
	name, addr, ok := strings.Cut(s, "=")
	if !ok {
		return Upstream{}, fmt.Errorf("%q: want SERVICE=[HOST:]PORT[/tcp]", s)
	}
	u := Upstream{Service: name}
	if a, proto, ok := strings.Cut(addr, "/"); ok {
		if proto != "tcp" {
			return Upstream{}, fmt.Errorf("%q: the only protocol to declare is tcp, not %q", s, proto)
		}
		addr, u.TCP = a, true
	}
	if _, err := strconv.Atoi(addr); err == nil {
		addr = net.JoinHostPort("127.0.0.1", addr)
	}
	u.Listen = addr
	return u, u.validate()
}

func (u Upstream) validate() error {
	if err := registry.ValidName(u.Service); err != nil {
		return err
	}
	_, port, err := net.SplitHostPort(u.Listen)
	if err != nil {
		return fmt.Errorf("%q is not [HOST:]PORT", u.Listen)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
		return errors.New("port must be a number from 0 to 65535")
	}
	return nil
}

// String is the flag form, SERVICE=HOST:PORT[/tcp].
func (u Upstream) String() string {
	s := u.Service + "=" + u.Listen
	if u.TCP {
		s += "/tcp"
	}
	return s
}

// upstreamServer builds the listener of one upstream: HTTP/1 on the fast
// path and HTTP/2 through the outbound handler, both routed to the bound
// service; other bytes (or all of them, when the service is declared TCP
// here or by its instances) forwarded to an instance of it.
func (s *Sidecar) upstreamServer(u Upstream, out *stdhttp.Outbound, bytes *tcp.Proxy, m *plan.Metrics) (*proxy.Listener, error) {
	f := &stdhttp.Fixed{Service: u.Service, Table: s.table, Out: out}
	cfg := proxy.Config{
		Name:    "upstream/" + u.Service,
		Resolve: f.Resolve,
		H2:      f,
		Opaque: func() (*plan.Cluster, bool) {
			c := f.Cluster()
			return c, u.TCP || c != nil && c.Protocol == "tcp"
		},
		TCP:           bytes,
		DetectTimeout: s.cfg.DetectTimeout,
		Metrics:       m,
		Log:           s.log,
	}
	if s.cfg.HTTP2Engine == "weft" {
		cfg.H2Frames = f.RouteH2
	}
	return proxy.NewListener(cfg)
}
