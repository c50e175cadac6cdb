package collect

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// The data path's series a Summarizer reads.
const (
	requestsMetric = "weft_requests_total"
	durationMetric = "weft_request_duration_seconds"
)

// Summarizer builds a sidecar's reports from its Prometheus registry:
// each is the growth of weft_requests_total and
// weft_request_duration_seconds since the last report the control plane
// acknowledged. It keeps one report pending until Acked, and gives that
// same report again until then, so a failed POST loses nothing and a
// lost answer counts nothing twice (the control plane drops a Seq it
// has).
type Summarizer struct {
	g    prometheus.Gatherer
	boot string

	mu      sync.Mutex
	seq     uint64         // of the last acknowledged report
	acked   map[Key]totals // the counters when it was taken
	pending *pending
}

type pending struct {
	rep    Report
	taken  time.Time
	totals map[Key]totals
}

// totals are one key's counters, summed over response codes.
type totals struct {
	requests, failures uint64
	buckets            [NumBuckets]uint64 // per bucket, not cumulative
}

// NewSummarizer reads g, which must be the registry the sidecar's data
// path counts into.
func NewSummarizer(g prometheus.Gatherer) *Summarizer {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return &Summarizer{g: g, boot: hex.EncodeToString(b), acked: map[Key]totals{}}
}

// Next is the report to send now: the pending one if there is one, else
// a new one with what grew since the last acknowledged report. ok is
// false when there is nothing to send. An error from gathering is
// returned with whatever could be read.
func (s *Summarizer) Next(now time.Time) (rep Report, ok bool, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pending == nil {
		cur, gerr := s.gather()
		if gerr != nil {
			err = fmt.Errorf("gather the data path's metrics: %w", gerr)
		}
		series := deltas(s.acked, cur)
		if len(series) == 0 {
			s.acked = cur // series gone from the registry are forgotten
			return Report{}, false, err
		}
		s.pending = &pending{rep: Report{Boot: s.boot, Seq: s.seq + 1, Series: series}, taken: now, totals: cur}
	}
	rep = s.pending.rep
	rep.AgeMillis = max(0, now.Sub(s.pending.taken).Milliseconds())
	return rep, true, err
}

// Pending reports whether a report waits for its acknowledgement: the
// next one Next gives is that one again.
func (s *Summarizer) Pending() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pending != nil
}

// Acked records that the control plane has the report numbered seq; the
// next report counts from it.
func (s *Summarizer) Acked(seq uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pending == nil || s.pending.rep.Seq != seq {
		return
	}
	s.acked, s.seq, s.pending = s.pending.totals, seq, nil
}

// deltas is cur less prev, key by key, leaving out keys that did not
// grow. A key whose counters went down was reset (its series started
// again from zero): all of it is new.
func deltas(prev, cur map[Key]totals) []Series {
	var out []Series
	for k, c := range cur {
		p := prev[k]
		if c.below(&p) {
			p = totals{}
		}
		d := Series{Key: k, Requests: c.requests - p.requests, Failures: c.failures - p.failures}
		var b [NumBuckets]uint64
		last, any := -1, false
		for i := range b {
			b[i] = c.buckets[i] - p.buckets[i]
			if b[i] != 0 {
				last, any = i, true
			}
		}
		if d.Requests == 0 && !any {
			continue
		}
		if any {
			d.Buckets = append([]uint64(nil), b[:last+1]...)
		}
		if d.validate() != nil {
			continue // not a series of the data path's (no direction): the control plane would refuse the report
		}
		out = append(out, d)
	}
	return out
}

// below reports whether any counter of t is lower than p's.
func (t *totals) below(p *totals) bool {
	if t.requests < p.requests || t.failures < p.failures {
		return true
	}
	for i := range t.buckets {
		if t.buckets[i] < p.buckets[i] {
			return true
		}
	}
	return false
}

// gather reads the registry into totals by key.
func (s *Summarizer) gather() (map[Key]totals, error) {
	mfs, err := s.g.Gather()
	out := map[Key]totals{}
	for _, mf := range mfs {
		switch mf.GetName() {
		case requestsMetric:
			for _, m := range mf.GetMetric() {
				k, code, grpc := keyOf(m)
				n := count(m.GetCounter().GetValue())
				t := out[k]
				t.requests += n
				if failed(code, grpc) {
					t.failures += n
				}
				out[k] = t
			}
		case durationMetric:
			for _, m := range mf.GetMetric() {
				k, _, _ := keyOf(m)
				t := out[k]
				addHistogram(&t, m.GetHistogram())
				out[k] = t
			}
		}
	}
	return out, err
}

// addHistogram adds h's buckets to t, when h has the fixed bounds; a
// histogram with other bounds (a sidecar of another version) gives no
// latency, rather than a wrong one.
func addHistogram(t *totals, h *dto.Histogram) {
	bs := h.GetBucket()
	if len(bs) > 0 && math.IsInf(bs[len(bs)-1].GetUpperBound(), 1) {
		bs = bs[:len(bs)-1]
	}
	if len(bs) != len(Bounds) {
		return
	}
	for i, b := range bs {
		if math.Abs(b.GetUpperBound()-Bounds[i]) > 1e-9 {
			return
		}
	}
	var prev uint64
	for i, b := range bs {
		c := b.GetCumulativeCount()
		t.buckets[i] += c - min(c, prev)
		prev = max(prev, c)
	}
	n := h.GetSampleCount()
	t.buckets[len(Bounds)] += n - min(n, prev)
}

func keyOf(m *dto.Metric) (k Key, code, grpc string) {
	for _, l := range m.GetLabel() {
		switch l.GetName() {
		case "direction":
			k.Direction = l.GetValue()
		case "source_service":
			k.Source = l.GetValue()
		case "destination_service":
			k.Destination = l.GetValue()
		case "route":
			k.Route = l.GetValue()
		case "response_code":
			code = l.GetValue()
		case "grpc_status":
			grpc = l.GetValue()
		}
	}
	if k.Source == "" {
		k.Source = "unknown"
	}
	if k.Destination == "" {
		k.Destination = "unknown"
	}
	return k, code, grpc
}

// failed is the failure rule: a 5xx answer, or a gRPC answer whose
// grpc-status is not 0.
func failed(code, grpc string) bool {
	return (len(code) == 3 && code[0] == '5') || (grpc != "" && grpc != "0")
}

func count(v float64) uint64 {
	if v <= 0 || math.IsNaN(v) {
		return 0
	}
	return uint64(math.Round(v))
}
