package proxy

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"

	"github.com/weftmesh/weft/internal/h1"
	"github.com/weftmesh/weft/internal/proxy/plan"
)

func TestSniffTellsProtocolsApart(t *testing.T) {
	for _, tc := range []struct {
		name, first, want string
	}{
		{"GET", "GET / HTTP/1.1\r\n", ProtoHTTP1},
		{"extension method", "M-SEARCH * HTTP/1.1\r\n", ProtoHTTP1},
		{"HTTP/1.0 without CR", "GET /old HTTP/1.0\n", ProtoHTTP1},
		{"Redis inline command", "SET k v\r\n", ProtoTCP},
		{"SMTP-like client first", "HELO example.org\r\n", ProtoTCP},
		{"first line longer than the sniff", "SET k " + strings.Repeat("a", maxSniffLine) + "\r\n", ProtoTCP},
		{"h2 preface", http2.ClientPreface, ProtoH2},
		{"PRI that is not the preface", "PRI / HTTP/1.1\r\n", ProtoHTTP1},
		{"TLS ClientHello", "\x16\x03\x01\x00\xa5\x01", ProtoTLS},
		{"Redis", "*1\r\n$4\r\nPING\r\n", ProtoTCP},
		{"Dubbo magic", "\xda\xbb\xc2\x00", ProtoTCP},
		{"lower-case word", "hello world\n", ProtoTCP},
		{"space first", " GET /", ProtoTCP},
		{"too long for a method", strings.Repeat("A", 30) + " /", ProtoTCP},
		{"short then closed", "EHLO", ProtoTCP},
		{"method then closed", "GET / HTTP/1.1", ProtoTCP},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := sniff(bufio.NewReader(strings.NewReader(tc.first)))
			if err != nil || got != tc.want {
				t.Fatalf("sniff(%q) = %q, %v; want %q", tc.first, got, err, tc.want)
			}
		})
	}
}

// A client that sends part of a method and then waits is not mistaken for
// HTTP: the read waits for more, and the listener's detection deadline
// decides.
func TestSniffWaitsForAPartialMethod(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	go a.Write([]byte("HEL"))
	b.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	if got, err := sniff(bufio.NewReader(b)); err == nil {
		t.Fatalf("sniff of a silent partial method = %q, want a deadline error", got)
	}
}

// A connection upgraded to h2c is drained like any other: Shutdown waits
// for its stream, and the stream's answer still arrives.
func TestShutdownWaitsForUpgradedConnections(t *testing.T) {
	release := make(chan struct{})
	started := make(chan struct{})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(started)
		<-release
		io.WriteString(w, "done")
	})
	s := newListener(t, Config{Name: "test", H2: h, Resolve: func(*h1.Head, []byte, bool) (*plan.Cluster, *plan.MeshError) { return nil, nil }, Log: discard})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan struct{})
	go func() { s.Serve(ln); close(served) }()

	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n\r\n")
	br := bufio.NewReader(c)
	if line, err := br.ReadString('\n'); err != nil || !strings.HasPrefix(line, "HTTP/1.1 101") {
		t.Fatalf("upgrade: got %q, %v", line, err)
	}
	for line := ""; line != "\r\n"; {
		if line, err = br.ReadString('\n'); err != nil {
			t.Fatal(err)
		}
	}
	io.WriteString(c, http2.ClientPreface)
	fr := http2.NewFramer(c, br)
	fr.WriteSettings()
	<-started

	stopped := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		stopped <- s.Shutdown(ctx)
	}()
	select {
	case err := <-stopped:
		t.Fatalf("Shutdown returned (%v) while an upgraded stream was still being answered", err)
	case <-time.After(300 * time.Millisecond):
	}
	close(release)
	var body strings.Builder
	for body.String() != "done" {
		f, err := fr.ReadFrame()
		if err != nil {
			t.Fatalf("reading the answer: %v (body so far %q)", err, body.String())
		}
		if d, ok := f.(*http2.DataFrame); ok {
			body.Write(d.Data())
		}
	}
	select {
	case err := <-stopped:
		if err != nil {
			t.Fatalf("Shutdown: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Shutdown did not return after the stream ended")
	}
	<-served
}

// clientHello returns the first flight of a crypto/tls client naming name.
func clientHello(t *testing.T, name string) []byte {
	t.Helper()
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	go tls.Client(a, &tls.Config{ServerName: name, InsecureSkipVerify: true, NextProtos: []string{"h2"}}).Handshake()
	b.SetReadDeadline(time.Now().Add(5 * time.Second))
	hdr := make([]byte, 5)
	if _, err := io.ReadFull(b, hdr); err != nil {
		t.Fatal(err)
	}
	body := make([]byte, int(hdr[3])<<8|int(hdr[4]))
	if _, err := io.ReadFull(b, body); err != nil {
		t.Fatal(err)
	}
	return append(hdr, body...)
}

func TestServerNameReadsTheClientHelloWithoutConsumingIt(t *testing.T) {
	hello := clientHello(t, "catalog")
	br := bufio.NewReaderSize(bytes.NewReader(hello), 16<<10)
	name, err := serverName(br)
	if err != nil || name != "catalog" {
		t.Fatalf("serverName = %q, %v; want catalog", name, err)
	}
	if br.Buffered() != len(hello) {
		t.Errorf("serverName consumed bytes: %d of %d still buffered", br.Buffered(), len(hello))
	}
	if _, err := serverName(bufio.NewReader(bytes.NewReader(clientHello(t, "")))); err == nil {
		t.Error("serverName of a ClientHello without SNI: got no error")
	}
}

// A Shutdown that comes before Serve has its listener still ends Serve:
// Serve closes the listener and returns at once instead of accepting.
func TestShutdownBeforeServe(t *testing.T) {
	s := newListener(t, Config{Name: "outbound", Resolve: func(*h1.Head, []byte, bool) (*plan.Cluster, *plan.MeshError) { return nil, nil }, Log: discard})
	if err := s.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(ln) }()
	select {
	case err := <-done:
		if !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("Serve after Shutdown: %v, want http.ErrServerClosed", err)
		}
	case <-time.After(5 * time.Second):
		ln.Close()
		t.Fatal("Serve after Shutdown still accepting after 5 s")
	}
	if c, err := net.Dial("tcp", ln.Addr().String()); err == nil {
		c.Close()
		t.Error("the listener still takes connections after Serve returned")
	}
}
