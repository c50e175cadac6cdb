package plan

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/weftmesh/weft/internal/endpoint"
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

// appendJSON escapes what JSON needs escaped, keeps UTF-8, replaces
// what is not UTF-8, and allocates nothing.
func TestAccessLineEncoding(t *testing.T) {
	var e served
	e.idLen = uint16(copy(e.id[:], "id"))
	e.pathLen = uint16(copy(e.path[:], "/a\"b\\c\n\x01é\xff"))
	e.methodLen = uint8(copy(e.method[:], "GET"))
	e.direction, e.service, e.status, e.bytes = "inbound", "catalog", 200, -1
	e.srcLen = uint8(copy(e.src[:], "web"))
	var line map[string]any
	b := e.appendJSON(nil)
	if err := json.Unmarshal(b, &line); err != nil {
		t.Fatalf("not JSON: %v: %s", err, b)
	}
	if line["source_service"] != "web" {
		t.Errorf("source_service %v, want web", line["source_service"])
	}
	if got := line["path"]; got != "/a\"b\\c\n\x01é\ufffd" {
		t.Errorf("path %q, want it back as sent, the invalid byte as U+FFFD", got)
	}
	buf := make([]byte, 0, 1024)
	if n := testing.AllocsPerRun(100, func() { buf = e.appendJSON(buf[:0]) }); n != 0 {
		t.Errorf("appendJSON allocates %v times a line, want 0", n)
	}
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

// A TCP connection is one line: method TCP, the client's address as
// path, the bytes both ways; a traced request carries its trace id.
func TestAccessLogConnAndTrace(t *testing.T) {
	var out lockedBuffer
	l := NewAccessLog(&out, nil)
	c := NewCluster("db", nil, 0, nil)
	c.RecordInto(&Recent{}, l)
	start := time.Date(2026, 12, 4, 1, 2, 3, 0, time.UTC)
	ep := endpoint.New("db", "db-1", "127.0.0.1:5432", nil)
	c.RecordConn(Conn{Start: start, End: start.Add(2 * time.Second), Endpoint: ep, Received: 10, Sent: 20, Source: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000}})
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	l.Run(ctx) // (writes what is queued, then returns)
	line := out.String()
	for _, want := range []string{`"method":"TCP"`, `"path":"127.0.0.1:40000"`, `"instance":"db-1"`, `"bytes":20,"bytes_received":10`, `"duration_ms":2000`, `"attempts":1`} {
		if !strings.Contains(line, want) {
			t.Errorf("line %s lacks %s", line, want)
		}
	}
}

// An inbound TCP connection's line names its peer as the source
// ("unknown" for a plain one) and, denied, the mesh error and the
// decision: no request id explains it later.
func TestAccessLogConnSourceAndDenial(t *testing.T) {
	var out lockedBuffer
	l := NewAccessLog(&out, nil)
	c, a := inboundCluster(t, prometheus.NewRegistry())
	c.Endpoints = []*Endpoint{endpoint.New("catalog", "catalog-1", "127.0.0.1:1", nil)}
	c.RecordInto(&Recent{}, l)
	a.Set(matcherOf(t, "catalog", catalogPolicies))
	var k Call
	k.Init(c, ConnFrom("ratings"), time.Time{})
	k.Next()
	c.RecordConn(Conn{Start: time.Now(), End: time.Now(), Err: k.Result(), Peer: "ratings"})
	c.RecordConn(Conn{Start: time.Now(), End: time.Now(), Endpoint: c.Endpoints[0]})
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	l.Run(ctx) // (writes what is queued, then returns)
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("got %d lines, want 2:\n%s", len(lines), out.String())
	}
	for i, want := range []map[string]any{
		{"direction": "inbound", "source_service": "ratings", "method": "TCP", "mesh_error": ReasonDenied,
			"authorization": "denied by AuthorizationPolicy/catalog-deny rule 0", "status": 403.0},
		{"direction": "inbound", "source_service": UnknownSource, "method": "TCP", "instance": "catalog-1", "mesh_error": nil, "authorization": nil},
	} {
		var got map[string]any
		if err := json.Unmarshal([]byte(lines[i]), &got); err != nil {
			t.Fatalf("line %d is not JSON: %v: %s", i+1, err, lines[i])
		}
		for k, v := range want {
			if got[k] != v {
				t.Errorf("line %d: %s is %v, want %v (%s)", i+1, k, got[k], v, lines[i])
			}
		}
	}
}
