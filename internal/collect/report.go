package collect

import (
	"errors"
	"fmt"
	"time"
)

// Bounds are the upper bounds, in seconds, of the data path's latency
// histogram (weft_request_duration_seconds). They are fixed, so
// histograms from any sidecar merge by adding bucket counts.
var Bounds = [...]float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

// NumBuckets is the number of histogram buckets: one per bound, and the
// last for answers slower than every bound.
const NumBuckets = len(Bounds) + 1

// Directions of the data path's series, as the metrics label them.
const (
	Outbound = "outbound" // counted by the caller's sidecar
	Inbound  = "inbound"  // counted by the callee's sidecar
	Egress   = "egress"   // to a host outside the mesh
	Mirror   = "mirror"   // answers to mirrored copies
)

// Limits of a Report the control plane accepts.
const (
	MaxReportSeries = 10_000
	maxNameLen      = 253
	maxBootLen      = 64
)

// Report is what a sidecar sends every interval: what its counters grew
// by since the last report the control plane acknowledged.
//
// A report not acknowledged (the POST failed, or its answer was lost) is
// sent again, unchanged, with the same Boot and Seq; the control plane
// applies each (Boot, Seq) once, so nothing is lost and nothing counts
// twice.
type Report struct {
	// Boot names one run of the sidecar (random at start); Seq numbers
	// its reports from 1.
	Boot string `json:"boot"`
	Seq  uint64 `json:"seq"`
	// AgeMillis is how long before it was sent the report was taken, by
	// the sidecar's clock: the control plane files the figures under
	// the time they were taken without comparing clocks.
	AgeMillis int64    `json:"ageMs"`
	Series    []Series `json:"series"`
}

// Series is one key's growth since the last acknowledged report.
type Series struct {
	Key
	// Requests is how many answers; Failures how many of them were 5xx,
	// or gRPC with a grpc-status other than 0.
	Requests uint64 `json:"requests"`
	Failures uint64 `json:"failures,omitempty"`
	// Buckets are the latency histogram's counts per bucket (not
	// cumulative), in the order of Bounds, the last for slower answers;
	// trailing empty buckets are left out.
	Buckets []uint64 `json:"buckets,omitempty"`
}

// Key is what a sidecar's series are summed by: every response code and
// grpc-status of one key add up to one Series.
type Key struct {
	Direction   string `json:"direction"`
	Source      string `json:"source"`
	Destination string `json:"destination"`
	Route       string `json:"route,omitempty"`
}

// Ack is the control plane's answer to a report. Applied is false for a
// report it had applied already (sent again after a lost answer).
type Ack struct {
	Seq     uint64 `json:"seq"`
	Applied bool   `json:"applied"`
}

// Validate checks a report and names the field that is wrong.
func (r *Report) Validate() error {
	switch {
	case r.Boot == "":
		return errors.New("boot: must not be empty")
	case len(r.Boot) > maxBootLen:
		return fmt.Errorf("boot: %d bytes, at most %d", len(r.Boot), maxBootLen)
	case r.Seq == 0:
		return errors.New("seq: must be 1 or more")
	case r.AgeMillis < 0:
		return fmt.Errorf("ageMs %d: must not be negative", r.AgeMillis)
	case len(r.Series) > MaxReportSeries:
		return fmt.Errorf("series: %d, at most %d in one report", len(r.Series), MaxReportSeries)
	}
	for i := range r.Series {
		if err := r.Series[i].validate(); err != nil {
			return fmt.Errorf("series[%d].%w", i, err)
		}
	}
	return nil
}

func (s *Series) validate() error {
	switch s.Direction {
	case Outbound, Inbound, Egress, Mirror:
	default:
		return fmt.Errorf("direction %q: want %s, %s, %s or %s", s.Direction, Outbound, Inbound, Egress, Mirror)
	}
	for _, f := range []struct{ name, v string }{{"source", s.Source}, {"destination", s.Destination}} {
		if f.v == "" {
			return fmt.Errorf("%s: must not be empty", f.name)
		}
		if len(f.v) > maxNameLen {
			return fmt.Errorf("%s: %d bytes, at most %d", f.name, len(f.v), maxNameLen)
		}
	}
	if len(s.Route) > maxNameLen {
		return fmt.Errorf("route: %d bytes, at most %d", len(s.Route), maxNameLen)
	}
	if s.Failures > s.Requests {
		return fmt.Errorf("failures %d: more than requests %d", s.Failures, s.Requests)
	}
	if len(s.Buckets) > NumBuckets {
		return fmt.Errorf("buckets: %d, at most %d (the fixed bounds and one for slower answers)", len(s.Buckets), NumBuckets)
	}
	return nil
}

// Age is the report's AgeMillis as a duration, at most Retention: older
// figures are filed in the oldest slot, not lost.
func (r *Report) Age() time.Duration {
	return time.Duration(min(max(r.AgeMillis, 0), Retention.Milliseconds())) * time.Millisecond
}
