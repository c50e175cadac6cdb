package e2e

import (
	"bufio"
	"net"
	"os"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/meshtest"
)

func TestDemoRunsAndCleansUp(t *testing.T) {
	// Not parallel: checks that the addresses the demo released accept no connections.
	m := meshtest.New(t)
	tmp := t.TempDir()
	p := m.Start("demo", m.Bins.Weft, []string{"TMPDIR=" + tmp},
		"demo", "--listen", "127.0.0.1:0", "--outbound", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--load-interval", "50ms")
	got := p.WaitLog(t, regexp.MustCompile(`curl -x http://(\S+) http://catalog/items`), 60*time.Second)
	outbound := got[1]
	control := p.WaitLog(t, regexp.MustCompile(`a control plane at (\S+),`), time.Second)[1]

	seen := map[string]bool{}
	m.Eventually(10*time.Second, func() (bool, string) {
		_, body, err := meshtest.Via(outbound, "catalog", "/items")
		if err != nil {
			return false, err.Error()
		}
		for _, v := range []string{`"version":"v1"`, `"version":"v2"`} {
			if strings.Contains(body, v) && strings.Contains(body, `"instance":"ratings-1"`) {
				seen[v] = true
			}
		}
		return len(seen) == 2, body
	})
	m.Eventually(10*time.Second, func() (bool, string) {
		_, body, err := meshtest.Via(outbound, "web", "/")
		if err != nil {
			return false, err.Error()
		}
		return strings.HasPrefix(body, "web (web-1) got the catalog from catalog-v") &&
			strings.Contains(body, `ledger says "OK loom 42"`), "web: " + body
	})

	// The TCP service, through web's upstream port as the demo prints it.
	nc := p.WaitLog(t, regexp.MustCompile(`nc (\S+) (\d+) `), time.Second)
	c, err := net.DialTimeout("tcp", net.JoinHostPort(nc[1], nc[2]), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(5 * time.Second))
	br := bufio.NewReader(c)
	greeting, _ := br.ReadString('\n')
	c.Write([]byte("BALANCE shuttle\r\n"))
	answer, _ := br.ReadString('\n')
	c.Close()
	if greeting != "220 ledger-1 ready\r\n" || answer != "OK shuttle 7\r\n" {
		t.Errorf("ledger through web's upstream port: got %q then %q", greeting, answer)
	}
	out, _, code := m.Weft("get", "instances", "catalog", "--control", control)
	if code != 0 || !strings.Contains(out, "catalog-v1") || !strings.Contains(out, "version=v2") {
		t.Errorf("get instances catalog:\n%s", out)
	}

	p.Signal(syscall.SIGINT)
	if code := p.ExitCode(t, 30*time.Second); code != 0 {
		t.Errorf("demo exit after Ctrl-C: got %d, want 0", code)
	}
	entries, _ := os.ReadDir(tmp)
	if len(entries) != 0 {
		t.Errorf("demo left %d entries in its temp dir, e.g. %s", len(entries), entries[0].Name())
	}
	for _, addr := range []string{outbound, control} {
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			t.Errorf("%s still accepts connections after the demo stopped", addr)
		}
	}
}
