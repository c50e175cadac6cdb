// Command backend is the benchmark's upstream application: a minimal
// HTTP/1.1 server (standard library only) that answers every request with a
// fixed 1 KiB body and keeps connections alive.
//
//	go build -o backend ./bench/backend
//	./backend -listen 127.0.0.1:18080
package main

import (
	"bytes"
	"flag"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:18080", "address to listen on (loopback only)")
	size := flag.Int("size", 1024, "response body size in bytes")
	flag.Parse()

	body := bytes.Repeat([]byte("x"), *size)
	if *size > 0 {
		body[len(body)-1] = '\n'
	}
	clen := strconv.Itoa(len(body))

	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hdr := w.Header()
		hdr["Content-Type"] = []string{"text/plain"}
		hdr["Content-Length"] = []string{clen}
		w.WriteHeader(http.StatusOK)
		if r.Method != http.MethodHead {
			_, _ = w.Write(body)
		}
	})

	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatalf("backend: listen: %v", err)
	}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       5 * time.Minute,
		// Keep-alive is on by default; be explicit.
	}
	srv.SetKeepAlivesEnabled(true)
	log.Printf("backend: listening on %s, body %d bytes", ln.Addr(), len(body))

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		<-sig
		_ = srv.Close()
	}()
	if err := srv.Serve(ln); err != nil && err != http.ErrServerClosed {
		log.Fatalf("backend: %v", err)
	}
}
