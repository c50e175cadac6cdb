package proxy

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"time"

	"github.com/weftmesh/weft/internal/proxy/conn"
	"github.com/weftmesh/weft/internal/proxy/plan"
	"github.com/weftmesh/weft/internal/security"
)

// Protocols a listener tells apart from a connection's first bytes.
const (
	ProtoHTTP1 = "http1"
	ProtoH2    = "h2"
	ProtoTLS   = "tls"
	ProtoTCP   = "tcp"
)

// DefaultDetectTimeout is how long a listener that can forward opaque bytes
// waits for a connection's first bytes before taking it for a protocol in
// which the server speaks first.
const DefaultDetectTimeout = 100 * time.Millisecond

// detect decides what a new connection speaks and reports whether the
// HTTP loop should serve it. Connections to a destination declared TCP
// skip detection: they are forwarded at once, so a protocol in which the
// server speaks first (MySQL, SMTP) is never delayed.
//
//	declared TCP                  -> bytes, now
//	no whole first line in time   -> bytes (only where Opaque is set)
//	TLS record                    -> bytes (only where Opaque is set)
//	"METHOD target HTTP/1.x" line -> HTTP loop (fast path, or net/http when H1 is set)
//	HTTP/2 preface                -> HTTP loop, which hands it to x/net/http2
//	anything else                 -> bytes where Opaque is set, else the HTTP loop (400)
func (s *Listener) detect(cc *conn.Client) bool {
	var dest *plan.Cluster
	strict := s.cfg.Strict != nil && s.cfg.Strict()
	if s.cfg.Opaque != nil {
		var declared bool
		// (A peer's mutual TLS must be told from the app's bytes: with
		// MeshTLS, a declared TCP app's connections are sniffed too.)
		if dest, declared = s.cfg.Opaque(); declared && s.cfg.MeshTLS == nil && !strict {
			s.cfg.Metrics.Detected(s.cfg.Name, ProtoTCP, "declared")
			s.forwardTCP(cc, dest)
			return false
		}
	}
	wait := conn.ClientIdleTimeout
	if s.cfg.Opaque != nil && s.cfg.DetectTimeout > 0 && !strict {
		wait = s.cfg.DetectTimeout
	}
	cc.DL.Set(cc.Conn, time.Now(), wait, 0)
	proto, err := sniff(cc.BR)
	if err != nil {
		if s.cfg.Opaque != nil && !strict && errors.Is(err, os.ErrDeadlineExceeded) {
			s.cfg.Metrics.Detected(s.cfg.Name, ProtoTCP, "timeout")
			s.forwardTCP(cc, dest)
		}
		return false // the client left, or sent nothing for the idle timeout
	}
	s.cfg.Metrics.Detected(s.cfg.Name, proto, "sniffed")
	if proto == ProtoTLS && s.cfg.MeshTLS != nil && meshHello(cc.BR) {
		if proto, err = s.terminateMeshTLS(cc); err != nil {
			s.cfg.Log.Warn("mutual TLS from a peer refused", "listener", s.cfg.Name, "client", cc.Raw.RemoteAddr().String(), "err", err)
			s.cfg.Metrics.Refused(s.cfg.Name, "handshake")
			return false
		}
		s.cfg.Metrics.Detected(s.cfg.Name+"+mtls", proto, "negotiated")
		if proto == ProtoTCP {
			s.forwardTCP(cc, dest)
			return false
		}
		return true
	}
	if strict {
		s.cfg.Log.Warn("connection refused: this inbound takes only mutual TLS from peer sidecars (strict mode)", "listener", s.cfg.Name,
			"client", cc.Raw.RemoteAddr().String(), "detected", proto)
		s.cfg.Metrics.Refused(s.cfg.Name, "not-mtls")
		return false
	}
	if proto == ProtoTLS && s.cfg.TLS != nil {
		if proto, err = s.terminateTLS(cc); err != nil {
			s.cfg.Log.Debug("TLS handshake failed", "listener", s.cfg.Name, "client", cc.Raw.RemoteAddr().String(), "err", err)
			return false
		}
		s.cfg.Metrics.Detected(s.cfg.Name+"+tls", proto, "sniffed")
	}
	if proto == ProtoTLS && s.cfg.SNI != nil {
		s.forwardBySNI(cc)
		return false
	}
	if proto == ProtoHTTP1 || proto == ProtoH2 || s.cfg.Opaque == nil {
		return true
	}
	s.forwardTCP(cc, dest)
	return false
}

// forwardBySNI passes a TLS connection through, untouched, to where the
// server name of its ClientHello says (TLS passthrough, as for HTTPS apps
// that call a mesh service or an outside host without a proxy).
func (s *Listener) forwardBySNI(cc *conn.Client) {
	cc.DL.Set(cc.Raw, time.Now(), s.cfg.HeadTimeout, 0)
	name, err := serverName(cc.BR)
	if err != nil {
		s.cfg.Log.Warn("TLS connection without a usable server name; closed", "listener", s.cfg.Name,
			"client", cc.Raw.RemoteAddr().String(), "err", err)
		return
	}
	dest, merr := s.cfg.SNI(name)
	if merr != nil {
		s.cfg.Log.Warn("TLS connection for "+name+" refused: "+merr.Message, "listener", s.cfg.Name, "reason", merr.Reason)
		return
	}
	s.forwardTCP(cc, dest)
}

// errHelloRead stops a handshake once the ClientHello has been read.
var errHelloRead = errors.New("ClientHello read")

// serverName reads the server name (SNI) of the buffered ClientHello
// without consuming it: crypto/tls parses a copy, on a connection that
// only replays those bytes, and the handshake stops right after.
func serverName(br *bufio.Reader) (string, error) {
	hdr, err := br.Peek(5)
	if err != nil {
		return "", err
	}
	n := 5 + (int(hdr[3])<<8 | int(hdr[4]))
	record, err := br.Peek(n)
	if err != nil {
		return "", fmt.Errorf("reading the ClientHello (%d bytes): %w", n, err)
	}
	var name string
	cfg := &tls.Config{GetConfigForClient: func(h *tls.ClientHelloInfo) (*tls.Config, error) {
		name = h.ServerName
		return nil, errHelloRead
	}}
	err = tls.Server(&replayConn{r: bytes.NewReader(record)}, cfg).Handshake()
	if name == "" {
		if errors.Is(err, errHelloRead) {
			err = errors.New("the ClientHello names no server")
		}
		return "", err
	}
	return name, nil
}

// replayConn is a net.Conn that reads a fixed byte slice and discards writes.
type replayConn struct {
	net.Conn // nil: only the methods below are used
	r        *bytes.Reader
}

func (c *replayConn) Read(p []byte) (int, error)       { return c.r.Read(p) }
func (c *replayConn) Write(p []byte) (int, error)      { return len(p), nil }
func (c *replayConn) Close() error                     { return nil }
func (c *replayConn) SetDeadline(time.Time) error      { return nil }
func (c *replayConn) SetReadDeadline(time.Time) error  { return nil }
func (c *replayConn) SetWriteDeadline(time.Time) error { return nil }
func (c *replayConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (c *replayConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }

// terminateTLS completes the TLS handshake (ALPN offers h2 and http/1.1),
// makes the TLS connection the one the rest of the path reads and writes,
// and says what it carries.
func (s *Listener) terminateTLS(cc *conn.Client) (string, error) {
	cc.DL.Set(cc.Raw, time.Now(), s.cfg.HeadTimeout, 0)
	// The reader that holds the first bytes keeps feeding the TLS layer;
	// the path reads what TLS decrypts through a reader of its own.
	cc.RawBR = cc.BR
	tc := tls.Server(&conn.Buffered{Conn: cc.Raw, R: cc.RawBR}, s.cfg.TLS)
	if err := tc.Handshake(); err != nil {
		return "", err
	}
	cc.Conn = tc
	cc.Sock = nil // the path reads and writes through TLS now
	cc.BR = conn.GetReader(tc)
	cc.BW.Reset(tc)
	if tc.ConnectionState().NegotiatedProtocol == "h2" {
		return ProtoH2, nil
	}
	return sniff(cc.BR)
}

// meshHello reports whether the buffered ClientHello offers a mesh ALPN
// protocol: a peer sidecar's mutual TLS, not the app's own TLS.
func meshHello(br *bufio.Reader) bool {
	hdr, err := br.Peek(5)
	if err != nil {
		return false
	}
	record, err := br.Peek(5 + (int(hdr[3])<<8 | int(hdr[4])))
	if err != nil {
		return false
	}
	mesh := false
	cfg := &tls.Config{GetConfigForClient: func(h *tls.ClientHelloInfo) (*tls.Config, error) {
		for _, p := range h.SupportedProtos {
			if slices.Contains(conn.MeshALPN, p) {
				mesh = true
			}
		}
		return nil, errHelloRead
	}}
	_ = tls.Server(&replayConn{r: bytes.NewReader(record)}, cfg).Handshake()
	return mesh
}

// terminateMeshTLS completes a peer sidecar's mutual TLS handshake (its
// certificate checked by MeshTLS), makes the TLS connection the one the
// rest of the path reads and writes, names the peer, and says what the
// connection carries, as its ALPN protocol does.
func (s *Listener) terminateMeshTLS(cc *conn.Client) (string, error) {
	cc.DL.Set(cc.Raw, time.Now(), s.cfg.HeadTimeout, 0)
	cc.RawBR = cc.BR
	tc := tls.Server(&conn.Buffered{Conn: cc.Raw, R: cc.RawBR}, s.cfg.MeshTLS)
	if err := tc.Handshake(); err != nil {
		return "", err
	}
	st := tc.ConnectionState()
	peer, err := security.PeerService(st)
	if err != nil {
		return "", err
	}
	cc.Conn, cc.Sock, cc.Peer = tc, nil, peer
	cc.BR = conn.GetReader(tc)
	cc.BW.Reset(tc)
	switch st.NegotiatedProtocol {
	case conn.ALPNMeshH2:
		return ProtoH2, nil
	case conn.ALPNMeshTCP:
		return ProtoTCP, nil
	case conn.ALPNMeshHTTP1:
		return ProtoHTTP1, nil
	}
	return "", fmt.Errorf("mutual TLS negotiated %q, not one of %v", st.NegotiatedProtocol, conn.MeshALPN)
}

// sniff classifies the connection by its first bytes without consuming
// them. It reads more only while what it has could still be an HTTP/1
// request line or the HTTP/2 preface; a client sends either at once, so a
// request is not delayed.
func sniff(br *bufio.Reader) (string, error) {
	b, err := br.Peek(1)
	if err != nil {
		return "", err
	}
	if b[0] == 0x16 { // TLS handshake record
		return ProtoTLS, nil
	}
	// An HTTP/1 request starts with a method token, upper case by
	// convention, then a space; "PRI" may be the HTTP/2 preface.
	const maxMethod = 20
	for n := 1; n <= maxMethod; n++ {
		b, err := br.Peek(n)
		if err != nil {
			if len(b) > 0 && errors.Is(err, io.EOF) {
				return ProtoTCP, nil
			}
			return "", err
		}
		c := b[n-1]
		switch {
		case c == ' ' && n > 1:
			if string(b) == "PRI " && conn.IsH2Preface(br) {
				return ProtoH2, nil
			}
			return requestLine(br)
		case 'A' <= c && c <= 'Z', c == '-' || c == '_':
			continue
		default:
			return ProtoTCP, nil
		}
	}
	return ProtoTCP, nil
}

// maxSniffLine is how much of a first line sniff reads looking for the
// HTTP version; a longer first line is taken for TCP (it may be an HTTP
// request with a huge URL, which then still works, as bytes).
const maxSniffLine = 8 << 10

// requestLine tells an HTTP/1 request line ("GET /x HTTP/1.1") from a text
// protocol whose first word merely looks like a method (Redis "SET k v",
// SMTP "HELO x"): it reads to the end of the first line, which a client
// sends at once, and looks for the version.
func requestLine(br *bufio.Reader) (string, error) {
	for n := br.Buffered(); ; n++ {
		b, err := br.Peek(max(n, 1))
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			line := bytes.TrimSuffix(b[:i], []byte("\r"))
			if bytes.HasSuffix(line, []byte(" HTTP/1.1")) || bytes.HasSuffix(line, []byte(" HTTP/1.0")) {
				return ProtoHTTP1, nil
			}
			return ProtoTCP, nil
		}
		if len(b) >= maxSniffLine || errors.Is(err, bufio.ErrBufferFull) {
			return ProtoTCP, nil
		}
		if err != nil {
			if len(b) > 0 && errors.Is(err, io.EOF) {
				return ProtoTCP, nil
			}
			return "", err
		}
		n = len(b)
	}
}

// forwardTCP hands the connection to the TCP proxy, with the bytes
// detection already read and the peer its mutual TLS proved (none on a
// plain connection), which the inbound authorizes and counts it by.
// Without a destination it closes.
func (s *Listener) forwardTCP(cc *conn.Client, dest *plan.Cluster) {
	if dest == nil || s.cfg.TCP == nil {
		s.cfg.Log.Warn("connection that is not HTTP has no destination on this listener; closed", "listener", s.cfg.Name,
			"client", cc.Conn.RemoteAddr().String())
		return
	}
	if !cc.Activate() {
		return // shutting down
	}
	cc.DL.Clear(cc.Conn)
	buffered, _ := cc.BR.Peek(cc.BR.Buffered())
	s.cfg.TCP.Forward(cc.Conn, buffered, dest, cc.Peer)
}
