// Package proxytest holds what the data path's tests share across its
// packages (the listener's and each engine's): a check that a test left
// no goroutine running, and a loopback TCP connection pair.
package proxytest

import (
	"net"
	"runtime"
	"testing"
	"time"
)

// CheckGoroutines fails the test if goroutines started during it are
// still running a few seconds after its other cleanups. Call it first.
func CheckGoroutines(t *testing.T) {
	t.Helper()
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(5 * time.Second)
		for {
			n := runtime.NumGoroutine()
			if n <= before {
				return
			}
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<20)
				buf = buf[:runtime.Stack(buf, true)]
				t.Errorf("goroutines: got %d after the test, want at most %d as before it:\n%s", n, before, buf)
				return
			}
			<-time.After(10 * time.Millisecond)
		}
	})
}

// TCPPair returns both ends of a loopback TCP connection, closed when
// the test ends.
func TCPPair(t *testing.T) (client, server net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server = <-accepted
	if server == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { client.Close(); server.Close() })
	return client, server
}
