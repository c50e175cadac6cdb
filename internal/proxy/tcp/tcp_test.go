package tcp

import (
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/endpoint"
	"github.com/weftmesh/weft/internal/proxy/plan"
)

// tcpFixture serves a Proxy with the given idle timeout in front of an
// app served by app. It returns the proxy's address and a channel that
// gets a value each time Forward returns.
func tcpFixture(t *testing.T, idle time.Duration, app func(net.Conn)) (string, <-chan struct{}) {
	t.Helper()
	appLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { appLn.Close() })
	go func() {
		for {
			c, err := appLn.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); app(c) }()
		}
	}()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	c := plan.NewCluster("svc", []*plan.Endpoint{endpoint.New("svc", "svc-1", appLn.Addr().String(), nil)}, 0, nil)
	p := &Proxy{IdleTimeout: idle}
	done := make(chan struct{}, 16)
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { p.Forward(conn, nil, c, ""); conn.Close(); done <- struct{}{} }()
		}
	}()
	return ln.Addr().String(), done
}

func cpuTime(t *testing.T) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		t.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// Bytes moving one way keep the pair open; once nothing moves, it closes.
func TestTCPIdleTimeoutCountsBothDirections(t *testing.T) {
	addr, done := tcpFixture(t, time.Second, func(c net.Conn) { io.Copy(io.Discard, c) })
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for end := time.Now().Add(2500 * time.Millisecond); time.Now().Before(end); <-tick.C {
		c.SetWriteDeadline(time.Now().Add(time.Second))
		if _, err := c.Write([]byte("x")); err != nil {
			t.Fatalf("writing while the pair is busy one way: %v", err)
		}
	}
	select {
	case <-done:
		t.Fatal("the pair closed while bytes moved one way")
	default:
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := c.Read(make([]byte, 1)); n != 0 || err == nil {
		t.Fatalf("idle pair: read %d bytes, %v; want it closed", n, err)
	}
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Forward did not return after the idle timeout")
	}
}

// The idle timer that fires while the pair is not idle waits for the rest
// of the timeout counted from the last byte: here it fires 2s after the
// start, 200ms after the one later write, and the pair must wait out those
// 200ms without spinning.
func TestTCPIdleTimeoutDoesNotSpin(t *testing.T) {
	addr, done := tcpFixture(t, 2*time.Second, func(c net.Conn) { io.Copy(io.Discard, c) })
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	before := cpuTime(t)
	c.Write([]byte("x"))
	time.Sleep(200 * time.Millisecond) // traffic pacing: a second byte 200ms later
	c.Write([]byte("y"))
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Forward did not return after the idle timeout")
	}
	if used := cpuTime(t) - before; used > 150*time.Millisecond {
		t.Errorf("the test process used %s of CPU on an idle pair: a passed deadline spins", used)
	}
}

// A client that half-closes and then stops reading while the app keeps
// sending does not hold the pair open: blocked writes time out too.
func TestTCPIdleTimeoutEndsAStalledReader(t *testing.T) {
	addr, done := tcpFixture(t, 200*time.Millisecond, func(c net.Conn) {
		io.Copy(io.Discard, c) // until the client's end of stream
		big := make([]byte, 1<<20)
		for {
			if _, err := c.Write(big); err != nil {
				return
			}
		}
	})
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte("x"))
	c.(*net.TCPConn).CloseWrite()
	// Never read: the app's bytes pile up until every buffer is full.
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Forward still blocked 10s after the client stopped reading, with a 200ms idle timeout")
	}
}

// Half-close: the client's end of stream reaches the app, and the app's
// answer after it still reaches the client.
func TestTCPHalfClose(t *testing.T) {
	addr, done := tcpFixture(t, 0, func(c net.Conn) {
		b, _ := io.ReadAll(c)
		c.Write(append([]byte("got "), b...))
	})
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte("hello"))
	c.(*net.TCPConn).CloseWrite()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	b, err := io.ReadAll(c)
	if err != nil || string(b) != "got hello" {
		t.Fatalf("after half-close: got %q, %v; want %q", b, err, "got hello")
	}
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Forward did not return after both sides ended")
	}
}

// TestMaxConnectionsHoldsThenRefuses: with circuitBreaker maxConnections
// 1 and maxPendingRequests 1, a second connection waits until the first
// closes and then goes through; a third, with the wait full, is closed
// without reaching the app.
func TestMaxConnectionsHoldsThenRefuses(t *testing.T) {
	appLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { appLn.Close() })
	var accepted atomic.Int64
	go func() {
		for {
			c, err := appLn.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			go func() { defer c.Close(); io.Copy(c, c) }()
		}
	}()
	ep := endpoint.New("svc", "svc-1", appLn.Addr().String(), nil)
	c := plan.NewCluster("svc", []*plan.Endpoint{ep}, 5*time.Second, nil)
	c.MaxConnections, c.MaxPending = 1, 1
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	p := &Proxy{}
	var wg sync.WaitGroup
	t.Cleanup(wg.Wait)
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() { defer wg.Done(); p.Forward(conn, nil, c, ""); conn.Close() }()
		}
	}()
	echo := func(conn net.Conn, msg string) error {
		conn.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := conn.Write([]byte(msg)); err != nil {
			return err
		}
		buf := make([]byte, len(msg))
		if _, err := io.ReadFull(conn, buf); err != nil {
			return err
		}
		if string(buf) != msg {
			return fmt.Errorf("echoed %q, want %q", buf, msg)
		}
		return nil
	}
	dial := func() net.Conn {
		conn, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		return conn
	}

	first := dial()
	if err := echo(first, "one"); err != nil {
		t.Fatalf("the first connection: %v", err)
	}
	second := dial()
	waitFor(t, "the second connection waiting", func() bool { return ep.WaitingForConn() == 1 })
	third := dial()
	third.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := third.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("the third connection read %d bytes, %v; want it closed (EOF) at once", n, err)
	}
	first.Close()
	if err := echo(second, "two"); err != nil {
		t.Fatalf("the second connection, once the first closed: %v", err)
	}
	if n := accepted.Load(); n != 2 {
		t.Errorf("the app accepted %d connections, want 2", n)
	}
	second.Close()
	waitFor(t, "no connection counted open", func() bool { return ep.OpenConns() == 0 })
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after 5s: %s", what)
		}
		<-time.After(time.Millisecond)
	}
}
