package proxy

import (
	"crypto/tls"
	"io"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/proxy/conn"
)

// A sidecar's second connection to a peer's inbound resumes the first's
// TLS 1.3 session (DialPeer clones the endpoint's config, which shares
// the Credentials' session cache; the inbound terminates every handshake
// with one server config, so its tickets decrypt), and a resumed
// connection still names the peer by its certificate.
func TestMutualTLSResumesSessions(t *testing.T) {
	authority := testCA(t)
	client, server := workload(t, authority, "client"), workload(t, authority, "svc")
	p := mtlsPair(t, client, server, tcpEcho(t), "tcp", true)
	cfg := client.ClientConfig("svc")
	for i, wantResumed := range []bool{false, true, true} {
		c, err := conn.DialPeer(p.in, cfg, conn.ALPNMeshTCP)
		if err != nil {
			t.Fatalf("connection %d: %v", i+1, err)
		}
		c.SetDeadline(time.Now().Add(5 * time.Second))
		// The session ticket comes after the handshake: a round trip
		// reads it.
		io.WriteString(c, "loom\n")
		got := make([]byte, 5)
		if _, err := io.ReadFull(c, got); err != nil || string(got) != "LOOM\n" {
			c.Close()
			t.Fatalf("connection %d: got %q (%v), want the app's echo", i+1, got, err)
		}
		st := c.(*tls.Conn).ConnectionState()
		c.Close()
		if st.DidResume != wantResumed {
			t.Errorf("connection %d: DidResume %v, want %v", i+1, st.DidResume, wantResumed)
		}
		if len(st.PeerCertificates) == 0 || st.PeerCertificates[0].URIs[0].String() != "spiffe://weft.test/service/svc" {
			t.Errorf("connection %d: peer certificates %v, want svc's", i+1, st.PeerCertificates)
		}
	}
	waitFor(t, 5*time.Second, "three mutual-TLS TCP connections counted by the inbound", func() bool {
		return sample(t, p.reg, "weft_protocol_detections_total", "listener", "inbound+mtls", "protocol", "tcp") == 3
	})
}
