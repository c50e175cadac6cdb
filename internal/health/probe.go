package health

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"time"
)

// Path is what a probe asks a peer sidecar's inbound listener for.
const Path = "/.well-known/weft/health"

// Header marks a request as a probe (value "1"), for the inbound that
// answers it.
const Header = "x-weft-probe"

// ErrUnhealthy is the error of a probe that was answered with a status
// other than 200.
var ErrUnhealthy = errors.New("unhealthy")

// ProbeFunc probes the endpoint at address; nil means healthy. It must
// return once ctx ends (the Prober gives it Timeout).
type ProbeFunc func(ctx context.Context, address string) error

// DialFunc makes a connection, as net.Dialer.DialContext.
type DialFunc func(ctx context.Context, network, address string) (net.Conn, error)

// maxStatusLine bounds the status line a probe reads.
const maxStatusLine = 512

// HTTPProbe returns the probe of a peer sidecar: on a connection from
// dial (nil: a plain net.Dialer), it sends
//
//	GET /.well-known/weft/health HTTP/1.1
//	Host: <address>
//	x-weft-probe: 1
//	Connection: close
//
// and is healthy when the status line says 200 before ctx ends. Anything
// else is an error naming the address: the dial's, a status (wrapping
// ErrUnhealthy), or no answer in time.
func HTTPProbe(dial DialFunc) ProbeFunc {
	if dial == nil {
		var d net.Dialer
		dial = d.DialContext
	}
	return func(ctx context.Context, address string) error {
		conn, err := dial(ctx, "tcp", address)
		if err != nil {
			return fmt.Errorf("health: probe %s: %w", address, err)
		}
		defer conn.Close()
		if dl, ok := ctx.Deadline(); ok {
			if err := conn.SetDeadline(dl); err != nil {
				return fmt.Errorf("health: probe %s: %w", address, err)
			}
		}
		stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
		defer stop()
		req := "GET " + Path + " HTTP/1.1\r\nHost: " + address + "\r\n" + Header + ": 1\r\nConnection: close\r\n\r\n"
		if _, err := io.WriteString(conn, req); err != nil {
			return fmt.Errorf("health: probe %s: sending: %w", address, err)
		}
		line, err := bufio.NewReaderSize(conn, maxStatusLine).ReadSlice('\n')
		if err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("health: probe %s: no answer in time: %w", address, ctx.Err())
			}
			return fmt.Errorf("health: probe %s: reading the status line: %w", address, err)
		}
		code, ok := statusCode(line)
		switch {
		case !ok:
			return fmt.Errorf("health: probe %s: %w: not an HTTP/1 status line: %q", address, ErrUnhealthy, line)
		case code != 200:
			return fmt.Errorf("health: probe %s: %w: status %d", address, ErrUnhealthy, code)
		}
		return nil
	}
}

// statusCode parses "HTTP/1.x NNN ...".
func statusCode(line []byte) (int, bool) {
	if len(line) < 12 || string(line[:7]) != "HTTP/1." || line[8] != ' ' {
		return 0, false
	}
	code := 0
	for _, c := range line[9:12] {
		if c < '0' || c > '9' {
			return 0, false
		}
		code = code*10 + int(c-'0')
	}
	if len(line) > 12 && line[12] != ' ' && line[12] != '\r' && line[12] != '\n' {
		return 0, false
	}
	return code, true
}
