// Command testapp is the app end-to-end tests put behind sidecars. It
// answers as --name and offers endpoints that exercise the data path:
//
//	/            "instance=<name>"
//	/proto       the protocol the request arrived with (HTTP/1.1, HTTP/2.0)
//	/echo        the request body back
//	/headers     the request headers as JSON
//	/env         HTTP_PROXY, WEFT_SERVICE and WEFT_INSTANCE as JSON
//	/bytes?n=N   N bytes of a repeating pattern (streamed, no length when chunked=1)
//	/count       reads the body and answers with its length
//	/stream      a chunk, then waits for /release, then another chunk
//	/slow?d=1s   answers after d
//	/status?code=N
//	/call?url=U  GETs U through HTTP_PROXY and answers with what came back
//	/trailers    a body with a trailer X-Checksum
//	/upgrade     switches to protocol "echo": echoes bytes until EOF
//	/exit?code=N exits the process with code N
//	/health      200, or 503 after /sick until /well
//	/fault?...   changes how every other request is answered, until the
//	             next /fault: delay=D (answer after D), status=N (answer N
//	             at once), hang=1 (never answer), none of them: normal;
//	             share=F (0 to 1) applies it to that share of requests,
//	             drawn at random. /fault, /health, /sick and /well are
//	             never faulted.
//
// With --grpc it serves gRPC's interop TestService instead. With --hang it
// reads every request and never answers, until the caller goes away (a
// hung app; with --h2c too, to HTTP/1.1 and HTTP/2 callers alike).
package main

import (
	"bufio"
	"crypto/tls"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/h2c"
	"google.golang.org/grpc"
	"google.golang.org/grpc/interop"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"

	"github.com/weftmesh/weft/internal/meshtest/testcert"
)

func main() {
	name := flag.String("name", os.Getenv("WEFT_INSTANCE"), "instance name to answer with")
	listen := flag.String("listen", "127.0.0.1:0", "address to serve on")
	tcpEcho := flag.Bool("tcp-echo", false, "serve raw TCP echo instead of HTTP: bytes come back until the client half-closes, then the server closes")
	tcpGreet := flag.Bool("tcp-greet", false, "with --tcp-echo, speak first: send \"220 NAME ready\\r\\n\" on accept, as SMTP does")
	h2cMode := flag.Bool("h2c", false, "also accept HTTP/2 cleartext (prior knowledge)")
	tlsMode := flag.Bool("tls", false, "serve HTTPS with a self-signed certificate for localhost, HTTP/2 and HTTP/1.1 by ALPN")
	grpcTest := flag.Bool("grpc", false, "serve the gRPC interop TestService (HTTP/2 cleartext) instead of HTTP/1.1")
	hang := flag.Bool("hang", false, "read every request and never answer (until the caller goes away)")
	flag.Parse()

	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		fmt.Fprintln(os.Stderr, "testapp:", err)
		os.Exit(1)
	}
	fmt.Printf("testapp listening on %s\n", ln.Addr())
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, os.Interrupt)
	go func() {
		<-sig
		fmt.Println("testapp got SIGTERM, exiting")
		os.Exit(0)
	}()
	if *grpcTest {
		srv := grpc.NewServer()
		testgrpc.RegisterTestServiceServer(srv, interop.NewTestServer())
		srv.Serve(ln)
		return
	}
	if *tcpEcho {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				if *tcpGreet {
					fmt.Fprintf(c, "220 %s ready\r\n", *name)
				}
				io.Copy(c, c)
			}()
		}
	}
	release := make(chan struct{}, 16)
	var sick atomic.Bool
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintf(w, "instance=%s", *name) })
	mux.HandleFunc("/proto", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, r.Proto) })
	mux.HandleFunc("/echo", func(w http.ResponseWriter, r *http.Request) { io.Copy(w, r.Body) })
	mux.HandleFunc("/headers", func(w http.ResponseWriter, r *http.Request) {
		h := r.Header.Clone()
		h.Set("Host", r.Host)
		json.NewEncoder(w).Encode(h)
	})
	mux.HandleFunc("/env", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(map[string]string{"HTTP_PROXY": os.Getenv("HTTP_PROXY"),
			"WEFT_SERVICE": os.Getenv("WEFT_SERVICE"), "WEFT_INSTANCE": os.Getenv("WEFT_INSTANCE")})
	})
	mux.HandleFunc("/bytes", func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.ParseInt(r.URL.Query().Get("n"), 10, 64)
		if r.URL.Query().Get("chunked") == "" {
			w.Header().Set("Content-Length", strconv.FormatInt(n, 10))
		}
		buf := make([]byte, 64<<10)
		for i := range buf {
			buf[i] = byte('a' + i%26)
		}
		for n > 0 {
			k := min(n, int64(len(buf)))
			if _, err := w.Write(buf[:k]); err != nil {
				return
			}
			n -= k
		}
	})
	mux.HandleFunc("/count", func(w http.ResponseWriter, r *http.Request) {
		n, err := io.Copy(io.Discard, r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		fmt.Fprintf(w, "%d", n)
	})
	mux.HandleFunc("/stream", func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("first;"))
		w.(http.Flusher).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
			return
		}
		w.Write([]byte("second"))
	})
	mux.HandleFunc("/release", func(w http.ResponseWriter, r *http.Request) { release <- struct{}{} })
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		d, _ := time.ParseDuration(r.URL.Query().Get("d"))
		select {
		case <-time.After(d):
			fmt.Fprintf(w, "slow instance=%s", *name)
		case <-r.Context().Done():
		}
	})
	mux.HandleFunc("/status", func(w http.ResponseWriter, r *http.Request) {
		code, _ := strconv.Atoi(r.URL.Query().Get("code"))
		w.WriteHeader(code)
	})
	mux.HandleFunc("/call", func(w http.ResponseWriter, r *http.Request) {
		resp, err := http.Get(r.URL.Query().Get("url")) // honours HTTP_PROXY
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		w.WriteHeader(resp.StatusCode)
		io.Copy(w, resp.Body)
	})
	mux.HandleFunc("/trailers", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Trailer", "X-Checksum")
		w.Write([]byte("body"))
		w.Header().Set("X-Checksum", "abc123")
	})
	mux.HandleFunc("/upgrade", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") != "echo" {
			http.Error(w, "want Upgrade: echo", http.StatusBadRequest)
			return
		}
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
		brw.Flush()
		rd := bufio.NewReader(io.MultiReader(brw.Reader, conn))
		io.Copy(conn, rd)
	})
	mux.HandleFunc("/exit", func(w http.ResponseWriter, r *http.Request) {
		code, _ := strconv.Atoi(r.URL.Query().Get("code"))
		w.Write([]byte("bye"))
		w.(http.Flusher).Flush()
		go func() { time.Sleep(50 * time.Millisecond); os.Exit(code) }()
	})
	mux.HandleFunc("/health", func(w http.ResponseWriter, r *http.Request) {
		if sick.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	})
	mux.HandleFunc("/sick", func(w http.ResponseWriter, r *http.Request) { sick.Store(true) })
	mux.HandleFunc("/well", func(w http.ResponseWriter, r *http.Request) { sick.Store(false) })
	var h http.Handler = faulty(mux)
	if *hang {
		h = http.HandlerFunc(hangUp)
	}
	if *h2cMode {
		h = h2c.NewHandler(h, &http2.Server{})
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	if *tlsMode {
		cert, err := testcert.New()
		if err != nil {
			fmt.Fprintln(os.Stderr, "testapp:", err)
			os.Exit(1)
		}
		srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert.TLS}, NextProtos: []string{"h2", "http/1.1"}}
		srv.ServeTLS(ln, "", "")
		return
	}
	srv.Serve(ln)
}

// hangUp reads the request and never answers, until the caller goes away.
func hangUp(_ http.ResponseWriter, r *http.Request) {
	io.Copy(io.Discard, r.Body)
	<-r.Context().Done()
}

// fault is how the app answers while a /fault is in force.
type fault struct {
	delay  time.Duration
	status int
	hang   bool
	share  float64 // of requests the fault applies to (the rest are answered as usual)
}

// faulty serves /fault, which sets the fault every other request (but the
// health endpoints) gets, so a test can make a running instance slow,
// failing or hung and well again.
func faulty(next http.Handler) http.Handler {
	var cur atomic.Pointer[fault]
	cur.Store(&fault{})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/fault":
			q := r.URL.Query()
			var f fault
			var err error
			if v := q.Get("delay"); v != "" {
				if f.delay, err = time.ParseDuration(v); err != nil {
					http.Error(w, "delay: "+err.Error(), http.StatusBadRequest)
					return
				}
			}
			if v := q.Get("status"); v != "" {
				if f.status, err = strconv.Atoi(v); err != nil || f.status < 200 || f.status > 599 {
					http.Error(w, "status: must be a number from 200 to 599", http.StatusBadRequest)
					return
				}
			}
			f.hang = q.Get("hang") == "1"
			f.share = 1
			if v := q.Get("share"); v != "" {
				if f.share, err = strconv.ParseFloat(v, 64); err != nil || f.share < 0 || f.share > 1 {
					http.Error(w, "share: must be a number from 0 to 1", http.StatusBadRequest)
					return
				}
			}
			cur.Store(&f)
			fmt.Fprintf(w, "fault delay=%s status=%d hang=%t share=%g", f.delay, f.status, f.hang, f.share)
			return
		case "/health", "/sick", "/well":
			next.ServeHTTP(w, r)
			return
		}
		f := cur.Load()
		if f.share < 1 && rand.Float64() >= f.share {
			next.ServeHTTP(w, r)
			return
		}
		if f.hang {
			hangUp(w, r)
			return
		}
		if f.delay > 0 {
			select {
			case <-time.After(f.delay):
			case <-r.Context().Done():
				return
			}
		}
		if f.status != 0 {
			io.Copy(io.Discard, r.Body)
			w.WriteHeader(f.status)
			fmt.Fprintf(w, "fault status=%d\n", f.status)
			return
		}
		next.ServeHTTP(w, r)
	})
}
