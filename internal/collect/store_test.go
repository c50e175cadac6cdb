package collect

import (
	"errors"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// newStore is a store on a clock 5 s into a slot.
func newStore(t *testing.T, max int) (*Store, *clock, *prometheus.Registry) {
	t.Helper()
	c := &clock{t: time.Unix(1_800_000_000, 0).Add(5 * time.Second)}
	reg := prometheus.NewRegistry()
	s, err := NewStore(Config{MaxSeries: max, Now: c.Now}, reg)
	if err != nil {
		t.Fatal(err)
	}
	return s, c, reg
}

// report is a report with one series of n requests, failed of them
// failures, all in bucket b.
func report(seq uint64, k Key, n, failed uint64, b int) *Report {
	buckets := make([]uint64, b+1)
	buckets[b] = n
	return &Report{Boot: "b1", Seq: seq, Series: []Series{{Key: k, Requests: n, Failures: failed, Buckets: buckets}}}
}

func ingest(t *testing.T, s *Store, service, instance string, r *Report) Ack {
	t.Helper()
	ack, err := s.Ingest(service, instance, r)
	if err != nil {
		t.Fatalf("Ingest: %v", err)
	}
	return ack
}

func TestStoreMergesInstancesIntoTheService(t *testing.T) {
	s, _, _ := newStore(t, 0)
	ingest(t, s, "api", "api-1", report(1, apiIn, 10, 1, 3))
	ingest(t, s, "api", "api-2", report(1, apiIn, 30, 3, 3))
	ingest(t, s, "web", "web-1", report(1, webToAPI, 40, 4, 3))
	svc := s.Service("api", time.Minute)
	if svc.Requests != 40 || svc.Failures != 4 || svc.SuccessRate != 0.9 {
		t.Errorf("service: got %+v, want 40 requests, 4 failures, success 0.9", svc)
	}
	if got := svc.RPS; got != 40.0/60 {
		t.Errorf("rps: got %v, want %v", got, 40.0/60)
	}
	if one := s.Instance("api", "api-2", time.Minute); one.Requests != 30 {
		t.Errorf("instance api-2: got %d requests, want 30", one.Requests)
	}
	st, ok := s.ServiceStats("api", time.Minute)
	if !ok || len(st.Instances) != 2 || st.Instances[0].Instance != "api-1" || st.Instances[1].Requests != 30 {
		t.Errorf("service stats: got %+v (ok %v), want api-1 and api-2 with 10 and 30", st, ok)
	}
	if len(st.Buckets) != NumBuckets || st.Buckets[3] != 40 || st.Instances[0].Buckets[3] != 10 {
		t.Errorf("histograms: got %v and api-1's %v, want 40 and 10 in bucket 3", st.Buckets, st.Instances[0].Buckets)
	}
	if e := s.Edge("web", "api", time.Minute); e.Requests != 40 || e.Failures != 4 {
		t.Errorf("edge web -> api: got %+v, want 40 and 4", e)
	}
	if e := s.Edge("api", "web", time.Minute); e.Requests != 0 || e.SuccessRate != 1 {
		t.Errorf("no such edge: got %+v, want nothing and success 1", e)
	}
	if list := s.Services(time.Minute); len(list) != 1 || list[0].Service != "api" {
		t.Errorf("services: got %+v, want api only (web sent outbound series only)", list)
	}
	if list := s.Edges(time.Minute); len(list) != 1 || list[0].Source != "web" || list[0].Destination != "api" {
		t.Errorf("edges: got %+v, want web -> api", list)
	}
	if _, ok := s.ServiceStats("nope", time.Minute); ok {
		t.Error("unknown service: got ok, want not")
	}
}

func TestStoreWindows(t *testing.T) {
	s, c, _ := newStore(t, 0)
	ingest(t, s, "api", "api-1", report(1, apiIn, 5, 0, 2)) // 45 minutes ago, by the end
	c.advance(44 * time.Minute)
	ingest(t, s, "api", "api-1", report(2, apiIn, 7, 0, 2)) // 1 minute ago
	c.advance(time.Minute)
	ingest(t, s, "api", "api-1", report(3, apiIn, 11, 0, 2)) // now
	r := report(4, apiIn, 13, 0, 2)
	r.AgeMillis = 25_000 // taken 25 s ago: filed then, not now
	ingest(t, s, "api", "api-1", r)
	cases := []struct {
		window time.Duration
		want   uint64
	}{
		{10 * time.Second, 11},
		{30 * time.Second, 11 + 13},
		{2 * time.Minute, 7 + 11 + 13},
		{time.Hour, 5 + 7 + 11 + 13},
	}
	for _, tc := range cases {
		if got := s.Service("api", tc.window).Requests; got != tc.want {
			t.Errorf("window %s: got %d requests, want %d", tc.window, got, tc.want)
		}
	}
	ancient := report(5, apiIn, 17, 0, 2)
	ancient.AgeMillis = math.MaxInt64 // filed in the oldest slot, not lost
	ingest(t, s, "api", "api-1", ancient)
	if got, want := s.Service("api", time.Hour).Requests, uint64(5+7+11+13+17); got != want {
		t.Errorf("with a report of an age past the hour: got %d requests over the hour, want %d", got, want)
	}
	if got := s.Service("api", 50*time.Minute).Requests; got != 5+7+11+13 {
		t.Errorf("with a report of an age past the hour: got %d requests over 50m, want %d (it is in the oldest slot)", got, 5+7+11+13)
	}
	c.advance(16 * time.Minute) // the first reports are now over an hour old
	if got := s.Service("api", time.Hour).Requests; got != 7+11+13 {
		t.Errorf("an hour later: got %d requests, want %d (the oldest slot gone)", got, 7+11+13)
	}
}

func TestStoreAppliesEachReportOnce(t *testing.T) {
	s, _, _ := newStore(t, 0)
	r := report(1, apiIn, 5, 0, 2)
	if ack := ingest(t, s, "api", "api-1", r); !ack.Applied || ack.Seq != 1 {
		t.Errorf("first: got %+v, want applied seq 1", ack)
	}
	if ack := ingest(t, s, "api", "api-1", r); ack.Applied || ack.Seq != 1 {
		t.Errorf("sent again (its answer was lost): got %+v, want acknowledged, not applied", ack)
	}
	ingest(t, s, "api", "api-1", report(2, apiIn, 3, 0, 2))
	restarted := report(1, apiIn, 4, 0, 2)
	restarted.Boot = "b2"
	if ack := ingest(t, s, "api", "api-1", restarted); !ack.Applied {
		t.Errorf("a restarted sidecar's seq 1: got %+v, want applied", ack)
	}
	if got := s.Service("api", time.Minute).Requests; got != 5+3+4 {
		t.Errorf("requests: got %d, want %d", got, 5+3+4)
	}
}

func TestStoreBounded(t *testing.T) {
	s, c, reg := newStore(t, 2)
	ingest(t, s, "api", "api-1", report(1, apiIn, 1, 0, 0))
	ingest(t, s, "web", "web-1", report(1, webToAPI, 1, 0, 0))
	ingest(t, s, "api", "api-2", report(1, apiIn, 1, 0, 0)) // a third series: over the limit
	ingest(t, s, "api", "api-1", report(2, apiIn, 1, 0, 0)) // an existing one still grows
	if got := gauge(t, reg, "weft_collect_series_dropped_total"); got != 1 {
		t.Errorf("dropped: got %v, want 1", got)
	}
	if got := s.Service("api", time.Minute).Requests; got != 2 {
		t.Errorf("api: got %d requests, want 2 (api-1 only)", got)
	}
	if got := gauge(t, reg, "weft_collect_series"); got != 2 {
		t.Errorf("weft_collect_series: got %v, want 2", got)
	}
	// An hour without reports: forgotten, room again.
	c.advance(Retention + time.Minute)
	ingest(t, s, "api", "api-3", report(1, apiIn, 1, 0, 0))
	if st, _ := s.ServiceStats("api", time.Hour); len(st.Instances) != 1 || st.Instances[0].Instance != "api-3" {
		t.Errorf("after an hour: got %+v, want api-3 only", st.Instances)
	}
	if _, ok := s.senders[sender{"web", "web-1"}]; ok {
		t.Error("a sidecar silent for an hour is still remembered")
	}
}

func TestQuantile(t *testing.T) {
	var one [NumBuckets]uint64
	one[3] = 100 // all in (.0025, .005]
	var split [NumBuckets]uint64
	split[0], split[len(Bounds)] = 50, 50 // half under .5 ms, half over 10 s
	cases := []struct {
		name string
		q    float64
		b    [NumBuckets]uint64
		want time.Duration
	}{
		{"empty", 0.5, [NumBuckets]uint64{}, 0},
		{"median within a bucket", 0.5, one, 3750 * time.Microsecond},
		{"p99 within a bucket", 0.99, one, 4975 * time.Microsecond},
		{"first bucket from zero", 0.5, split, 500 * time.Microsecond},
		{"past every bound: the highest bound", 0.99, split, 10 * time.Second},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := quantile(tc.q, &tc.b); got != tc.want {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestStoreMergesHistograms(t *testing.T) {
	s, _, _ := newStore(t, 0)
	ingest(t, s, "api", "api-1", report(1, apiIn, 99, 0, 1)) // (.5, 1] ms
	ingest(t, s, "api", "api-2", report(1, apiIn, 1, 0, 8))  // (.1, .25] s
	g := s.Service("api", time.Minute)
	// Rank 50 of 100 falls in api-1's bucket, 50 of its 99 up it.
	if want := seconds(.0005 + .0005*50/99); g.P50 != want || g.P99 != time.Millisecond {
		t.Errorf("merged: got p50 %v p99 %v, want %v and 1ms", g.P50, g.P99, want)
	}
	if g.P95 < 500*time.Microsecond || g.P95 > time.Millisecond {
		t.Errorf("merged p95: got %v, want within (.5ms, 1ms]", g.P95)
	}
}

func TestReportValidate(t *testing.T) {
	ok := func() *Report { return report(1, apiIn, 2, 1, 0) }
	cases := []struct {
		name  string
		edit  func(r *Report)
		field string
	}{
		{"no boot", func(r *Report) { r.Boot = "" }, "boot"},
		{"seq 0", func(r *Report) { r.Seq = 0 }, "seq"},
		{"negative age", func(r *Report) { r.AgeMillis = -1 }, "ageMs"},
		{"unknown direction", func(r *Report) { r.Series[0].Direction = "sideways" }, "series[0].direction"},
		{"no destination", func(r *Report) { r.Series[0].Destination = "" }, "series[0].destination"},
		{"more failures than requests", func(r *Report) { r.Series[0].Failures = 3 }, "series[0].failures"},
		{"too many buckets", func(r *Report) { r.Series[0].Buckets = make([]uint64, NumBuckets+1) }, "series[0].buckets"},
	}
	if err := ok().Validate(); err != nil {
		t.Fatalf("a good report: %v", err)
	}
	s, _, _ := newStore(t, 0)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := ok()
			tc.edit(r)
			_, err := s.Ingest("api", "api-1", r)
			if err == nil || !strings.HasPrefix(err.Error(), "bad report: "+tc.field) || !errors.Is(err, ErrBadReport) {
				t.Errorf("got %v, want a bad report naming %s", err, tc.field)
			}
		})
	}
}

func TestParseWindow(t *testing.T) {
	cases := []struct {
		in      string
		want    time.Duration
		wantErr bool
	}{
		{"", time.Minute, false},
		{"5m", 5 * time.Minute, false},
		{"15s", 20 * time.Second, false},
		{"1h", time.Hour, false},
		{"5s", 0, true},
		{"2h", 0, true},
		{"soon", 0, true},
	}
	for _, tc := range cases {
		got, err := ParseWindow(tc.in)
		if got != tc.want || (err != nil) != tc.wantErr {
			t.Errorf("ParseWindow(%q): got %v, %v; want %v, error %v", tc.in, got, err, tc.want, tc.wantErr)
		}
	}
}

// gauge is the value of the one series of a metric without labels.
func gauge(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			m := mf.GetMetric()[0]
			return m.GetGauge().GetValue() + m.GetCounter().GetValue()
		}
	}
	t.Fatalf("%s: not gathered", name)
	return 0
}

func TestFormatWindow(t *testing.T) {
	for d, want := range map[time.Duration]string{time.Minute: "1m", 90 * time.Second: "1m30s", time.Hour: "1h", 20 * time.Second: "20s", 70 * time.Minute: "1h10m"} {
		if got := FormatWindow(d); got != want {
			t.Errorf("FormatWindow(%v): got %q, want %q", d, got, want)
		}
	}
}
