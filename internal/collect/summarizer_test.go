package collect

import (
	"reflect"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// dataPath registers the data path's two series in a registry of its own,
// with the labels the sidecar's metrics have.
type dataPath struct {
	reg      *prometheus.Registry
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

func newDataPath(t *testing.T, bounds []float64) *dataPath {
	t.Helper()
	d := &dataPath{reg: prometheus.NewRegistry()}
	d.register(t, bounds)
	return d
}

func (d *dataPath) register(t *testing.T, bounds []float64) {
	t.Helper()
	d.requests = prometheus.NewCounterVec(prometheus.CounterOpts{Name: requestsMetric, Help: "h"},
		[]string{"direction", "source_service", "destination_service", "response_code", "grpc_status", "route"})
	d.duration = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: durationMetric, Help: "h", Buckets: bounds},
		[]string{"direction", "source_service", "destination_service", "route"})
	d.reg.MustRegister(d.requests, d.duration)
}

func (d *dataPath) unregister() {
	d.reg.Unregister(d.requests)
	d.reg.Unregister(d.duration)
}

// serve counts n answers of key k with the code and grpc-status, each
// taking latency.
func (d *dataPath) serve(k Key, code, grpc string, n int, latency time.Duration) {
	for range n {
		d.requests.WithLabelValues(k.Direction, k.Source, k.Destination, code, grpc, k.Route).Inc()
		d.duration.WithLabelValues(k.Direction, k.Source, k.Destination, k.Route).Observe(latency.Seconds())
	}
}

var (
	webToAPI = Key{Direction: Outbound, Source: "web", Destination: "api", Route: "HTTPRoute/api"}
	apiIn    = Key{Direction: Inbound, Source: "web", Destination: "api"}
)

func byKey(r Report) map[Key]Series {
	out := map[Key]Series{}
	for _, s := range r.Series {
		out[s.Key] = s
	}
	return out
}

func mustNext(t *testing.T, s *Summarizer, now time.Time) Report {
	t.Helper()
	r, ok, err := s.Next(now)
	if err != nil || !ok {
		t.Fatalf("Next: got ok=%v err=%v, want a report", ok, err)
	}
	if err := r.Validate(); err != nil {
		t.Fatalf("the report does not validate: %v", err)
	}
	return r
}

func TestSummarizerCountsByKeyAndOutcome(t *testing.T) {
	d := newDataPath(t, Bounds[:])
	d.serve(webToAPI, "200", "", 7, 3*time.Millisecond)  // bucket .005
	d.serve(webToAPI, "503", "", 2, 30*time.Millisecond) // bucket .05
	d.serve(webToAPI, "200", "14", 1, time.Millisecond)  // gRPC UNAVAILABLE: a failure; bucket .001
	d.serve(webToAPI, "200", "0", 1, time.Millisecond)   // gRPC OK
	d.serve(webToAPI, "404", "", 1, time.Millisecond)    // not a failure
	d.serve(apiIn, "200", "", 3, 20*time.Second)         // slower than every bound
	s := NewSummarizer(d.reg)
	r := mustNext(t, s, time.Now())
	if r.Seq != 1 || r.Boot == "" {
		t.Errorf("first report: got seq %d boot %q, want seq 1 and a boot id", r.Seq, r.Boot)
	}
	got := byKey(r)
	if len(got) != 2 {
		t.Fatalf("got %d series, want 2: %+v", len(got), r.Series)
	}
	out := got[webToAPI]
	if out.Requests != 12 || out.Failures != 3 {
		t.Errorf("outbound: got %d requests %d failures, want 12 and 3", out.Requests, out.Failures)
	}
	wantBuckets := []uint64{0, 3, 0, 7, 0, 0, 2}
	if !reflect.DeepEqual(out.Buckets, wantBuckets) {
		t.Errorf("outbound buckets: got %v, want %v", out.Buckets, wantBuckets)
	}
	in := got[apiIn]
	if in.Requests != 3 || in.Failures != 0 || len(in.Buckets) != NumBuckets || in.Buckets[NumBuckets-1] != 3 {
		t.Errorf("inbound: got %+v, want 3 requests, none failed, all in the last bucket", in)
	}
}

func TestSummarizerDeltaAfterAckAndAfterFailedReport(t *testing.T) {
	d := newDataPath(t, Bounds[:])
	s := NewSummarizer(d.reg)
	now := time.Now()
	if _, ok, _ := s.Next(now); ok {
		t.Fatal("nothing counted yet: got a report, want none")
	}
	d.serve(webToAPI, "200", "", 5, time.Millisecond)
	r1 := mustNext(t, s, now)
	s.Acked(r1.Seq)

	// The next report carries only what came after the acknowledged one.
	d.serve(webToAPI, "200", "", 2, time.Millisecond)
	r2 := mustNext(t, s, now)
	if r2.Seq != 2 || byKey(r2)[webToAPI].Requests != 2 {
		t.Fatalf("after an ack: got seq %d with %d requests, want seq 2 with 2", r2.Seq, byKey(r2)[webToAPI].Requests)
	}
	// Its POST failed: not acknowledged. More requests come; the same
	// report goes again, older by the time waited.
	d.serve(webToAPI, "500", "", 4, time.Millisecond)
	again := mustNext(t, s, now.Add(10*time.Second))
	if again.Seq != 2 || byKey(again)[webToAPI].Requests != 2 || again.AgeMillis != 10_000 {
		t.Fatalf("after a failed report: got seq %d, %d requests, age %dms; want the same report (seq 2, 2 requests), 10000ms old",
			again.Seq, byKey(again)[webToAPI].Requests, again.AgeMillis)
	}
	s.Acked(1) // a stale ack changes nothing
	if r, _, _ := s.Next(now); r.Seq != 2 {
		t.Fatalf("after a stale ack: got seq %d, want 2 still pending", r.Seq)
	}
	s.Acked(2)
	r3 := mustNext(t, s, now)
	got := byKey(r3)[webToAPI]
	if r3.Seq != 3 || got.Requests != 4 || got.Failures != 4 {
		t.Fatalf("after the retried report's ack: got seq %d %+v, want seq 3 with the 4 failed requests", r3.Seq, got)
	}
	s.Acked(3)
	if _, ok, _ := s.Next(now); ok {
		t.Error("nothing new: got a report, want none")
	}
	// Every request went out exactly once.
	if sum := byKey(r1)[webToAPI].Requests + byKey(r2)[webToAPI].Requests + got.Requests; sum != 11 {
		t.Errorf("requests over the acknowledged reports: got %d, want 11", sum)
	}
}

func TestSummarizerCounterReset(t *testing.T) {
	d := newDataPath(t, Bounds[:])
	s := NewSummarizer(d.reg)
	d.serve(apiIn, "200", "", 10, time.Millisecond)
	s.Acked(mustNext(t, s, time.Now()).Seq)
	// The series start again from zero, lower than last time.
	d.unregister()
	d.register(t, Bounds[:])
	d.serve(apiIn, "200", "", 3, time.Millisecond)
	got := byKey(mustNext(t, s, time.Now()))[apiIn]
	if got.Requests != 3 || got.Buckets[1] != 3 {
		t.Errorf("after a reset: got %+v, want the 3 new requests, not a negative or huge delta", got)
	}
}

func TestSummarizerOtherBoundsGiveNoLatency(t *testing.T) {
	d := newDataPath(t, []float64{.1, 1})
	d.serve(apiIn, "200", "", 2, time.Millisecond)
	got := byKey(mustNext(t, NewSummarizer(d.reg), time.Now()))[apiIn]
	if got.Requests != 2 || got.Buckets != nil {
		t.Errorf("histogram with other bounds: got %+v, want 2 requests and no buckets", got)
	}
}

func TestSummarizerBootsDiffer(t *testing.T) {
	d := newDataPath(t, Bounds[:])
	if a, b := NewSummarizer(d.reg).boot, NewSummarizer(d.reg).boot; a == b {
		t.Errorf("two summarizers: got the same boot id %q, want different", a)
	}
}
