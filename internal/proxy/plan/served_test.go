package plan

import (
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/weftmesh/weft/internal/snapshot"
)

// The ring keeps the last RecentSize requests, finds the latest of an
// id, refuses ids it could not keep whole, and records without
// allocating.
func TestRecentRing(t *testing.T) {
	tb := NewTable(nil, Policy{})
	g, err := newGuard(snapshot.DefaultPolicy(), "")
	if err != nil {
		t.Fatal(err)
	}
	c := tb.cluster("svc", nil, g, nil)
	start := time.Now()
	for i := range RecentSize + 10 {
		c.Record(&Visit{Start: start, End: start.Add(time.Millisecond), Status: 200 + i%2}, []byte(fmt.Sprintf("id-%d", i%(RecentSize+5))), []byte("GET"), []byte("/x"), nil)
	}
	if got, ok := tb.Recent().Find("id-3"); !ok || got.Status != 200+(RecentSize+8)%2 || got.Duration != time.Millisecond || got.Method != "GET" || got.Path != "/x" {
		t.Errorf("id-3: got %+v (found %v), want its latest record", got, ok)
	}
	if _, ok := tb.Recent().Find("id-6"); ok {
		t.Error("id-6 was recorded before the last RecentSize and is still found")
	}
	long := make([]byte, 129)
	for i := range long {
		long[i] = 'a'
	}
	c.Record(&Visit{}, long, []byte("GET"), []byte("/"), nil)
	if _, ok := tb.Recent().Find(string(long)); ok {
		t.Error("an id longer than 128 bytes was kept (truncated, it would match others)")
	}
	// An id the sidecar took in and then sent (its app passed it on):
	// Find gives the one sent, the decision this sidecar made.
	in := tb.cluster("me", nil, g, directionMetrics("inbound"))
	c.Record(&Visit{Start: start, Status: 201}, []byte("both"), []byte("GET"), []byte("/out"), nil)
	in.Record(&Visit{Start: start, Status: 202}, []byte("both"), []byte("GET"), []byte("/in"), []byte("web"))
	in.Record(&Visit{Start: start, Status: 203}, []byte("only-in"), []byte("GET"), []byte("/in"), []byte("web"))
	if got, _ := tb.Recent().Find("both"); got.Status != 201 || got.Direction != "outbound" {
		t.Errorf("an id sent and taken in: got %+v, want the outbound record", got)
	}
	if got, _ := tb.Recent().Find("only-in"); got.Status != 203 || got.Direction != "inbound" || got.Source != "web" {
		t.Errorf("an id only taken in: got %+v, want the inbound record from web", got)
	}
	id, m, p := []byte("abc"), []byte("GET"), []byte("/items")
	if n := testing.AllocsPerRun(100, func() { c.Record(&Visit{Start: start, End: start, Status: 200}, id, m, p, nil) }); n != 0 {
		t.Errorf("Record allocates %v times, want 0", n)
	}
}

// directionMetrics are a direction's handles on a registry of their
// own, so that records know their direction.
func directionMetrics(direction string) *ServiceMetrics {
	return NewMetrics(prometheus.NewRegistry()).ForService(direction, "me")
}
