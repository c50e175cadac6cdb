// Command tcpbench measures TCP services through the mesh: a TCP echo app
// reached directly and through a consumer sidecar's upstream listener
// (declared /tcp) and the provider's sidecar (--app-protocol tcp). It
// reports bulk throughput on one connection, small round trips on
// concurrent connections, and new connections per second.
//
//	go build -o /tmp/weft ./cmd/weft && go build -o /tmp/testapp ./internal/meshtest/testapp
//	go run ./bench/tcpbench -weft /tmp/weft -app /tmp/testapp -out bench/results/tcp-latest.md
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/weftmesh/weft/bench/benchkit"
)

func main() {
	weft := flag.String("weft", "", "weft binary (required)")
	app := flag.String("app", "", "testapp binary (required)")
	dur := flag.Duration("duration", 5*time.Second, "length of each timed measurement")
	conc := flag.Int("concurrency", 32, "concurrent connections for round trips")
	bulk := flag.Int64("bulk", 1<<30, "bytes streamed each way for the bulk measurement")
	outFile := flag.String("out", "", "also write the report as markdown here")
	flag.Parse()
	if *weft == "" || *app == "" {
		fmt.Fprintln(os.Stderr, "tcpbench: -weft and -app are required")
		os.Exit(2)
	}
	var report strings.Builder
	w := io.MultiWriter(os.Stdout, &report)
	if err := run(w, *weft, *app, *dur, *conc, *bulk); err != nil {
		fmt.Fprintln(os.Stderr, "tcpbench:", err)
		os.Exit(1)
	}
	if *outFile != "" {
		md := fmt.Sprintf("# TCP through the mesh\n\nRun on %s, %d CPUs, %s; everything on loopback, unpinned.\n\nCommand:\n\n```\ngo run ./bench/tcpbench %s\n```\n\n```\n%s```\n",
			time.Now().UTC().Format("2006-01-02 15:04 MST"), runtime.NumCPU(), runtime.Version(), strings.Join(os.Args[1:], " "), report.String())
		if err := os.WriteFile(*outFile, []byte(md), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "tcpbench:", err)
			os.Exit(1)
		}
	}
}

func run(w io.Writer, weft, app string, dur time.Duration, conc int, bulk int64) error {
	var procs benchkit.Procs
	defer procs.Stop()
	dir, err := os.MkdirTemp("", "tcpbench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	appAddr, err := procs.Start(app, `testapp listening on (\S+)`, "--tcp-echo", "--listen", "127.0.0.1:0")
	if err != nil {
		return err
	}
	cp, err := procs.Start(weft, `msg="control plane serving".* addr=(\S+)`, "control", "--listen", "127.0.0.1:0", "--data-dir", dir)
	if err != nil {
		return err
	}
	_, port, _ := net.SplitHostPort(appAddr)
	if _, err := procs.Start(weft, `msg="sidecar started"`, "sidecar", "--service", "echo", "--app-port", port,
		"--app-protocol", "tcp", "--control", cp, "--outbound", "127.0.0.1:0", "--inbound", "127.0.0.1:0", "--admin", "127.0.0.1:0"); err != nil {
		return err
	}
	up, err := procs.Start(weft, `msg="upstream listener".* address=(\S+)`, "sidecar", "--service", "client",
		"--upstream", "echo=0/tcp", "--control", cp, "--outbound", "127.0.0.1:0", "--admin", "127.0.0.1:0")
	if err != nil {
		return err
	}
	if err := ready(up); err != nil {
		return err
	}
	fmt.Fprintf(w, "bulk: %d MiB each way on one connection; round trips: 64 B on %d connections for %s; connects: one at a time for %s\n\n",
		bulk>>20, conc, dur, dur)
	fmt.Fprintf(w, "%-8s %-22s %14s %10s %10s %10s\n", "path", "measure", "value", "p50", "p99", "max")
	for _, p := range []struct{ name, addr string }{{"direct", appAddr}, {"mesh", up}} {
		mibs, err := bulkEcho(p.addr, bulk)
		if err != nil {
			return fmt.Errorf("%s bulk: %w", p.name, err)
		}
		fmt.Fprintf(w, "%-8s %-22s %9.0f MiB/s\n", p.name, "bulk echo", mibs)

		conns := make([]net.Conn, conc)
		for i := range conns {
			if conns[i], err = net.Dial("tcp", p.addr); err != nil {
				return err
			}
		}
		msg, back := make([]byte, 64), make([]byte, conc*64)
		rate, lat := benchkit.Load(conc, dur, func(_ context.Context, i int) error {
			return roundTrip(conns[i], msg, back[i*64:(i+1)*64])
		})
		for _, c := range conns {
			c.Close()
		}
		fmt.Fprintf(w, "%-8s %-22s %11.0f /s %10s %10s %10s\n", p.name, "round trips 64 B", rate, benchkit.Pct(lat, 50), benchkit.Pct(lat, 99), benchkit.Pct(lat, 100))

		crate, clat := benchkit.Load(1, dur, func(context.Context, int) error {
			c, err := net.Dial("tcp", p.addr)
			if err != nil {
				return err
			}
			defer c.Close()
			return roundTrip(c, msg, back[:64])
		})
		fmt.Fprintf(w, "%-8s %-22s %11.0f /s %10s %10s %10s\n", p.name, "connect + round trip", crate, benchkit.Pct(clat, 50), benchkit.Pct(clat, 99), benchkit.Pct(clat, 100))
	}
	return nil
}

func roundTrip(c net.Conn, msg, back []byte) error {
	if _, err := c.Write(msg); err != nil {
		return err
	}
	_, err := io.ReadFull(c, back)
	return err
}

// bulkEcho streams n bytes to the echo app while reading them back, and
// returns MiB/s each way.
func bulkEcho(addr string, n int64) (float64, error) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	start := time.Now()
	errc := make(chan error, 1)
	go func() {
		buf := make([]byte, 256<<10)
		for left := n; left > 0; {
			k := min(left, int64(len(buf)))
			if _, err := c.Write(buf[:k]); err != nil {
				errc <- err
				return
			}
			left -= k
		}
		errc <- c.(*net.TCPConn).CloseWrite()
	}()
	got, err := io.Copy(io.Discard, c)
	if err != nil {
		return 0, err
	}
	if err := <-errc; err != nil {
		return 0, err
	}
	if got != n {
		return 0, fmt.Errorf("echoed %d bytes, want %d", got, n)
	}
	return float64(n) / (1 << 20) / time.Since(start).Seconds(), nil
}

// ready waits until a round trip through addr works.
func ready(addr string) error {
	deadline := time.Now().Add(15 * time.Second)
	for {
		err := func() error {
			c, err := net.DialTimeout("tcp", addr, time.Second)
			if err != nil {
				return err
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(time.Second))
			return roundTrip(c, []byte("x"), make([]byte, 1))
		}()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return errors.New("the echo service is not reachable through the mesh: " + err.Error())
		}
		time.Sleep(50 * time.Millisecond)
	}
}
