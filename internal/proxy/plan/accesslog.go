package plan

import (
	"bufio"
	"context"
	"encoding/json"
	"io"

	"github.com/prometheus/client_golang/prometheus"
)

// AccessLog writes one JSON line per request the sidecar served, as
// Record keeps it: the data path hands each record to a bounded queue
// and never waits; a goroutine of its own formats and writes them. A
// record the queue has no room for is dropped and counted.
//
//	Record -> offer (copy into the queue, or drop + count)
//	Run    -> format as JSON, write buffered, flush when the queue empties
type AccessLog struct {
	q       chan served
	out     *bufio.Writer
	dropped prometheus.Counter
}

// AccessLogQueue is how many records may wait to be written.
const AccessLogQueue = 4096

// accessLine is one line of the access log.
type accessLine struct {
	Time       string  `json:"time"` // RFC 3339, UTC, to the microsecond
	Direction  string  `json:"direction"`
	Source     string  `json:"source_service,omitempty"`
	Service    string  `json:"destination_service"`
	Backend    string  `json:"backend,omitempty"`
	Instance   string  `json:"instance,omitempty"`
	Method     string  `json:"method"`
	Path       string  `json:"path"`
	Status     int     `json:"status"`
	DurationMS float64 `json:"duration_ms"`
	Bytes      int64   `json:"bytes"`
	Attempts   int     `json:"attempts"`
	RequestID  string  `json:"request_id"`
	Route      string  `json:"route,omitempty"`
	Error      string  `json:"mesh_error,omitempty"` // the reason (x-weft-error) of the mesh's answer or last failure
}

// NewAccessLog writes to w, and counts what it drops in reg (may be nil).
func NewAccessLog(w io.Writer, reg prometheus.Registerer) *AccessLog {
	l := &AccessLog{q: make(chan served, AccessLogQueue), out: bufio.NewWriterSize(w, 64<<10),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "weft_access_log_dropped_total",
			Help: "Access log lines dropped because the writer fell behind (the data path never waits for it).",
		})}
	if reg != nil {
		reg.MustRegister(l.dropped)
	}
	return l
}

// offer queues a copy of e, or drops it when the queue is full. Nil-safe.
func (l *AccessLog) offer(_ *Cluster, e *served) {
	if l == nil {
		return
	}
	select {
	case l.q <- *e:
	default:
		l.dropped.Inc()
	}
}

// Run writes the queued records until ctx ends, then what is left.
func (l *AccessLog) Run(ctx context.Context) error {
	enc := json.NewEncoder(l.out)
	enc.SetEscapeHTML(false)
	write := func(e *served) {
		v := e.view()
		line := accessLine{Time: v.Time.UTC().Format("2006-01-02T15:04:05.000000Z07:00"), Direction: v.Direction, Source: v.Source,
			Service: v.Service, Backend: v.Backend, Instance: v.Instance, Method: v.Method, Path: v.Path, Status: v.Status,
			DurationMS: float64(v.Duration.Microseconds()) / 1000, Bytes: v.Bytes, Attempts: v.Attempts, RequestID: v.ID, Route: v.Rule}
		if v.Error != nil {
			line.Error = v.Error.Reason
		}
		_ = enc.Encode(&line) // (a failing writer loses lines, not requests)
	}
	for {
		select {
		case e := <-l.q:
			write(&e)
			if len(l.q) == 0 {
				_ = l.out.Flush()
			}
		case <-ctx.Done():
			for {
				select {
				case e := <-l.q:
					write(&e)
				default:
					return l.out.Flush()
				}
			}
		}
	}
}
