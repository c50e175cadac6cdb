package proxy

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/weftmesh/weft/internal/h1"
	"github.com/weftmesh/weft/internal/proxy/plan"
	"github.com/weftmesh/weft/internal/proxy/stdhttp"
)

// rawBackend answers every request with a fixed 1 KiB response, using the
// same allocation-free framing, so a benchmark counts the proxies' allocations.
func rawBackend(tb testing.TB) string {
	resp := []byte("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 1024\r\n\r\n" + strings.Repeat("x", 1024))
	return scriptedApp(tb, func(c net.Conn, br *bufio.Reader) {
		var h h1.Head
		for h1.ReadRequestHead(br, &h) == nil {
			if _, err := c.Write(resp); err != nil {
				return
			}
		}
	})
}

// fastPair starts an outbound and an inbound fast-path server in front of
// app, with service "svc" routed to the inbound, and returns the outbound address.
func fastPair(tb testing.TB, app string) string { return fastPairWith(tb, app, plan.Policy{}) }

// fastPairWith is fastPair with the outbound's clusters under policy.
func fastPairWith(tb testing.TB, app string, policy plan.Policy) string {
	reg := prometheus.NewRegistry()
	m := plan.NewMetrics(reg)
	serve := func(cfg Config) string { return serveProxy(tb, cfg) }
	in := stdhttp.NewInbound("svc", "svc-1", app, stdhttp.NewTransport(), m)
	inAddr := serve(Config{Resolve: in.Resolve, Metrics: m, Log: discard})
	table := plan.NewTable(m, policy)
	updateTable(table, map[string][]EndpointSpec{"svc": {{Instance: "svc-1", Address: inAddr}}})
	out := stdhttp.NewOutbound(table, stdhttp.NewTransport(), stdhttp.NewTransport(), m, discard)
	return serve(Config{Resolve: out.Resolve, Connect: true, Metrics: m, Log: discard})
}

func TestFastPathKeepAliveAndPipelining(t *testing.T) {
	checkGoroutines(t)
	outAddr := fastPair(t, rawBackend(t))
	c, err := net.Dial("tcp", outAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// Three requests written at once (pipelined) get three answers in order.
	io.WriteString(c, strings.Repeat("GET / HTTP/1.1\r\nHost: svc\r\n\r\n", 3))
	br := bufio.NewReader(c)
	var resp h1.Head
	for i := 0; i < 3; i++ {
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if err := h1.ReadResponseHead(br, &resp); err != nil {
			t.Fatalf("response %d: %v", i, err)
		}
		if resp.Status != 200 || resp.ContentLength != 1024 {
			t.Fatalf("response %d: got %d with length %d, want 200 with 1024", i, resp.Status, resp.ContentLength)
		}
		if _, err := br.Discard(1024); err != nil {
			t.Fatal(err)
		}
	}
}

// BenchmarkFastPathPair sends one request at a time through an outbound
// and an inbound fast-path server to a raw backend over loopback; the
// client and backend allocate nothing, so allocs/op is the two hops'.
func BenchmarkFastPathPair(b *testing.B) { benchPair(b, fastPair(b, rawBackend(b))) }

// benchPair sends one request at a time to outAddr (an outbound fast
// path in front of rawBackend) for b.N requests.
func benchPair(b *testing.B, outAddr string) {
	c, err := net.Dial("tcp", outAddr)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	req := []byte("GET / HTTP/1.1\r\nHost: svc\r\nUser-Agent: bench\r\n\r\n")
	br := bufio.NewReader(c)
	var resp h1.Head
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := c.Write(req); err != nil {
			b.Fatal(err)
		}
		if err := h1.ReadResponseHead(br, &resp); err != nil {
			b.Fatal(err)
		}
		if _, err := br.Discard(int(resp.ContentLength)); err != nil {
			b.Fatal(err)
		}
	}
}

// TestFastPathAllocationBudget holds the fast path to its budget: no
// allocation per request through two warm hops (see BenchmarkFastPathPair),
// with no timeout and with the default one.
func TestFastPathAllocationBudget(t *testing.T) {
	for _, timeout := range []time.Duration{0, 15 * time.Second} {
		t.Run(fmt.Sprint("timeout ", timeout), func(t *testing.T) { allocationBudget(t, plan.Policy{Timeout: timeout}) })
	}
}

func allocationBudget(t *testing.T, policy plan.Policy) {
	outAddr := fastPairWith(t, rawBackend(t), policy)
	c, err := net.Dial("tcp", outAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	req := []byte("GET / HTTP/1.1\r\nHost: svc\r\nUser-Agent: budget\r\n\r\n")
	br := bufio.NewReader(c)
	var resp h1.Head
	roundTrip := func() {
		if _, err := c.Write(req); err != nil {
			t.Fatal(err)
		}
		if err := h1.ReadResponseHead(br, &resp); err != nil {
			t.Fatal(err)
		}
		if _, err := br.Discard(int(resp.ContentLength)); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 10; i++ {
		roundTrip() // warm connections, pools and metric label handles
	}
	if got := testing.AllocsPerRun(200, roundTrip); got > 0.5 {
		t.Errorf("allocations per request through two hops: got %.2f, want 0", got)
	}
}
