package plan

import (
	"bufio"
	"context"
	"encoding/hex"
	"io"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
)

// AccessLog writes one JSON line per request the sidecar served, as
// Record keeps it: the data path hands each record to a bounded queue
// and never waits; a goroutine of its own formats and writes them. A
// record the queue has no room for is dropped and counted.
//
//	Record -> offer (copy into the queue, or drop + count)
//	Run    -> every 50 ms: format each as JSON, write buffered, flush
type AccessLog struct {
	q       chan served
	out     *bufio.Writer
	dropped prometheus.Counter
}

// AccessLogQueue is how many records may wait to be written, and
// AccessLogEvery how often they are: 4,096 in 50 ms is 80,000 requests
// a second.
const (
	AccessLogQueue = 4096
	AccessLogEvery = 50 * time.Millisecond
)

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
func (l *AccessLog) offer(e *served) {
	if l == nil {
		return
	}
	select {
	case l.q <- *e:
	default:
		l.dropped.Inc()
	}
}

// Run writes the queued records until ctx ends, then what is left. It
// drains the queue every AccessLogEvery, not on each record: a record
// costs the data path a copy into the queue and nothing else (no
// goroutine woken, no write of its own).
func (l *AccessLog) Run(ctx context.Context) error {
	buf := make([]byte, 0, 1024)
	drain := func() error {
		for {
			select {
			case e := <-l.q:
				buf = e.appendJSON(buf[:0])
				_, _ = l.out.Write(buf) // (a failing writer loses lines, not requests)
			default:
				return l.out.Flush()
			}
		}
	}
	tick := time.NewTicker(AccessLogEvery)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
			_ = drain()
		case <-ctx.Done():
			return drain()
		}
	}
}

// appendJSON appends e as one line of the access log, without
// allocating (the writer keeps up with the data path on one CPU):
//
//	{"time":"…Z","direction":"outbound","source_service":"web",
//	 "destination_service":"catalog","backend":"catalog/v2",
//	 "instance":"catalog-v2","method":"GET","path":"/items","status":200,
//	 "duration_ms":0.575,"bytes":1024,"attempts":1,"request_id":"…",
//	 "route":"HTTPRoute/catalog rule 0","mesh_error":"upstream-reset"}
//
// A TCP connection's line has method TCP (CONNECT for a tunnel), the
// client's address as path, bytes_received, and, when the inbound's
// authorization denied it, "mesh_error":"denied" and the decision:
//
//	"authorization":"denied by AuthorizationPolicy/echo-deny rule 0"
func (e *served) appendJSON(b []byte) []byte {
	b = append(b, `{"time":"`...)
	b = e.at.UTC().AppendFormat(b, "2006-01-02T15:04:05.000000Z07:00")
	b = append(b, `","direction":`...)
	b = appendJSONString(b, e.direction)
	switch {
	case e.from != "":
		b = append(b, `,"source_service":`...)
		b = appendJSONString(b, e.from)
	case e.srcLen > 0:
		b = append(b, `,"source_service":`...)
		b = appendJSONString(b, e.src[:e.srcLen])
	}
	b = append(b, `,"destination_service":`...)
	b = appendJSONString(b, e.service)
	if e.backend != "" {
		b = append(b, `,"backend":`...)
		b = appendJSONString(b, e.backend)
	}
	if e.instance != "" {
		b = append(b, `,"instance":`...)
		b = appendJSONString(b, e.instance)
	}
	b = append(b, `,"method":`...)
	b = appendJSONString(b, e.method[:e.methodLen])
	b = append(b, `,"path":`...)
	b = appendJSONString(b, e.path[:e.pathLen])
	b = append(b, `,"status":`...)
	b = strconv.AppendInt(b, int64(e.status), 10)
	b = append(b, `,"duration_ms":`...)
	b = strconv.AppendFloat(b, float64(e.took.Microseconds())/1000, 'f', -1, 64)
	b = append(b, `,"bytes":`...)
	b = strconv.AppendInt(b, e.bytes, 10)
	if e.received >= 0 { // a TCP connection: bytes is what it sent back
		b = append(b, `,"bytes_received":`...)
		b = strconv.AppendInt(b, e.received, 10)
	}
	b = append(b, `,"attempts":`...)
	b = strconv.AppendInt(b, int64(e.attempts), 10)
	b = append(b, `,"request_id":`...)
	b = appendJSONString(b, e.id[:e.idLen])
	if e.trace != [16]byte{} {
		var id [32]byte
		hex.Encode(id[:], e.trace[:])
		b = append(b, `,"trace_id":"`...)
		b = append(b, id[:]...)
		b = append(b, '"')
	}
	if e.rule != "" {
		b = append(b, `,"route":`...)
		b = appendJSONString(b, e.rule)
	}
	if e.err != nil && e.err.Reason != "" {
		b = append(b, `,"mesh_error":`...)
		b = appendJSONString(b, e.err.Reason)
	}
	if e.received >= 0 && e.authz != "" { // a TCP connection's decision: no request id explains it
		b = append(b, `,"authorization":`...)
		b = appendJSONString(b, e.authz)
	}
	return append(b, "}\n"...)
}

// appendJSONString appends s as a JSON string: quotes, backslashes and
// control characters escaped, bytes that are not UTF-8 as U+FFFD.
func appendJSONString[T ~string | ~[]byte](b []byte, s T) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
			i++
		case c < 0x20:
			b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&15])
			i++
		case c < utf8.RuneSelf:
			b = append(b, c)
			i++
		default:
			r, size := utf8.DecodeRuneInString(string(s[i:min(i+utf8.UTFMax, len(s))]))
			if r == utf8.RuneError && size == 1 {
				b = append(b, `\ufffd`...)
			} else {
				b = append(b, s[i:i+size]...)
			}
			i += size
		}
	}
	return append(b, '"')
}
