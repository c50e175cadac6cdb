package meshtest_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/meshtest"
	"github.com/weftmesh/weft/internal/sidecar"
)

// A request through a consumer's sidecar reaches the app behind a
// provider's sidecar and comes back with the app's answer; bytes through
// an upstream listener reach a TCP app and come back, all in one process.
func TestInProcMeshRoutesThroughTwoSidecars(t *testing.T) {
	mesh := meshtest.NewInProc(t)
	app := mesh.HTTPApp(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "catalog-1 %s %s", r.Method, r.URL.Path)
	}))
	mesh.Sidecar("catalog", func(c *sidecar.Config) { c.ID, c.AppPort = "catalog-1", app.Port })
	ledger := mesh.TCPApp(func(c net.Conn) {
		fmt.Fprint(c, "220 ledger-1 ready\r\n")
		io.Copy(c, c)
	})
	mesh.Sidecar("ledger", func(c *sidecar.Config) { c.ID, c.AppPort, c.AppProtocol = "ledger-1", ledger.Port, "tcp" })
	web := mesh.Sidecar("web", func(c *sidecar.Config) {
		c.Upstreams = []sidecar.Upstream{{Service: "ledger", Listen: "127.0.0.1:0", TCP: true}}
	})
	mesh.WaitEndpoints(web, "catalog", 1)
	mesh.WaitEndpoints(web, "ledger", 1)

	resp, body, err := meshtest.Via(web.Outbound, "catalog", "/items")
	if err != nil {
		t.Fatalf("GET http://catalog/items through the consumer's sidecar: %v", err)
	}
	if resp.StatusCode != http.StatusOK || body != "catalog-1 GET /items" {
		t.Fatalf("GET http://catalog/items: got %d %q (x-weft-error %q), want 200 %q",
			resp.StatusCode, body, resp.Header.Get("X-Weft-Error"), "catalog-1 GET /items")
	}

	c, err := net.DialTimeout("tcp", web.Upstreams[0], 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(c)
	greeting, err := br.ReadString('\n')
	if err != nil || greeting != "220 ledger-1 ready\r\n" {
		t.Fatalf("greeting through the upstream listener: got %q %v, want %q", greeting, err, "220 ledger-1 ready\r\n")
	}
	fmt.Fprint(c, "BALANCE loom\r\n")
	if echo, err := br.ReadString('\n'); err != nil || echo != "BALANCE loom\r\n" {
		t.Fatalf("echo through the upstream listener: got %q %v, want %q", echo, err, "BALANCE loom\r\n")
	}
}
