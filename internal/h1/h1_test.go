package h1

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
)

func reader(s string) *bufio.Reader { return bufio.NewReaderSize(strings.NewReader(s), 4096) }

func TestReadRequestHead(t *testing.T) {
	var h Head
	r := reader("\r\nPOST http://catalog:8080/items?x=1 HTTP/1.1\r\nHost: catalog\r\nContent-Length: 5\r\n" +
		"Connection: keep-alive, X-Hop\r\nX-Hop: 1\r\nTE: trailers\r\nExpect: 100-continue\r\n\r\nhello")
	if err := ReadRequestHead(r, &h); err != nil {
		t.Fatal(err)
	}
	checks := []struct{ name, got, want string }{
		{"method", string(h.Method()), "POST"},
		{"target", string(h.Target()), "http://catalog:8080/items?x=1"},
		{"proto", string(h.Proto()), "HTTP/1.1"},
		{"host", string(h.Host()), "catalog"},
		{"X-Hop", string(h.Get("x-hop")), "1"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s: got %q, want %q", c.name, c.got, c.want)
		}
	}
	if h.ContentLength != 5 || h.Chunked || h.Close || !h.ExpectContinue || !h.TrailersOK {
		t.Errorf("framing: got CL %d chunked %v close %v expect %v te %v", h.ContentLength, h.Chunked, h.Close, h.ExpectContinue, h.TrailersOK)
	}
	if !h.NamedByConnection([]byte("x-hop")) || h.NamedByConnection([]byte("Host")) {
		t.Errorf("Connection tokens: got x-hop=%v host=%v, want true false", h.NamedByConnection([]byte("x-hop")), h.NamedByConnection([]byte("Host")))
	}
	body, _ := io.ReadAll(r)
	if string(body) != "hello" {
		t.Errorf("body left in the reader: got %q, want hello", body)
	}
}

func TestReadRequestHeadRejects(t *testing.T) {
	cases := []struct{ name, in string }{
		{"CL and TE", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"},
		{"conflicting CL", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n"},
		{"CL not a number", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3x\r\n\r\n"},
		{"TE not chunked last", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n"},
		{"line folding", "GET / HTTP/1.1\r\nHost: a\r\nX: 1\r\n  2\r\n\r\n"},
		{"space before colon", "GET / HTTP/1.1\r\nHost: a\r\nX : 1\r\n\r\n"},
		{"no colon", "GET / HTTP/1.1\r\nHost: a\r\nBad Header\r\n\r\n"},
		{"control char", "GET / HTTP/1.1\r\nHost: a\r\nX: a\x01b\r\n\r\n"},
		{"no Host in 1.1", "GET / HTTP/1.1\r\nX: 1\r\n\r\n"},
		{"two Hosts", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"},
		{"HTTP/2 line", "GET / HTTP/2.0\r\nHost: a\r\n\r\n"},
		{"no target", "GET\r\n\r\n"},
		{"space in target", "GET /a b HTTP/1.1\r\nHost: a\r\n\r\n"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var h Head
			err := ReadRequestHead(reader(c.in), &h)
			if !errors.Is(err, ErrMalformed) {
				t.Errorf("got %v, want ErrMalformed", err)
			}
		})
	}
}

func TestReadRequestHeadLimitsAndEOF(t *testing.T) {
	var h Head
	if err := ReadRequestHead(reader(""), &h); err != io.EOF {
		t.Errorf("empty connection: got %v, want io.EOF", err)
	}
	if err := ReadRequestHead(reader("GET / HTTP/1.1\r\nHost: a\r\n"), &h); err != io.ErrUnexpectedEOF {
		t.Errorf("cut head: got %v, want io.ErrUnexpectedEOF", err)
	}
	big := "GET / HTTP/1.1\r\nHost: a\r\n" + strings.Repeat("X-Long: "+strings.Repeat("v", 1000)+"\r\n", 70) + "\r\n"
	if err := ReadRequestHead(reader(big), &h); !errors.Is(err, ErrHeadTooLarge) {
		t.Errorf("70 KB head: got %v, want ErrHeadTooLarge", err)
	}
	var h10 Head
	if err := ReadRequestHead(reader("GET / HTTP/1.0\r\n\r\n"), &h10); err != nil || !h10.Close || h10.Minor != 0 {
		t.Errorf("HTTP/1.0: got err %v close %v minor %d, want nil true 0", err, h10.Close, h10.Minor)
	}
}

func TestReadResponseHead(t *testing.T) {
	cases := []struct {
		in      string
		status  int
		reason  string
		chunked bool
		cl      int64
		close   bool
	}{
		{"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n", 200, "OK", false, 3, false},
		{"HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n", 404, "Not Found", true, -1, false},
		{"HTTP/1.1 204\r\n\r\n", 204, "", false, -1, false},
		{"HTTP/1.0 200 OK\r\n\r\n", 200, "OK", false, -1, true},
		{"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n", 200, "OK", false, -1, true},
	}
	for _, c := range cases {
		var h Head
		if err := ReadResponseHead(reader(c.in), &h); err != nil {
			t.Errorf("%q: %v", c.in, err)
			continue
		}
		if h.Status != c.status || string(h.Reason()) != c.reason || h.Chunked != c.chunked || h.ContentLength != c.cl || h.Close != c.close {
			t.Errorf("%q: got %d %q chunked %v CL %d close %v", c.in, h.Status, h.Reason(), h.Chunked, h.ContentLength, h.Close)
		}
	}
	for _, bad := range []string{"HTTP/1.1 2000 OK\r\n\r\n", "HTTP/1.1 abc OK\r\n\r\n", "ICY 200 OK\r\n\r\n"} {
		var h Head
		if err := ReadResponseHead(reader(bad), &h); !errors.Is(err, ErrMalformed) {
			t.Errorf("%q: got %v, want ErrMalformed", bad, err)
		}
	}
}

func TestCopyChunkedIsVerbatimAndChecked(t *testing.T) {
	in := "5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Checksum: abc\r\n\r\nNEXT"
	src := reader(in)
	var out bytes.Buffer
	dst := bufio.NewWriter(&out)
	if err := CopyChunked(dst, src); err != nil {
		t.Fatal(err)
	}
	dst.Flush()
	if want := strings.TrimSuffix(in, "NEXT"); out.String() != want {
		t.Errorf("got %q, want %q", out.String(), want)
	}
	if rest, _ := io.ReadAll(src); string(rest) != "NEXT" {
		t.Errorf("left after the body: got %q, want NEXT", rest)
	}

	for _, bad := range []string{"zz\r\nhello\r\n0\r\n\r\n", "3\r\nhello\r\n0\r\n\r\n", "5\r\nhel"} {
		out.Reset()
		if err := CopyChunked(bufio.NewWriter(&out), reader(bad)); err == nil {
			t.Errorf("%q: got no error", bad)
		}
	}

	out.Reset()
	dst = bufio.NewWriter(&out)
	if err := DechunkTo(dst, reader(in)); err != nil {
		t.Fatal(err)
	}
	dst.Flush()
	if out.String() != "hello world" {
		t.Errorf("dechunked: got %q, want %q", out.String(), "hello world")
	}
}

// notifyWriter reports every write that reaches it.
type notifyWriter chan string

func (n notifyWriter) Write(p []byte) (int, error) { n <- string(p); return len(p), nil }

func TestCopyFixedFlushesBeforeBlocking(t *testing.T) {
	pr, pw := io.Pipe()
	src := bufio.NewReaderSize(pr, 4096)
	writes := make(notifyWriter, 4)
	dst := bufio.NewWriterSize(writes, 4096)
	done := make(chan error, 1)
	go func() { done <- CopyFixed(dst, src, 10) }()
	pw.Write([]byte("first"))
	// Before it blocks waiting for the rest, the copier sends what it has.
	if got := <-writes; got != "first" {
		t.Fatalf("first write: got %q, want first", got)
	}
	pw.Write([]byte("-last"))
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	dst.Flush()
	if got := <-writes; got != "-last" {
		t.Errorf("second write: got %q, want -last", got)
	}
}

func TestCopyFixedShortSource(t *testing.T) {
	var out bytes.Buffer
	if err := CopyFixed(bufio.NewWriter(&out), reader("abc"), 5); err != io.ErrUnexpectedEOF {
		t.Errorf("got %v, want io.ErrUnexpectedEOF", err)
	}
}

func TestHeadReuseAllocatesNothing(t *testing.T) {
	msg := "GET /x HTTP/1.1\r\nHost: catalog\r\nUser-Agent: bench\r\nAccept: */*\r\nX-Forwarded-For: 10.0.0.1\r\n\r\n"
	var h Head
	sr := strings.NewReader(msg)
	br := bufio.NewReaderSize(sr, 4096)
	ReadRequestHead(br, &h) // warm the buffers
	allocs := testing.AllocsPerRun(100, func() {
		sr.Reset(msg)
		br.Reset(sr)
		if err := ReadRequestHead(br, &h); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("allocations per request head: got %v, want 0", allocs)
	}
}

func BenchmarkReadRequestHead(b *testing.B) {
	msg := "GET /x HTTP/1.1\r\nHost: catalog\r\nUser-Agent: bench\r\nAccept: */*\r\nX-Forwarded-For: 10.0.0.1\r\n\r\n"
	var h Head
	sr := strings.NewReader(msg)
	br := bufio.NewReaderSize(sr, 4096)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		sr.Reset(msg)
		br.Reset(sr)
		if err := ReadRequestHead(br, &h); err != nil {
			b.Fatal(err)
		}
	}
}
