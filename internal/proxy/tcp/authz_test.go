package tcp

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/weftmesh/weft/internal/config"
	"github.com/weftmesh/weft/internal/endpoint"
	"github.com/weftmesh/weft/internal/proxy/plan"
	"github.com/weftmesh/weft/internal/security/authz"
)

// An inbound with AuthorizationPolicies in front of an echo app, over
// real sockets: the peer each connection is forwarded with (as the
// listener's mutual TLS proves it) decides. web's bytes come back and
// count under source_service web; ratings' connection is closed before
// the app accepts anything, counted as a denial and recorded with the
// policy that decided.
func TestInboundAuthorizesByPeer(t *testing.T) {
	var wg sync.WaitGroup
	t.Cleanup(wg.Wait) // (last: after the listeners and connections close)
	appLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { appLn.Close() })
	var accepted atomic.Int64
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := appLn.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			wg.Add(1)
			go func() { defer wg.Done(); defer c.Close(); io.Copy(c, c) }()
		}
	}()

	reg := prometheus.NewRegistry()
	sm := plan.NewMetrics(reg).ForService("inbound", "echo")
	c := plan.NewCluster("echo", []*plan.Endpoint{endpoint.New("echo", "echo-1", appLn.Addr().String(), nil)}, 0, sm)
	recent := &plan.Recent{}
	c.RecordInto(recent, nil)
	a := plan.NewAuthorization("echo", sm)
	c.Authorize(a)
	m, err := authz.Compile("echo", []config.Authorization{
		{Name: "echo", Service: "echo", Action: config.AuthzAllow, Rules: []config.AuthorizationRule{
			{From: []config.AuthorizationSource{{Service: "web"}, {Service: "ratings"}}}}},
		{Name: "echo-deny", Service: "echo", Action: config.AuthzDeny, Rules: []config.AuthorizationRule{
			{From: []config.AuthorizationSource{{Service: "ratings"}}, To: []config.AuthorizationOperation{{Paths: []string{"/admin/*"}}}}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	a.Set(m)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	var logged lockedLog
	p := &Proxy{Log: logged.logger()}
	peers := make(chan string, 1) // the next connection's proven peer
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			peer := <-peers
			wg.Add(1)
			go func() { defer wg.Done(); defer conn.Close(); p.Forward(conn, nil, c, peer) }()
		}
	}()
	dial := func(peer string) net.Conn {
		t.Helper()
		peers <- peer
		conn, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		conn.SetDeadline(time.Now().Add(5 * time.Second))
		return conn
	}

	web := dial("web")
	if _, err := web.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 5)
	if _, err := io.ReadFull(web, buf); err != nil || string(buf) != "hello" {
		t.Fatalf("web: got %q, %v; want its bytes echoed", buf, err)
	}
	web.Close()

	ratings := dial("ratings")
	ratings.Write([]byte("let me in")) // (may fail: the proxy closes it)
	if n, err := ratings.Read(make([]byte, 1)); n != 0 || err == nil {
		t.Fatalf("ratings: read %d bytes, %v; want the connection closed", n, err)
	}
	waitFor(t, "both connections recorded", func() bool { return len(recent.Since(time.Time{}, 10)) == 2 })
	if n := accepted.Load(); n != 1 {
		t.Errorf("the app accepted %d connections, want 1 (web's only)", n)
	}

	got := recent.Since(time.Time{}, 10)
	var denied, allowed plan.Served
	for _, s := range got {
		if s.Error != nil {
			denied = s
		} else {
			allowed = s
		}
	}
	if allowed.Source != "web" || allowed.BytesReceived != 5 || allowed.Bytes != 5 {
		t.Errorf("web's record: got %+v, want source web, 5 bytes each way", allowed)
	}
	if denied.Source != "ratings" || denied.Error.Reason != plan.ReasonDenied || denied.Authorization != "denied by AuthorizationPolicy/echo-deny rule 0 (a TCP connection: the rule's to and when are left out, it matches by from alone)" {
		t.Errorf("ratings' record: got %+v (error %+v), want it denied by AuthorizationPolicy/echo-deny rule 0", denied, denied.Error)
	}
	for _, want := range []string{`msg="TCP connection denied, closed: a TCP connection from service \"ratings\" to \"echo\" is denied by AuthorizationPolicy/echo-deny rule 0`,
		"reason=denied", "peer=ratings", `authorization="denied by AuthorizationPolicy/echo-deny rule 0`} {
		if !strings.Contains(logged.String(), want) {
			t.Errorf("log:\n%s\nwant %s in it", logged.String(), want)
		}
	}
	for series, want := range map[string]float64{
		`weft_tcp_connections_total{destination_service="echo",direction="inbound",source_service="web"}`:    1,
		`weft_tcp_received_bytes_total{destination_service="echo",direction="inbound",source_service="web"}`: 5,
		`weft_tcp_sent_bytes_total{destination_service="echo",direction="inbound",source_service="web"}`:     5,
		`weft_authz_decisions_total{decision="allow",service="echo"}`:                                        1,
		`weft_authz_decisions_total{decision="deny",service="echo"}`:                                         1,
		`weft_mesh_errors_total{direction="inbound",reason="denied",service="echo"}`:                         1,
	} {
		if got := metricValue(t, reg, series); got != want {
			t.Errorf("%s: got %v, want %v", series, got, want)
		}
	}
	if n := testutil.CollectAndCount(reg, "weft_tcp_connections_total"); n != 1 {
		t.Errorf("weft_tcp_connections_total: %d series, want 1 (the denied connection is not counted as forwarded)", n)
	}
}

// lockedLog is a text log the proxy's goroutines and the test share.
type lockedLog struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func (l *lockedLog) logger() *slog.Logger { return slog.New(slog.NewTextHandler(l, nil)) }

// metricValue is the value of one series of reg, written as Prometheus
// shows it (labels in order of their names); 0 when it is not there.
func metricValue(t *testing.T, reg prometheus.Gatherer, series string) float64 {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		for _, m := range f.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
			}
			if f.GetName()+"{"+strings.Join(labels, ",")+"}" != series {
				continue
			}
			if c := m.GetCounter(); c != nil {
				return c.GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	return 0
}
