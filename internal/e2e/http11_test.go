package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/meshtest"
	"github.com/weftmesh/weft/internal/proxy"
)

// pair is one consumer sidecar and one provider sidecar in front of an app.
func pair(t *testing.T) (*meshtest.Mesh, *meshtest.Control, *meshtest.Sidecar, *meshtest.Sidecar, *meshtest.App) {
	m := meshtest.New(t)
	cp := m.Control()
	app := m.App("echo-1")
	provider := m.Sidecar(cp, "--service", "echo", "--id", "echo-1", "--app-port", app.Port)
	consumer := m.Sidecar(cp, "--service", "client")
	waitInstances(t, consumer, "echo", 1)
	return m, cp, consumer, provider, app
}

func TestHTTP11ThroughTwoSidecars(t *testing.T) {
	t.Parallel()
	_, _, consumer, provider, app := pair(t)

	t.Run("keep-alive: many requests on one client connection", func(t *testing.T) {
		conn, err := net.Dial("tcp", consumer.Outbound)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		br := bufio.NewReader(conn)
		for i := 0; i < 5; i++ {
			fmt.Fprintf(conn, "GET http://echo/ HTTP/1.1\r\nHost: echo\r\n\r\n")
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatalf("request %d on the same connection: %v", i, err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if string(b) != "instance=echo-1" {
				t.Fatalf("request %d: got %q, want instance=echo-1", i, b)
			}
		}
	})

	t.Run("hop-by-hop headers removed, end-to-end kept, X-Forwarded-For added", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodGet, "http://echo/headers", nil)
		req.Header.Set("Connection", "keep-alive, X-Secret-Hop")
		req.Header.Set("X-Secret-Hop", "must not pass")
		req.Header.Set("Keep-Alive", "timeout=5")
		req.Header.Set("Proxy-Authorization", "Basic Zm9vOmJhcg==")
		req.Header.Set("X-End-To-End", "kept")
		resp, body, err := meshtest.ViaRequest(consumer.Outbound, req)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("got %v %v", resp, err)
		}
		var h http.Header
		if err := json.Unmarshal([]byte(body), &h); err != nil {
			t.Fatal(err)
		}
		for _, k := range []string{"X-Secret-Hop", "Keep-Alive", "Proxy-Authorization"} {
			if h.Get(k) != "" {
				t.Errorf("header %s reached the app: %q", k, h.Get(k))
			}
		}
		if h.Get("X-End-To-End") != "kept" {
			t.Errorf("X-End-To-End: got %q, want kept", h.Get("X-End-To-End"))
		}
		if xff := h.Get("X-Forwarded-For"); xff != "127.0.0.1, 127.0.0.1" {
			t.Errorf("X-Forwarded-For: got %q, want one address per hop (127.0.0.1, 127.0.0.1)", xff)
		}
		if h.Get("Host") != "echo" {
			t.Errorf("Host at the app: got %q, want echo", h.Get("Host"))
		}
	})

	t.Run("Expect: 100-continue", func(t *testing.T) {
		conn, err := net.Dial("tcp", consumer.Outbound)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		fmt.Fprintf(conn, "POST http://echo/count HTTP/1.1\r\nHost: echo\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
		br := bufio.NewReader(conn)
		line, err := br.ReadString('\n')
		if err != nil || !strings.HasPrefix(line, "HTTP/1.1 100") {
			t.Fatalf("before sending the body: got %q %v, want HTTP/1.1 100 Continue", line, err)
		}
		for {
			l, err := br.ReadString('\n')
			if err != nil {
				t.Fatalf("reading the 100 response: %v", err)
			}
			if l == "\r\n" {
				break
			}
		}
		conn.Write([]byte("hello"))
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 || string(b) != "5" {
			t.Errorf("got %d %q, want 200 \"5\"", resp.StatusCode, b)
		}
	})

	t.Run("chunked response streams before it ends", func(t *testing.T) {
		c := meshtest.ProxyClient(consumer.Outbound)
		resp, err := c.Get("http://echo/stream")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		first := make([]byte, len("first;"))
		if _, err := io.ReadFull(resp.Body, first); err != nil || string(first) != "first;" {
			t.Fatalf("first chunk: got %q %v", first, err)
		}
		// The app holds the rest until released: the first chunk came through alone.
		if code, _ := meshtest.Get("http://" + app.Addr + "/release"); code != 200 {
			t.Fatalf("release: %d", code)
		}
		rest, _ := io.ReadAll(resp.Body)
		if string(rest) != "second" {
			t.Errorf("rest: got %q, want second", rest)
		}
	})

	t.Run("trailers pass through", func(t *testing.T) {
		resp, err := meshtest.ProxyClient(consumer.Outbound).Get("http://echo/trailers")
		if err != nil {
			t.Fatal(err)
		}
		io.ReadAll(resp.Body)
		resp.Body.Close()
		if got := resp.Trailer.Get("X-Checksum"); got != "abc123" {
			t.Errorf("trailer X-Checksum: got %q, want abc123", got)
		}
	})

	t.Run("upgrade switches protocols end to end", func(t *testing.T) {
		conn, err := net.Dial("tcp", consumer.Outbound)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		fmt.Fprintf(conn, "GET http://echo/upgrade HTTP/1.1\r\nHost: echo\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
		br := bufio.NewReader(conn)
		resp, err := http.ReadResponse(br, nil)
		if err != nil || resp.StatusCode != 101 {
			t.Fatalf("got %v %v, want 101", resp, err)
		}
		conn.Write([]byte("ping over the upgraded connection\n"))
		line, err := br.ReadString('\n')
		if err != nil || line != "ping over the upgraded connection\n" {
			t.Errorf("echo after upgrade: got %q %v", line, err)
		}
	})

	t.Run("CONNECT tunnels to a host outside the mesh", func(t *testing.T) {
		conn, err := net.Dial("tcp", consumer.Outbound)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		fmt.Fprintf(conn, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", app.Addr, app.Addr)
		br := bufio.NewReader(conn)
		resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodConnect})
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("CONNECT: got %v %v", resp, err)
		}
		// Speak HTTP to the app through the raw tunnel.
		fmt.Fprintf(conn, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
		r2, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(r2.Body)
		if string(b) != "instance=echo-1" {
			t.Errorf("through the tunnel: got %q", b)
		}
	})

	t.Run("egress: a host outside the mesh is passed through", func(t *testing.T) {
		resp, body, err := meshtest.Via(consumer.Outbound, app.Addr, "/")
		if err != nil || resp.StatusCode != 200 || body != "instance=echo-1" {
			t.Errorf("egress to %s: got %v %q %v", app.Addr, resp, body, err)
		}
	})

	t.Run("malformed request: 400, connection closed, others unaffected", func(t *testing.T) {
		conn, err := net.Dial("tcp", consumer.Outbound)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		fmt.Fprintf(conn, "GET / HTTP/1.1\r\nHost: echo\r\nBad Header Without Colon\r\n\r\n")
		all, _ := io.ReadAll(conn) // returns only once the sidecar closes
		if !strings.HasPrefix(string(all), "HTTP/1.1 400") {
			t.Errorf("got %q, want a 400 and a closed connection", all)
		}
		if resp, body, err := meshtest.Via(consumer.Outbound, "echo", "/"); err != nil || body != "instance=echo-1" {
			t.Errorf("next request: got %v %q %v", resp, body, err)
		}
	})

	t.Run("provider only: a plain client calls the inbound port", func(t *testing.T) {
		code, body := meshtest.Get("http://" + provider.Inbound + "/")
		if code != 200 || body != "instance=echo-1" {
			t.Errorf("got %d %q, want 200 instance=echo-1", code, body)
		}
	})
}

// vmHWM is a process's peak resident set in bytes.
func vmHWM(t *testing.T, pid int) int64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmHWM:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	t.Fatal("no VmHWM")
	return 0
}

func TestLargeBodiesStreamWithoutBuffering(t *testing.T) {
	t.Parallel()
	_, _, consumer, provider, _ := pair(t)
	const size = 200 << 20
	c := meshtest.ProxyClient(consumer.Outbound)

	// Upload 200 MB of a body whose length is unknown (chunked).
	pr, pw := io.Pipe()
	go func() {
		buf := make([]byte, 1<<20)
		for i := 0; i < size/len(buf); i++ {
			if _, err := pw.Write(buf); err != nil {
				return
			}
		}
		pw.Close()
	}()
	resp, err := c.Post("http://echo/count", "application/octet-stream", pr)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != strconv.Itoa(size) {
		t.Fatalf("upload: app counted %q bytes, want %d", b, size)
	}

	// Download 200 MB, with a length and chunked.
	for _, chunked := range []string{"", "&chunked=1"} {
		resp, err = c.Get("http://echo/bytes?n=" + strconv.Itoa(size) + chunked)
		if err != nil {
			t.Fatal(err)
		}
		n, err := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err != nil || n != size {
			t.Fatalf("download%s: got %d bytes, %v; want %d", chunked, n, err, size)
		}
	}
	// Neither sidecar held a body in memory: their peak RSS stays far below 200 MB.
	for _, s := range []*meshtest.Sidecar{consumer, provider} {
		if hwm := vmHWM(t, s.Cmd.Process.Pid); hwm > 120<<20 {
			t.Errorf("%s peak RSS %d MB after 200 MB bodies, want well under 200 MB", s.Name, hwm>>20)
		}
	}
}

func TestH2CPriorKnowledgeIsAccepted(t *testing.T) {
	t.Parallel()
	_, _, consumer, _, _ := pair(t)
	tr := proxy.NewH2CTransport() // an h2c client, as the sidecars use
	defer tr.CloseIdleConnections()
	req, _ := http.NewRequest(http.MethodGet, "http://"+consumer.Outbound+"/", nil)
	req.Host = "echo"
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.ProtoMajor != 2 || resp.StatusCode != 200 || string(b) != "instance=echo-1" {
		t.Errorf("h2c through the mesh: got %s %d %q, want HTTP/2 200 instance=echo-1", resp.Proto, resp.StatusCode, b)
	}
}
