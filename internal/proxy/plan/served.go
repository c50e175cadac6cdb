package plan

import (
	"encoding/hex"
	"math/rand/v2"
	"net"
	"slices"
	"sync"
	"time"

	"github.com/weftmesh/weft/internal/config"
)

// Requests served, kept for weft explain --request-id: every engine
// records each request that went through a cluster of the routing table
// (Cluster.Record), with the x-request-id it carried or was given
// (NewRequestID), in a ring of the last RecentSize; the admin API finds
// one by its id.

// RequestIDHeader names the header that identifies a request across the
// mesh (Envoy's and Istio's): passed on when the client sent one, made
// by the first sidecar when it did not.
const RequestIDHeader = "X-Request-Id"

// MaxRequestID is the longest x-request-id passed on: a longer one, or
// an empty one, is replaced by a new one (ValidRequestID).
const MaxRequestID = 128

// ValidRequestID reports whether a client's x-request-id is passed on
// as it is.
func ValidRequestID[T ~string | ~[]byte](id T) bool { return len(id) > 0 && len(id) <= MaxRequestID }

// RecentSize is how many requests a sidecar keeps for explain.
const RecentSize = 1024

// NewRequestID writes a new request id (32 hex digits, random) into
// buf and returns it.
func NewRequestID(buf *[32]byte) []byte {
	var b [16]byte
	a, c := rand.Uint64(), rand.Uint64()
	for i := range 8 {
		b[i], b[8+i] = byte(a>>(8*i)), byte(c>>(8*i))
	}
	hex.Encode(buf[:], b[:])
	return buf[:]
}

// Served is what a sidecar kept of one request it sent.
type Served struct {
	ID       string        `json:"id"`
	Time     time.Time     `json:"time"`
	Duration time.Duration `json:"duration"`
	Method   string        `json:"method"`
	Path     string        `json:"path"` // up to its first 128 bytes
	// Direction is outbound (this sidecar's app called) or inbound (a
	// caller reached this sidecar's app); Source the calling service
	// ("": not known), Service the service called.
	Direction string `json:"direction"`
	Source    string `json:"source,omitempty"`
	Service   string `json:"service"`
	// Rule is the route rule that decided ("": the service has no routes).
	Rule string `json:"rule,omitempty"`
	// Authorization is what the inbound's AuthorizationPolicies decided,
	// "allowed by AuthorizationPolicy/NAME rule N" ("": none in force).
	Authorization string `json:"authorization,omitempty"`
	// Backend is the cluster the request went to: the service, or a
	// subset "service/subset".
	Backend string `json:"backend,omitempty"`
	// Instance is the last instance tried, and Attempts how many tries
	// were made.
	Instance string `json:"instance,omitempty"`
	Attempts int    `json:"attempts"`
	Status   int    `json:"status"`
	// Bytes is the response body's length when it was declared (-1: not
	// known, a chunked or streamed body).
	Bytes int64 `json:"bytes"`
	// BytesReceived is, for a TCP connection (method TCP or CONNECT),
	// the bytes from the client; Bytes those sent back.
	BytesReceived int64 `json:"bytesReceived,omitempty"`
	// Error is the mesh's answer when it made one, or the last failure
	// before another instance answered.
	Error *MeshError `json:"error,omitempty"`
	// TraceID is the request's trace ("": not traced), sampled or not:
	// weft traces TRACE_ID shows it when it was.
	TraceID string `json:"traceId,omitempty"`
}

// served is a Served in the ring: fixed arrays for what the engine has
// as bytes, so that recording allocates nothing.
type served struct {
	id, path         [128]byte // (an id longer than 128 bytes is not kept)
	idLen, pathLen   uint16
	method           [16]byte
	methodLen        uint8
	src              [64]byte // the x-weft-source an inbound request named
	srcLen           uint8
	at               time.Time
	took             time.Duration
	bytes            int64
	service, backend string
	direction, from  string // from: the calling service when this sidecar is it
	rule, instance   string
	authz            string
	attempts, status int
	err              *MeshError
	trace            [16]byte // the trace id (all zero: none)
	received         int64    // a TCP connection's bytes from the client (-1: not one)
}

// Recent is the ring of requests served. Its methods are safe for
// concurrent use, and nil-safe.
type Recent struct {
	mu   sync.Mutex
	ring [RecentSize]served
	next int
	n    int
}

// Visit is one request to record: what the engine knows of it besides
// its id, method and path.
type Visit struct {
	Start, End time.Time
	Status     int
	// Call is the request's plan (nil: the route stage answered before
	// one began); Rule the route rule that decided (Routed.RuleRef).
	Call *Call
	Rule string
	// Authorization is the inbound's authorization decision
	// (Routed.Authorization); "": a denial's is read from Err, and an
	// allowed request's from Call.
	Authorization string
	// Err is the mesh's own answer, when the route stage made one.
	Err *MeshError
	// Bytes is the response body's declared length (-1: not known).
	Bytes int64
	conn  *Conn // a TCP connection's (RecordConn)
}

// Record keeps one request in the ring of c's table (and its access
// log), with its id, method, path and, inbound, the calling service as
// the HTTP/1.1 engine has them (nothing when c records nothing, or the
// id is empty or longer than 128 bytes).
func (c *Cluster) Record(v *Visit, id, method, path, source []byte) {
	if e := c.slot(len(id)); e != nil {
		keep(e, id, method, path, source)
		c.fill(e, v)
	}
}

// RecordString is Record for an engine that has them as strings.
func (c *Cluster) RecordString(v *Visit, id, method, path, source string) {
	if e := c.slot(len(id)); e != nil {
		keep(e, id, method, path, source)
		c.fill(e, v)
	}
}

// Conn is one TCP connection forwarded as bytes, to record.
type Conn struct {
	Start, End time.Time
	// Endpoint is the instance it went to (nil: none, Err says why).
	Endpoint *Endpoint
	// Received and Sent are the bytes from and back to the client.
	Received, Sent int64
	// Idle: closed by the idle timeout. Tunnel: an HTTP CONNECT tunnel.
	Idle, Tunnel bool
	// Source is the client's address; Peer the calling service its
	// mutual TLS proved ("": none; an inbound records "unknown").
	Source net.Addr
	Peer   string
	Err    *MeshError
}

// RecordConn keeps a TCP connection in the ring of c's table and its
// access log, with a new id, method TCP (CONNECT for a tunnel), the
// client's address as path and, inbound, its peer as the source.
func (c *Cluster) RecordConn(conn Conn) {
	var idBuf [32]byte
	id := NewRequestID(&idBuf)
	e := c.slot(len(id))
	if e == nil {
		return
	}
	method, path := "TCP", ""
	if conn.Tunnel {
		method = "CONNECT"
	}
	if conn.Source != nil {
		path = conn.Source.String()
	}
	source := conn.Peer
	if source == "" && c.metrics != nil && c.metrics.direction == "inbound" {
		source = UnknownSource // a plain connection, as its metrics say
	}
	keep(e, id, BytesOf(method), BytesOf(path), BytesOf(source))
	status := 0
	if conn.Err != nil {
		status = conn.Err.Status
	}
	c.fill(e, &Visit{Start: conn.Start, End: conn.End, Status: status, Err: conn.Err, Bytes: conn.Sent, conn: &conn})
}

// keep copies a request's id, method, path and source into e.
func keep[T ~string | ~[]byte](e *served, id, method, path, source T) {
	e.idLen = uint16(copy(e.id[:], id))
	e.pathLen = uint16(copy(e.path[:], path))
	e.methodLen = uint8(copy(e.method[:], method))
	e.srcLen = uint8(copy(e.src[:], source))
}

// RecordInto makes c record its requests into r and l (either may be
// nil): for a cluster outside the table, the inbound's. Call it before
// serving.
func (c *Cluster) RecordInto(r *Recent, l *AccessLog) { c.recent, c.log = r, l }

// SetTracer makes c trace its requests with t (nil: off), for a cluster
// outside a table (the inbound's). Call it before c serves.
func (c *Cluster) SetTracer(t *Tracer) { c.tracer = t }

// slot takes the ring's next entry, locked (fill unlocks), or is nil
// when nothing is recorded.
func (c *Cluster) slot(idLen int) *served {
	if c == nil || c.recent == nil || idLen == 0 || idLen > len(served{}.id) {
		return nil
	}
	r := c.recent
	r.mu.Lock()
	e := &r.ring[r.next]
	r.next = (r.next + 1) % RecentSize
	r.n = min(r.n+1, RecentSize)
	return e
}

func (c *Cluster) fill(e *served, v *Visit) {
	e.at, e.took, e.status, e.bytes = v.Start, v.End.Sub(v.Start), v.Status, v.Bytes
	e.service, e.backend, e.rule, e.instance, e.attempts, e.err = c.Service, "", "", "", 0, v.Err
	e.direction, e.from = "outbound", c.Source
	if c.metrics != nil {
		e.direction = c.metrics.direction
	}
	e.rule = v.Rule
	e.authz = v.Authorization
	if v.Err != nil && v.Err.authz != "" {
		e.authz = v.Err.authz
		if e.srcLen == 0 { // (an engine that names no source with the route stage's answer)
			e.srcLen = uint8(copy(e.src[:], v.Err.source))
		}
	}
	e.trace, e.received = [16]byte{}, -1
	if cn := v.conn; cn != nil {
		e.received, e.attempts = cn.Received, 1
		if cn.Endpoint != nil {
			e.instance = cn.Endpoint.Instance
		}
	}
	if k := v.Call; k != nil && k.c != nil {
		if id, ok := k.TraceID(); ok {
			e.trace = id
		}
		e.backend = k.c.name()
		e.attempts = k.attempts
		if ep := k.Endpoint(); ep != nil {
			e.instance = ep.Instance
		}
		if e.err == nil {
			e.err = k.last
		}
		if e.authz == "" {
			e.authz = k.authz
		}
	}
	c.log.offer(e)
	c.recent.mu.Unlock()
}

// Find returns the most recent request recorded with id that this
// sidecar sent (outbound), or else the most recent it took in: an app
// that passes the id on makes one of each, and what the sidecar decided
// is the outbound one.
func (r *Recent) Find(id string) (Served, bool) {
	if r == nil {
		return Served{}, false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	var inbound *served
	for i := 1; i <= r.n; i++ {
		e := &r.ring[(r.next-i+RecentSize)%RecentSize]
		if string(e.id[:e.idLen]) != id {
			continue
		}
		if e.direction != "inbound" {
			return e.view(), true
		}
		if inbound == nil {
			inbound = e
		}
	}
	if inbound != nil {
		return inbound.view(), true
	}
	return Served{}, false
}

// Since returns, oldest first, the last limit requests recorded after
// t (weft top's sample).
func (r *Recent) Since(t time.Time, limit int) []Served {
	if r == nil {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []Served
	for i := 1; i <= r.n && len(out) < limit; i++ {
		e := &r.ring[(r.next-i+RecentSize)%RecentSize]
		if !e.at.Add(e.took).After(t) {
			break // (records are kept in the order requests ended)
		}
		out = append(out, e.view())
	}
	slices.Reverse(out)
	return out
}

// view is e as a Served.
func (e *served) view() Served {
	return Served{ID: string(e.id[:e.idLen]), Time: e.at, Duration: e.took, Method: string(e.method[:e.methodLen]),
		Path: string(e.path[:e.pathLen]), Direction: e.direction, Source: e.source(), Service: e.service, Rule: e.rule, Authorization: e.authz,
		Backend: e.backend, Instance: e.instance, Attempts: e.attempts, Status: e.status, Bytes: e.bytes, Error: e.err,
		TraceID: e.traceID(), BytesReceived: max(e.received, 0)}
}

// traceID is e's trace id in hex ("": none).
func (e *served) traceID() string {
	if e.trace == [16]byte{} {
		return ""
	}
	return hex.EncodeToString(e.trace[:])
}

// source is the calling service: this sidecar's for the requests it
// sends, else the one the request named (inbound).
func (e *served) source() string {
	if e.from != "" {
		return e.from
	}
	return string(e.src[:e.srcLen])
}

// RuleRef names the route rule that decided ("": none).
func (r *Routed) RuleRef() string {
	if r.rule == nil {
		return ""
	}
	return r.rule.ref
}

// RouteName names the route resource whose rule decided, as metrics
// label it ("": none).
func (r *Routed) RouteName() string {
	if r.rule == nil {
		return ""
	}
	return r.rule.r.Route
}

// RulePath is the path the deciding rule matches, for spans' http.route
// ("": none, or a regular expression).
func (r *Routed) RulePath() string {
	if r.rule == nil || r.rule.r.PathType == config.PathRegex {
		return ""
	}
	return r.rule.r.Path
}

// Recent is the ring of requests the table's clusters record.
func (t *Table) Recent() *Recent { return t.recent }
