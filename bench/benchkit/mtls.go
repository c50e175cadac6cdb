package benchkit

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// JoinToken asks the control plane at control for a join token for
// sidecars of service, with the full weft binary (weft token create prints
// the token alone on standard output).
func JoinToken(weft, control, service string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, weft, "token", "create", "--service", service, "--control", control)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("weft token create --service %s: %w: %s", service, err, strings.TrimSpace(stderr.String()))
	}
	tok := strings.TrimSpace(string(out))
	if tok == "" || strings.ContainsAny(tok, " \n") {
		return "", fmt.Errorf("weft token create --service %s printed %q, want one token", service, tok)
	}
	return tok, nil
}

// MTLSDetections sums weft_protocol_detections_total{listener="inbound+mtls"}
// on the sidecar whose admin listener is admin: the connections its
// inbound took as mutual TLS from a peer sidecar.
func MTLSDetections(admin string) (float64, error) {
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get("http://" + admin + "/metrics")
	if err != nil {
		return 0, fmt.Errorf("admin /metrics: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("admin /metrics: %s", resp.Status)
	}
	var n float64
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "weft_protocol_detections_total{") || !strings.Contains(line, `listener="inbound+mtls"`) {
			continue
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err != nil {
			return 0, fmt.Errorf("admin /metrics: %q: %w", line, err)
		}
		n += v
	}
	return n, sc.Err()
}

// WaitMTLS makes warm-up calls (call) until the provider sidecar whose
// admin listener is admin has taken at least one connection as mutual TLS,
// or limit passes. A call may fail while the consumer does not know yet
// that the provider takes mutual TLS (a strict provider refuses it).
func WaitMTLS(admin string, limit time.Duration, call func() error) error {
	deadline := time.Now().Add(limit)
	var last error
	for {
		if err := call(); err != nil {
			last = fmt.Errorf("warm-up call: %w", err)
		} else if n, err := MTLSDetections(admin); err != nil {
			last = err
		} else if n > 0 {
			return nil
		} else {
			last = fmt.Errorf(`the call went through, but the provider's weft_protocol_detections_total{listener="inbound+mtls"} is 0`)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no mutual TLS between the sidecars after %s: %w", limit, last)
		}
		time.Sleep(100 * time.Millisecond) // polling a process's state, not synchronising a test
	}
}
