package proxy

import (
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"
)

// tunnel answers CONNECT host:port (HTTPS egress): it dials the target,
// says 200, and copies bytes both ways, half-closing each side as it ends.
func tunnel(w http.ResponseWriter, r *http.Request, m *Metrics, log *slog.Logger) {
	target := r.Host
	if _, _, err := net.SplitHostPort(target); err != nil {
		(&MeshError{Status: http.StatusBadRequest, Reason: ReasonBadRequest, Service: target,
			Message: fmt.Sprintf("CONNECT target %q is not host:port", target)}).write(w)
		return
	}
	up, err := net.DialTimeout("tcp", target, 5*time.Second)
	if err != nil {
		f := classify(err)
		(&MeshError{Status: f.status, Reason: f.reason, Service: target,
			Message: fmt.Sprintf("CONNECT %s: %v", target, err)}).write(w)
		return
	}
	defer up.Close()
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		log.Warn("CONNECT: cannot take over the connection", "err", err)
		return
	}
	defer conn.Close()
	if m != nil {
		m.tunnels.Inc()
	}
	if _, err := brw.WriteString("HTTP/1.1 200 Connection Established\r\n\r\n"); err != nil {
		return
	}
	if err := brw.Flush(); err != nil {
		return
	}
	pipe(conn, brw.Reader, up.(*net.TCPConn))
}
