package plan

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/weftmesh/weft/internal/snapshot"
)

// lockedBuffer is a bytes.Buffer the writer goroutine and the test share.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// Each recorded request is one JSON line with its fields; a full queue
// drops and counts, never waits; Run writes what is queued when it ends.
func TestAccessLog(t *testing.T) {
	reg := prometheus.NewRegistry()
	var out lockedBuffer
	l := NewAccessLog(&out, reg)
	tb := NewTable(nil, Policy{Source: "web"})
	tb.SetAccessLog(l)
	g, err := newGuard(snapshot.DefaultPolicy(), "")
	if err != nil {
		t.Fatal(err)
	}
	c := tb.cluster("catalog", nil, g, nil)
	c.Source = "web"
	start := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	c.Record(&Visit{Start: start, End: start.Add(1500 * time.Microsecond), Status: 503, Bytes: -1,
		Err: &MeshError{Reason: ReasonNoRoute}, Rule: "HTTPRoute/catalog rule 0"}, []byte("id-1"), []byte("GET"), []byte("/items?x=\"1\""), []byte("spoofed"))
	for range AccessLogQueue + 10 { // nobody writes yet: the queue fills
		c.Record(&Visit{Start: start, End: start, Status: 200, Bytes: 10}, []byte("id-2"), []byte("GET"), []byte("/"), nil)
	}
	var m dto.Metric
	if err := l.dropped.Write(&m); err != nil || m.GetCounter().GetValue() != 11 {
		t.Errorf("dropped %v, want the 11 past the queue's %d", m.GetCounter().GetValue(), AccessLogQueue)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // Run writes what is queued, then returns
	if err := l.Run(ctx); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != AccessLogQueue {
		t.Fatalf("%d lines, want %d", len(lines), AccessLogQueue)
	}
	var first map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &first); err != nil {
		t.Fatalf("line 1 is not JSON: %v: %s", err, lines[0])
	}
	want := map[string]any{"time": "2026-12-03T10:00:00.000000Z", "direction": "outbound", "source_service": "web",
		"destination_service": "catalog", "method": "GET", "path": `/items?x="1"`, "status": 503.0, "duration_ms": 1.5,
		"bytes": -1.0, "attempts": 0.0, "request_id": "id-1", "route": "HTTPRoute/catalog rule 0", "mesh_error": ReasonNoRoute}
	for k, v := range want {
		if first[k] != v {
			t.Errorf("%s: got %v, want %v (line %s)", k, first[k], v, lines[0])
		}
	}
}
