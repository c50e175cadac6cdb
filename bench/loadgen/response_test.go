package main

import (
	"bufio"
	"strings"
	"testing"
)

func TestReadResponse(t *testing.T) {
	cases := []struct {
		name      string
		in        string
		status    int
		closeConn bool
		rest      string // what must be left unread: the next response
	}{
		{"content-length", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Type: text/plain\r\n\r\nhelloNEXT", 200, false, "NEXT"},
		{"header case", "HTTP/1.1 503 Service Unavailable\r\ncontent-LENGTH:  2 \r\n\r\nokNEXT", 503, false, "NEXT"},
		{"chunked with trailers", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;ext=1\r\nabc\r\nA\r\n0123456789\r\n0\r\nX-Sum: 1\r\n\r\nNEXT", 200, false, "NEXT"},
		{"connection close", "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n", 200, true, ""},
		{"http/1.0", "HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\nx", 200, true, ""},
		{"http/1.0 keep-alive", "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\nxNEXT", 200, false, "NEXT"},
		{"no body on 204", "HTTP/1.1 204 No Content\r\n\r\nNEXT", 204, false, "NEXT"},
		{"bare LF", "HTTP/1.1 200 OK\nContent-Length: 2\n\nokNEXT", 200, false, "NEXT"},
		{"interim responses skipped", "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokNEXT", 200, false, "NEXT"},
		{"connection list", "HTTP/1.1 200 OK\r\nConnection: keep-alive, close\r\nContent-Length: 0\r\n\r\n", 200, true, ""},
		{"transfer-encoding list", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n2\r\nzz\r\n0\r\n\r\nNEXT", 200, false, "NEXT"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			br := bufio.NewReader(strings.NewReader(tc.in))
			status, closeConn, err := readResponse(br)
			if err != nil {
				t.Fatalf("readResponse: %v", err)
			}
			if status != tc.status || closeConn != tc.closeConn {
				t.Fatalf("got status %d close %v, want %d %v", status, closeConn, tc.status, tc.closeConn)
			}
			rest := make([]byte, 16)
			n, _ := br.Read(rest)
			if string(rest[:n]) != tc.rest {
				t.Fatalf("left %q unread, want %q", rest[:n], tc.rest)
			}
		})
	}
}

func TestReadResponseRejects(t *testing.T) {
	for name, in := range map[string]string{
		"not http":             "SSH-2.0-OpenSSH\r\n\r\n",
		"bad code":             "HTTP/1.1 2x0 OK\r\nContent-Length: 0\r\n\r\n",
		"bad length":           "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
		"no framing":           "HTTP/1.1 200 OK\r\n\r\nbody",
		"header without colon": "HTTP/1.1 200 OK\r\nbogus\r\n\r\n",
		"bad chunk size":       "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
		"chunk without CRLF":   "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcX\r\n0\r\n\r\n",
		"short body":           "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc",
		"truncated head":       "HTTP/1.1 200 OK\r\nContent-Len",
	} {
		if _, _, err := readResponse(bufio.NewReader(strings.NewReader(in))); err == nil {
			t.Errorf("%s: accepted %q", name, in)
		}
	}
}

// The generator must not allocate per response: a garbage collection in it
// would delay its workers and count as server latency.
func TestReadResponseAllocatesNothing(t *testing.T) {
	resp := "HTTP/1.1 200 OK\r\nContent-Length: 1024\r\nDate: Sun, 22 Nov 2026 00:00:00 GMT\r\n\r\n" + strings.Repeat("x", 1024)
	chunked := "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n400\r\n" + strings.Repeat("x", 1024) + "\r\n0\r\n\r\n"
	r := strings.NewReader("")
	br := bufio.NewReaderSize(r, 16<<10)
	for _, in := range []string{resp, chunked} {
		allocs := testing.AllocsPerRun(100, func() {
			r.Reset(in)
			br.Reset(r)
			if _, _, err := readResponse(br); err != nil {
				t.Fatal(err)
			}
		})
		if allocs != 0 {
			t.Errorf("%.1f allocations per response, want 0", allocs)
		}
	}
}
