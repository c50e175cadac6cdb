package e2e

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/meshtest"
)

// waitEndpoints waits until a sidecar's routing table has n ready endpoints for service.
func waitEndpoints(t *testing.T, sc *meshtest.Sidecar, service string, n int) {
	t.Helper()
	meshtest.WaitEndpoints(t, sc.Admin, service, n, 10*time.Second)
}

func dialTCP(t *testing.T, addr string) *net.TCPConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c.(*net.TCPConn)
}

// readGreeting reads the first line a server-speaks-first app sends.
func readGreeting(t *testing.T, c net.Conn, br *bufio.Reader, within time.Duration) string {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(within))
	line, err := br.ReadString('\n')
	if err != nil {
		t.Fatalf("no greeting within %s (was the connection held for protocol detection?): %v", within, err)
	}
	c.SetReadDeadline(time.Time{})
	return line
}

// TestTCPServiceThroughTwoSidecars: a TCP service whose server speaks
// first (as SMTP or MySQL do), declared by its sidecars with
// --app-protocol tcp, reached through a consumer's upstream listener.
// Detection is set to wait 10 s on every listener: the greeting arrives at
// once only because a declared TCP service skips detection.
func TestTCPServiceThroughTwoSidecars(t *testing.T) {
	t.Parallel()
	m := meshtest.New(t)
	cp := m.Control()
	providers := map[string]*meshtest.Sidecar{}
	for _, id := range []string{"smtp-1", "smtp-2"} {
		app := m.App(id, "--tcp-echo", "--tcp-greet")
		providers[id] = m.Sidecar(cp, "--service", "smtp", "--id", id, "--app-port", app.Port,
			"--app-protocol", "tcp", "--detect-timeout", "10s")
	}
	consumer := m.Sidecar(cp, "--service", "client", "--upstream", "smtp=0", "--detect-timeout", "10s")
	addr := consumer.Upstream(t, "smtp")
	waitEndpoints(t, consumer, "smtp", 2)
	roundRobin(t, m, cp, consumer, "smtp")

	// Connection-level balancing: consecutive connections reach both instances.
	seen := map[string]int{}
	for i := 0; i < 4; i++ {
		c := dialTCP(t, addr)
		seen[readGreeting(t, c, bufio.NewReader(c), 3*time.Second)]++
		c.Close()
	}
	for _, id := range []string{"smtp-1", "smtp-2"} {
		if got := seen["220 "+id+" ready\r\n"]; got != 2 {
			t.Errorf("greetings %v: got %d from %s, want 2 (round robin per connection)", seen, got, id)
		}
	}

	// Half-close: the client ends its stream, the echo server sees the end,
	// sends the rest back and closes; every byte arrives before the end.
	c := dialTCP(t, addr)
	br := bufio.NewReader(c)
	readGreeting(t, c, br, 3*time.Second)
	payload := bytes.Repeat([]byte("EHLO weft\r\n"), 10000)
	if _, err := c.Write(payload); err != nil {
		t.Fatal(err)
	}
	if err := c.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	back, err := io.ReadAll(br)
	if err != nil {
		t.Fatalf("reading the echo after half-close: %v", err)
	}
	if !bytes.Equal(back, payload) {
		t.Fatalf("echo after half-close: got %d bytes, want the %d sent", len(back), len(payload))
	}

	// What the sidecars counted: 5 connections, the bytes each way, and no
	// detection (declared) on either side.
	greeting := len("220 smtp-1 ready\r\n")
	want := map[string]float64{
		`weft_tcp_connections_total{destination_service="smtp",direction="outbound",source_service="client"}`:    5,
		`weft_tcp_received_bytes_total{destination_service="smtp",direction="outbound",source_service="client"}`: float64(len(payload)),
		`weft_tcp_sent_bytes_total{destination_service="smtp",direction="outbound",source_service="client"}`:     float64(5*greeting + len(payload)),
		`weft_tcp_connections_active{direction="outbound",service="smtp"}`:                                       0,
		`weft_protocol_detections_total{how="declared",listener="upstream/smtp",protocol="tcp"}`:                 5,
	}
	m.Eventually(5*time.Second, func() (bool, string) {
		for series, v := range want {
			if got := consumer.Metric(series); got != v {
				return false, fmt.Sprintf("consumer %s = %g, want %g", series, got, v)
			}
		}
		return true, ""
	})
	if out, _, _ := m.Weft("get", "instances", "smtp", "--control", cp.Addr); strings.Count(out, " tcp ") != 2 {
		t.Errorf("get instances smtp: want both instances shown as tcp, got\n%s", out)
	}
	var inbound float64
	for id, p := range providers {
		v := p.Metric(`weft_protocol_detections_total{how="declared",listener="inbound",protocol="tcp"}`)
		if v < 1 {
			t.Errorf("provider %s counted %g declared TCP connections on inbound, want at least 1 (round robin)", id, v)
		}
		inbound += v
	}
	if inbound != 5 {
		t.Errorf("providers counted %g declared TCP connections on inbound, want 5", inbound)
	}
}

// TestTCPGigabyteEchoByteForByte streams 1 GiB through two sidecars to an
// echo app and back, and checks every byte and its order.
func TestTCPGigabyteEchoByteForByte(t *testing.T) {
	// Not parallel: it keeps both cores busy, which would starve the timing of the others.
	if testing.Short() {
		t.Skip("1 GiB stream")
	}
	m := meshtest.New(t)
	cp := m.Control()
	app := m.App("echo-1", "--tcp-echo")
	provider := m.Sidecar(cp, "--service", "echo", "--app-port", app.Port, "--app-protocol", "tcp")
	consumer := m.Sidecar(cp, "--service", "client", "--upstream", "echo=0/tcp")
	addr := consumer.Upstream(t, "echo")
	waitEndpoints(t, consumer, "echo", 1)

	const chunk, total = 1 << 20, 1 << 30
	base := make([]byte, chunk)
	rand.Read(base)
	// Each chunk is the random block stamped with its index, so a lost,
	// repeated or reordered chunk shows.
	chunkAt := func(dst []byte, i int) { copy(dst, base); binary.BigEndian.PutUint64(dst, uint64(i)) }

	c := dialTCP(t, addr)
	start := time.Now()
	writeErr := make(chan error, 1)
	go func() {
		buf := make([]byte, chunk)
		for i := 0; i < total/chunk; i++ {
			chunkAt(buf, i)
			if _, err := c.Write(buf); err != nil {
				writeErr <- err
				return
			}
		}
		writeErr <- c.CloseWrite()
	}()
	c.SetReadDeadline(time.Now().Add(3 * time.Minute))
	got, want := make([]byte, chunk), make([]byte, chunk)
	for i := 0; i < total/chunk; i++ {
		if _, err := io.ReadFull(c, got); err != nil {
			t.Fatalf("chunk %d: %v (after %d bytes)", i, err, i*chunk)
		}
		chunkAt(want, i)
		if !bytes.Equal(got, want) {
			t.Fatalf("chunk %d differs (index stamped %d)", i, binary.BigEndian.Uint64(got))
		}
	}
	if n, err := c.Read(got[:1]); n != 0 || !errors.Is(err, io.EOF) {
		t.Fatalf("after 1 GiB: got %d bytes, %v; want the end of stream", n, err)
	}
	if err := <-writeErr; err != nil {
		t.Fatal(err)
	}
	d := time.Since(start)
	t.Logf("1 GiB each way through two sidecars in %s (%.0f MiB/s each way)", d.Round(time.Millisecond), 1024/d.Seconds())
	for name, sc := range map[string]*meshtest.Sidecar{"consumer": consumer, "provider": provider} {
		if rss := vmHWM(t, sc.Cmd.Process.Pid); rss > 150<<20 {
			t.Errorf("%s sidecar peak RSS %d MiB after a 1 GiB stream, want < 150 MiB", name, rss>>20)
		}
	}
	m.Eventually(5*time.Second, func() (bool, string) {
		got := consumer.Metric(`weft_tcp_sent_bytes_total{destination_service="echo",direction="outbound",source_service="client"}`)
		return got == total, fmt.Sprintf("consumer sent bytes %g, want %d", got, total)
	})
}

// TestTCPIdleTimeout: a connection with no bytes either way for the idle
// timeout is closed by the mesh; one with traffic is not.
func TestTCPIdleTimeout(t *testing.T) {
	t.Parallel()
	m := meshtest.New(t)
	cp := m.Control()
	app := m.App("echo-1", "--tcp-echo")
	m.Sidecar(cp, "--service", "echo", "--app-port", app.Port, "--app-protocol", "tcp")
	consumer := m.Sidecar(cp, "--service", "client", "--upstream", "echo=0/tcp", "--tcp-idle-timeout", "1s")
	addr := consumer.Upstream(t, "echo")
	waitEndpoints(t, consumer, "echo", 1)

	// Busy: a byte every 100 ms for 2.5 s (over two idle timeouts) keeps it
	// open; the timeout leaves room for a slow scheduler.
	busy := dialTCP(t, addr)
	one := make([]byte, 1)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for end := time.Now().Add(2500 * time.Millisecond); time.Now().Before(end); <-tick.C {
		busy.SetDeadline(time.Now().Add(2 * time.Second))
		if _, err := busy.Write([]byte("x")); err != nil {
			t.Fatalf("busy connection closed: %v", err)
		}
		if _, err := io.ReadFull(busy, one); err != nil {
			t.Fatalf("busy connection closed: %v", err)
		}
	}
	busy.Close()

	// Idle: closed by the mesh after about 1 s.
	idle := dialTCP(t, addr)
	idle.Write([]byte("x"))
	idle.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadFull(idle, one); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	n, err := idle.Read(one)
	if n != 0 || err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("idle connection: got %d bytes, %v; want it closed by the mesh", n, err)
	}
	t.Logf("idle connection closed after %s", time.Since(start).Round(time.Millisecond))
	m.Eventually(5*time.Second, func() (bool, string) {
		got := consumer.Metric(`weft_tcp_idle_timeouts_total{direction="outbound",service="echo"}`)
		return got == 1, fmt.Sprintf("idle timeouts %g, want 1", got)
	})
}

// TestConnectTunnelToMeshTCPService: an app that speaks HTTP proxy
// (CONNECT) reaches a TCP service by name, balanced like any other call.
func TestConnectTunnelToMeshTCPService(t *testing.T) {
	t.Parallel()
	m := meshtest.New(t)
	cp := m.Control()
	app := m.App("smtp-1", "--tcp-echo", "--tcp-greet")
	m.Sidecar(cp, "--service", "smtp", "--id", "smtp-1", "--app-port", app.Port, "--app-protocol", "tcp")
	consumer := m.Sidecar(cp, "--service", "client")
	waitEndpoints(t, consumer, "smtp", 1)

	c := dialTCP(t, consumer.Outbound)
	fmt.Fprintf(c, "CONNECT smtp:25 HTTP/1.1\r\nHost: smtp:25\r\n\r\n")
	br := bufio.NewReader(c)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	status, err := br.ReadString('\n')
	if err != nil || !strings.HasPrefix(status, "HTTP/1.1 200") {
		t.Fatalf("CONNECT smtp:25: got %q, %v; want 200", status, err)
	}
	for line := status; line != "\r\n"; {
		if line, err = br.ReadString('\n'); err != nil {
			t.Fatal(err)
		}
	}
	if got := readGreeting(t, c, br, 3*time.Second); got != "220 smtp-1 ready\r\n" {
		t.Errorf("greeting through CONNECT: got %q", got)
	}
	fmt.Fprintf(c, "QUIT\r\n")
	if line, _ := br.ReadString('\n'); line != "QUIT\r\n" {
		t.Errorf("echo through CONNECT: got %q", line)
	}
	m.Eventually(5*time.Second, func() (bool, string) {
		got := consumer.Metric(`weft_tcp_connections_total{destination_service="smtp",direction="outbound",source_service="client"}`)
		return got == 1, fmt.Sprintf("tcp connections %g, want 1", got)
	})
}

// TestTCPServiceRoutesAroundADeadApp: when a TCP app dies behind a live
// sidecar, the first connection its sidecar cannot forward triggers a
// health check at once (the periodic one is an hour away here), the
// instance is withdrawn, and new connections all reach the other one.
func TestTCPServiceRoutesAroundADeadApp(t *testing.T) {
	t.Parallel()
	m := meshtest.New(t)
	cp := m.Control()
	apps := map[string]*meshtest.App{}
	for _, id := range []string{"smtp-1", "smtp-2"} {
		apps[id] = m.App(id, "--tcp-echo", "--tcp-greet")
		m.Sidecar(cp, "--service", "smtp", "--id", id, "--app-port", apps[id].Port, "--app-protocol", "tcp",
			"--health-interval", "1h")
	}
	consumer := m.Sidecar(cp, "--service", "client", "--upstream", "smtp=0")
	addr := consumer.Upstream(t, "smtp")
	waitEndpoints(t, consumer, "smtp", 2)

	apps["smtp-1"].Signal(9)
	m.Eventually(10*time.Second, func() (bool, string) {
		got := map[string]int{}
		for i := 0; i < 10; i++ {
			c, err := net.DialTimeout("tcp", addr, time.Second)
			if err != nil {
				return false, err.Error()
			}
			c.SetReadDeadline(time.Now().Add(2 * time.Second))
			line, err := bufio.NewReader(c).ReadString('\n')
			c.Close()
			if err != nil {
				line = "error: " + err.Error()
			}
			got[line]++
		}
		return got["220 smtp-2 ready\r\n"] == 10, fmt.Sprintf("greetings of 10 connections: %v", got)
	})
}
