package proxy

import (
	"bufio"
	"net"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"
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
		{"request line longer than the sniff", "GET /" + strings.Repeat("a", maxSniffLine) + " HTTP/1.1\r\n", ProtoHTTP1},
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
