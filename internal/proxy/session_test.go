package proxy

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/weftmesh/weft/internal/endpoint"
	"github.com/weftmesh/weft/internal/h1"
	"github.com/weftmesh/weft/internal/proxy/http1"
	"github.com/weftmesh/weft/internal/proxy/plan"
	"github.com/weftmesh/weft/internal/proxy/stdhttp"
	"github.com/weftmesh/weft/internal/proxy/tcp"
)

// scriptedApp runs serve on every connection it accepts, and closes the
// connection when serve returns, or at the end of the test.
func scriptedApp(tb testing.TB, serve func(c net.Conn, br *bufio.Reader)) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	conns := make(chan net.Conn, 64)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns <- c
			go func() {
				defer c.Close()
				serve(c, bufio.NewReader(c))
			}()
		}
	}()
	tb.Cleanup(func() {
		ln.Close()
		<-done
		for len(conns) > 0 {
			(<-conns).Close()
		}
	})
	return ln.Addr().String()
}

const (
	okResponse = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
	getRoot    = "GET / HTTP/1.1\r\nHost: svc\r\n\r\n"
)

// pairServers is fastPair with a response timeout on both hops, and the
// outbound server itself.
func pairServers(tb testing.TB, app string, timeout time.Duration) (outAddr string, out *Listener) {
	m := plan.NewMetrics(prometheus.NewRegistry())
	in := stdhttp.NewInbound("svc", "svc-1", app, stdhttp.NewTransport(), m)
	in.SetTimeout(timeout)
	inAddr := serveProxy(tb, Config{Resolve: in.Resolve, Metrics: m, Log: discard})
	table := plan.NewTable(m, plan.Policy{Timeout: timeout})
	updateTable(table, map[string][]EndpointSpec{"svc": {{Instance: "svc-1", Address: inAddr}}})
	o := stdhttp.NewOutbound(table, stdhttp.NewTransport(), stdhttp.NewTransport(), m, discard)
	out = newListener(tb, Config{Resolve: o.Resolve, Metrics: m, Log: discard})
	return serveListener(tb, out), out
}

func readOK(t *testing.T, c net.Conn, br *bufio.Reader, what string) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	var resp h1.Head
	if err := h1.ReadResponseHead(br, &resp); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	body := make([]byte, resp.ContentLength)
	if _, err := io.ReadFull(br, body); err != nil {
		t.Fatalf("%s: body: %v", what, err)
	}
	if resp.Status != 200 || string(body) != "ok" {
		t.Fatalf("%s: got %d %q, want 200 \"ok\"", what, resp.Status, body)
	}
}

// get sends GET / and expects 200 "ok".
func get(t *testing.T, c net.Conn, br *bufio.Reader, what string) {
	t.Helper()
	io.WriteString(c, getRoot)
	readOK(t, c, br, what)
}

// wantEOF fails unless r (reading c) ends within d.
func wantEOF(t *testing.T, c net.Conn, r io.Reader, d time.Duration, what string) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(d))
	if n, err := r.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("%s: got %d bytes, %v; want EOF within %v", what, n, err, d)
	}
}

func dialT(t *testing.T, addr string) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, bufio.NewReader(c)
}

// Both hops wait for the next request without reading first once the
// socket is known empty. A request that arrives while the previous one is
// still with the app must not be lost to that: the app holds the first
// response until the second request has reached the outbound's socket.
func TestSessionRequestArrivingDuringExchange(t *testing.T) {
	for _, timeout := range []time.Duration{0, 10 * time.Second} {
		t.Run("timeout="+timeout.String(), func(t *testing.T) {
			checkGoroutines(t)
			got := make(chan struct{}, 4)
			release := make(chan struct{})
			app := scriptedApp(t, func(c net.Conn, br *bufio.Reader) {
				var h h1.Head
				for h1.ReadRequestHead(br, &h) == nil {
					got <- struct{}{}
					if string(h.Target()) == "/first" {
						<-release
					}
					io.WriteString(c, okResponse)
				}
			})
			outAddr, _ := pairServers(t, app, timeout)
			c, br := dialT(t, outAddr)
			// The first request on a connection is read by detection; the
			// next ones inside the session, which then knows the socket empty.
			io.WriteString(c, "GET /warm HTTP/1.1\r\nHost: svc\r\n\r\n")
			<-got
			readOK(t, c, br, "warm-up response")
			io.WriteString(c, "GET /first HTTP/1.1\r\nHost: svc\r\n\r\n")
			<-got // the first request is with the app
			io.WriteString(c, "GET /second HTTP/1.1\r\nHost: svc\r\n\r\n")
			// The outbound cannot be observed reading; give the bytes a
			// moment to land in its socket before the first response frees it.
			time.Sleep(50 * time.Millisecond)
			close(release)
			start := time.Now()
			readOK(t, c, br, "first response")
			readOK(t, c, br, "second response")
			// A lost wake-up would be found by the 1 s probe: not good enough.
			if d := time.Since(start); d > 900*time.Millisecond {
				t.Errorf("both responses took %v after the app answered", d)
			}
		})
	}
}

// Heads that arrive in pieces, with LF line endings, or after empty lines
// are read whole before they are served.
func TestSessionOddHeads(t *testing.T) {
	checkGoroutines(t)
	app := delayedApp(t, nil)
	outAddr, _ := pairServers(t, app, 10*time.Second)
	c, br := dialT(t, outAddr)
	for _, piece := range []string{"GET / HT", "TP/1.1\r\nHo", "st: svc\r\n", "\r\n"} {
		io.WriteString(c, piece)
		time.Sleep(20 * time.Millisecond) // each piece arrives on its own
	}
	readOK(t, c, br, "head in pieces")
	io.WriteString(c, "GET / HTTP/1.1\nHost: svc\n\n")
	readOK(t, c, br, "LF line endings")
	io.WriteString(c, "\r\n\r\nGET / HTTP/1.1\r\nHost: svc\r\n\r\n")
	readOK(t, c, br, "after empty lines")
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: svc\r\n\r\n\r\n")
	readOK(t, c, br, "followed by an empty line")
	get(t, c, br, "after the empty line")
}

// Close does not wait for an exchange in progress, and the client sees
// its connection end at once, even while the app has not answered.
func TestCloseDuringExchange(t *testing.T) {
	checkGoroutines(t)
	got := make(chan struct{}, 1)
	hold := make(chan struct{})
	app := scriptedApp(t, func(c net.Conn, br *bufio.Reader) {
		var h h1.Head
		if h1.ReadRequestHead(br, &h) == nil {
			got <- struct{}{}
			<-hold // no answer until the test ends
		}
	})
	outAddr, out := pairServers(t, app, 0)
	t.Cleanup(func() { close(hold) })
	c, br := dialT(t, outAddr)
	io.WriteString(c, getRoot)
	<-got
	closed := make(chan struct{})
	go func() { out.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(2 * time.Second):
		t.Fatal("Close waited for the exchange in progress")
	}
	wantEOF(t, c, br, 2*time.Second, "client read after Close")
}

// Shutdown closes a keep-alive connection that waits for its next request.
func TestShutdownClosesWaitingSession(t *testing.T) {
	checkGoroutines(t)
	app := delayedApp(t, nil)
	outAddr, out := pairServers(t, app, 10*time.Second)
	c, br := dialT(t, outAddr)
	get(t, c, br, "response")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := out.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	wantEOF(t, c, br, 2*time.Second, "client read after Shutdown")
}

// An app that closes every connection after its response, without saying
// so, leaves a dead connection in the pool: the next request finds it
// dead when its write is refused, and goes out on a new one.
func TestPooledConnectionClosedByApp(t *testing.T) {
	checkGoroutines(t)
	app := scriptedApp(t, func(c net.Conn, br *bufio.Reader) {
		var h h1.Head
		if h1.ReadRequestHead(br, &h) == nil {
			io.WriteString(c, okResponse)
		}
	})
	outAddr, _ := pairServers(t, app, 10*time.Second)
	c, br := dialT(t, outAddr)
	for i := 0; i < 5; i++ {
		start := time.Now()
		get(t, c, br, "response")
		if d := time.Since(start); d > 900*time.Millisecond {
			t.Fatalf("request %d took %v: a dead pooled connection was waited on", i, d)
		}
	}
}

// A 101 to a request that asked for no upgrade is the app's error: the
// client gets a 502 rather than a connection taken over.
func TestSwitchingProtocolsUnasked(t *testing.T) {
	checkGoroutines(t)
	app := scriptedApp(t, func(c net.Conn, br *bufio.Reader) {
		var h h1.Head
		if h1.ReadRequestHead(br, &h) == nil {
			io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: x\r\n\r\n")
		}
		io.Copy(io.Discard, br)
	})
	outAddr, _ := pairServers(t, app, 10*time.Second)
	c, br := dialT(t, outAddr)
	io.WriteString(c, getRoot)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	var resp h1.Head
	if err := h1.ReadResponseHead(br, &resp); err != nil {
		t.Fatal(err)
	}
	if resp.Status != 502 || string(resp.Get(plan.HeaderError)) != plan.ReasonUpstreamReset {
		t.Fatalf("got %d %s=%q, want 502 %s", resp.Status, plan.HeaderError, resp.Get(plan.HeaderError), plan.ReasonUpstreamReset)
	}
	body := make([]byte, resp.ContentLength)
	io.ReadFull(br, body)
	if !strings.Contains(string(body), "asked for no upgrade") {
		t.Errorf("body %q does not say why", body)
	}
}

// An app that half-closes each connection after its response and keeps
// reading leaves a connection in the pool whose close no new byte will
// announce. The next request on it must still get its answer, from a new
// connection, with or without a response timeout.
func TestPooledConnectionHalfClosedByApp(t *testing.T) {
	for _, timeout := range []time.Duration{0, 500 * time.Millisecond, 10 * time.Second} {
		t.Run("timeout="+timeout.String(), func(t *testing.T) {
			checkGoroutines(t)
			app := scriptedApp(t, func(c net.Conn, br *bufio.Reader) {
				var h h1.Head
				if h1.ReadRequestHead(br, &h) == nil {
					io.WriteString(c, okResponse)
					c.(*net.TCPConn).CloseWrite()
				}
				io.Copy(io.Discard, br) // open for reading until the proxy closes it
			})
			outAddr, _ := pairServers(t, app, timeout)
			c, br := dialT(t, outAddr)
			for i := 0; i < 3; i++ {
				start := time.Now()
				get(t, c, br, "response")
				if d := time.Since(start); d > 3*time.Second {
					t.Fatalf("request %d took %v", i, d)
				}
			}
		})
	}
}

// A client that ends its stream right after its request gets the
// response, and then its connection closes: the close that came with the
// request is not lost to a wait without a read.
func TestSessionClientHalfCloseAfterRequest(t *testing.T) {
	checkGoroutines(t)
	app := delayedApp(t, nil)
	outAddr, _ := pairServers(t, app, 10*time.Second)
	c, br := dialT(t, outAddr)
	// Warm-up, so that the last request is read inside a session.
	get(t, c, br, "warm-up response")
	io.WriteString(c, getRoot)
	c.(*net.TCPConn).CloseWrite()
	readOK(t, c, br, "response")
	wantEOF(t, c, br, 3*time.Second, "after the response")
}

// A keep-alive connection that idles longer than the probe stays open,
// and serves its next request.
func TestSessionKeepAliveAfterIdle(t *testing.T) {
	checkGoroutines(t)
	app := delayedApp(t, nil)
	outAddr, _ := pairServers(t, app, 10*time.Second)
	c, br := dialT(t, outAddr)
	for i := 0; i < 3; i++ {
		get(t, c, br, "response")
	}
	time.Sleep(http1.ProbeAfter + http1.ProbeAfter/2) // the idle time is what is tested
	get(t, c, br, "response after idling")
}

// An interim response followed by a final one that takes longer than the
// first wait for the upstream: the final one arrives.
func TestInterimThenSlowFinalResponse(t *testing.T) {
	for _, timeout := range []time.Duration{0, 10 * time.Second} {
		t.Run("timeout="+timeout.String(), func(t *testing.T) {
			checkGoroutines(t)
			app := scriptedApp(t, func(c net.Conn, br *bufio.Reader) {
				var h h1.Head
				if h1.ReadRequestHead(br, &h) == nil {
					io.WriteString(c, "HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n")
					time.Sleep(http1.ProbeAfter + http1.ProbeAfter/2) // the app's slowness is what is tested
					io.WriteString(c, okResponse)
				}
			})
			outAddr, _ := pairServers(t, app, timeout)
			c, br := dialT(t, outAddr)
			io.WriteString(c, getRoot)
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			var resp h1.Head
			if err := h1.ReadResponseHead(br, &resp); err != nil || resp.Status != 103 {
				t.Fatalf("interim response: %d, %v; want 103", resp.Status, err)
			}
			readOK(t, c, br, "final response")
		})
	}
}

// An app that answers before it has read a large body (413, 401) is
// answered to the client at once, not after the first wait's bound.
func TestEarlyResponseToLargeBody(t *testing.T) {
	checkGoroutines(t)
	const size = 1 << 20
	app := scriptedApp(t, func(c net.Conn, br *bufio.Reader) {
		var h h1.Head
		for h1.ReadRequestHead(br, &h) == nil {
			io.WriteString(c, "HTTP/1.1 413 Content Too Large\r\nContent-Length: 0\r\n\r\n")
			if _, err := io.CopyN(io.Discard, br, h.ContentLength); err != nil {
				return
			}
		}
	})
	outAddr, _ := pairServers(t, app, 10*time.Second)
	c, br := dialT(t, outAddr)
	body := strings.Repeat("x", size)
	for i := 0; i < 3; i++ {
		start := time.Now()
		io.WriteString(c, "POST /upload HTTP/1.1\r\nHost: svc\r\nContent-Length: "+strconv.Itoa(size)+"\r\n\r\n"+body)
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		var resp h1.Head
		if err := h1.ReadResponseHead(br, &resp); err != nil || resp.Status != 413 {
			t.Fatalf("request %d: %d, %v; want 413", i, resp.Status, err)
		}
		if d := time.Since(start); d > 900*time.Millisecond {
			t.Errorf("request %d: the early answer took %v", i, d)
		}
	}
}

// Close ends a TCP connection whose app never speaks: the pair does not
// wait for the app (or the idle timeout) to let go.
func TestCloseEndsSilentTCPForward(t *testing.T) {
	checkGoroutines(t)
	got := make(chan struct{}, 1)
	hold := make(chan struct{})
	app := scriptedApp(t, func(c net.Conn, br *bufio.Reader) {
		got <- struct{}{}
		<-hold
	})
	t.Cleanup(func() { close(hold) })
	dest := plan.NewCluster("db", []*plan.Endpoint{endpoint.New("db", "db-1", app, nil)}, 0, nil)
	srv := newListener(t, Config{Name: "upstream/db", Log: discard, TCP: &tcp.Proxy{},
		Opaque: func() (*plan.Cluster, bool) { return dest, true }})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan struct{})
	go func() { srv.Serve(ln); close(served) }()
	c, _ := dialT(t, ln.Addr().String())
	<-got
	srv.Close()
	<-served
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatalf("the connection outlived Close: Shutdown: %v", err)
	}
	wantEOF(t, c, c, 2*time.Second, "client read after Close")
}

// Bodies: one that arrives with its head is served inside the session;
// one that follows later, or in chunks, on the ordinary path. Both reach
// the app whole, in order, on one connection.
func TestSessionRequestBodies(t *testing.T) {
	checkGoroutines(t)
	app := scriptedApp(t, func(c net.Conn, br *bufio.Reader) {
		var h h1.Head
		for h1.ReadRequestHead(br, &h) == nil {
			var body bytes.Buffer
			var err error
			if h.Chunked {
				w := bufio.NewWriter(&body)
				if err = h1.DechunkTo(w, br); err == nil {
					err = w.Flush()
				}
			} else {
				_, err = io.CopyN(&body, br, h.ContentLength)
			}
			if err != nil {
				return
			}
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: "+strconv.Itoa(body.Len())+"\r\n\r\n")
			c.Write(body.Bytes())
		}
	})
	outAddr, _ := pairServers(t, app, 10*time.Second)
	c, br := dialT(t, outAddr)
	echo := func(what, want string) {
		t.Helper()
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		var resp h1.Head
		if err := h1.ReadResponseHead(br, &resp); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		got := make([]byte, resp.ContentLength)
		if _, err := io.ReadFull(br, got); err != nil || string(got) != want {
			t.Fatalf("%s: got %d %q, %v; want 200 %q", what, resp.Status, got, err, want)
		}
	}
	post := func(body string) string {
		return "POST / HTTP/1.1\r\nHost: svc\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body
	}
	io.WriteString(c, post("warm-up"))
	echo("warm-up", "warm-up")
	io.WriteString(c, post("with its head"))
	echo("body with its head", "with its head")
	io.WriteString(c, post("one")+post("two")+"GET / HTTP/1.1\r\nHost: svc\r\n\r\n")
	echo("pipelined 1", "one")
	echo("pipelined 2", "two")
	echo("pipelined GET", "")
	head := "POST / HTTP/1.1\r\nHost: svc\r\nContent-Length: 5\r\n\r\n"
	io.WriteString(c, head)
	time.Sleep(20 * time.Millisecond) // the body arrives on its own
	io.WriteString(c, "later")
	echo("body after its head", "later")
	io.WriteString(c, "POST / HTTP/1.1\r\nHost: svc\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n")
	echo("chunked", "abc")
	io.WriteString(c, post("after chunked"))
	echo("after chunked", "after chunked")
}

// A pooled connection that idled past http1.ProbeAfter is checked before reuse:
// one the app half-closed meanwhile is dropped at once, not found out by a
// wait.
func TestIdlePooledConnectionChecked(t *testing.T) {
	checkGoroutines(t)
	app := scriptedApp(t, func(c net.Conn, br *bufio.Reader) {
		var h h1.Head
		if h1.ReadRequestHead(br, &h) == nil {
			io.WriteString(c, okResponse)
			c.(*net.TCPConn).CloseWrite()
		}
		io.Copy(io.Discard, br)
	})
	outAddr, _ := pairServers(t, app, 10*time.Second)
	c, br := dialT(t, outAddr)
	get(t, c, br, "first response")
	time.Sleep(http1.ProbeAfter + http1.ProbeAfter/5) // the idle time is what is tested
	start := time.Now()
	get(t, c, br, "response after idling")
	if d := time.Since(start); d > 900*time.Millisecond {
		t.Errorf("the request after idling took %v: the half-closed pooled connection was not checked", d)
	}
}

// oneHop serves an inbound in front of app; headTimeout 0 is the default.
func oneHop(t *testing.T, app string, timeout, headTimeout time.Duration) string {
	m := plan.NewMetrics(prometheus.NewRegistry())
	in := stdhttp.NewInbound("svc", "svc-1", app, stdhttp.NewTransport(), m)
	in.SetTimeout(timeout)
	return serveProxy(t, Config{Resolve: in.Resolve, Metrics: m, Log: discard, HeadTimeout: headTimeout})
}

// delayedApp answers each path after the delay given for it (none if
// not given).
func delayedApp(t testing.TB, delays map[string]time.Duration) string {
	return scriptedApp(t, func(c net.Conn, br *bufio.Reader) {
		var h h1.Head
		for h1.ReadRequestHead(br, &h) == nil {
			time.Sleep(delays[string(h.Target())]) // the app's slowness is what is tested
			io.WriteString(c, okResponse)
		}
	})
}

// A head that arrives in two pieces starts the head timeout; an exchange
// that outlasts it must not leave the connection with a deadline already
// past, which would end it before its next request.
func TestSessionAfterExchangeLongerThanHeadTimeout(t *testing.T) {
	checkGoroutines(t)
	c, br := dialT(t, oneHop(t, delayedApp(t, map[string]time.Duration{"/slow": 600 * time.Millisecond}), 0, 300*time.Millisecond))
	io.WriteString(c, "GET /warm HTTP/1.1\r\nHost: svc\r\n\r\n")
	readOK(t, c, br, "warm-up")
	io.WriteString(c, "P")
	time.Sleep(50 * time.Millisecond) // the rest of the head comes later
	io.WriteString(c, "OST /slow HTTP/1.1\r\nHost: svc\r\nContent-Length: 0\r\n\r\n")
	readOK(t, c, br, "slow response")
	io.WriteString(c, "GET /next HTTP/1.1\r\nHost: svc\r\n\r\n")
	readOK(t, c, br, "request after the slow one")
}

// Each request's response timeout counts from its own start, also for a
// pipelined head that began while the one before it was served.
func TestSessionPipelinedHeadTimedFromItsStart(t *testing.T) {
	checkGoroutines(t)
	app := delayedApp(t, map[string]time.Duration{"/a": 700 * time.Millisecond, "/c": 600 * time.Millisecond})
	c, br := dialT(t, oneHop(t, app, time.Second, 0))
	io.WriteString(c, "GET /warm HTTP/1.1\r\nHost: svc\r\n\r\n")
	readOK(t, c, br, "warm-up")
	io.WriteString(c, "P")
	time.Sleep(50 * time.Millisecond) // the rest of the head comes later
	io.WriteString(c, "OST /a HTTP/1.1\r\nHost: svc\r\nContent-Length: 0\r\n\r\nGET /c HTTP/1.1\r\nHo")
	readOK(t, c, br, "/a")
	time.Sleep(100 * time.Millisecond) // the rest of the pipelined head comes later
	io.WriteString(c, "st: svc\r\n\r\n")
	readOK(t, c, br, "/c")
}
