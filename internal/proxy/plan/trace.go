package plan

import (
	"context"
	"encoding/hex"
	"math/rand/v2"
	"strconv"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	oteltrace "go.opentelemetry.io/otel/trace"

	"github.com/weftmesh/weft/internal/endpoint"
)

// Spans: with a Tracer, each attempt of a request's plan is a span, the
// same for every engine. Outbound attempts are client spans (one per
// try, http.request.resend_count from the second on); the inbound's one
// attempt is the server span. The caller's trace context comes from the
// request (W3C traceparent and tracestate, else B3), and each try carries
// its own span on as traceparent:
//
//	Init   -> parse the caller's context; decide: follow its sampled
//	          flag, or draw the Tracer's ratio for a trace that begins here
//	Next   -> sampled: a span begins for the attempt
//	engine -> writes TraceParent in place of the client's traceparent
//	Failed, RetryStatus, Overflowed, Cancelled -> that attempt's span ends
//	End    -> the last span ends with the status the caller got
//
// A request not sampled costs no span: its context is passed on as it
// came, or, when it had none, as a new unsampled one, so that every hop
// after follows the first hop's decision.

// Trace context headers.
const (
	TraceParentHeader = "traceparent"
	TraceStateHeader  = "tracestate"
	// B3 headers, accepted when a request has no traceparent (and passed
	// on as they came).
	B3Header        = "b3"
	B3TraceIDHeader = "x-b3-traceid"
	B3SpanIDHeader  = "x-b3-spanid"
	B3SampledHeader = "x-b3-sampled"
	B3FlagsHeader   = "x-b3-flags"
)

// TraceParentLen is the length of a traceparent value this hop writes.
const TraceParentLen = 55

// Tracer makes the spans of a sidecar's requests through an
// OpenTelemetry tracer. Nil-safe: a nil Tracer traces nothing.
type Tracer struct {
	t oteltrace.Tracer
	// threshold: a trace that begins here is sampled when the upper 63
	// bits of its random draw fall under it (ratio × 2^63).
	threshold uint64
}

// NewTracer returns a Tracer that sends spans through t and samples
// ratio (0 to 1) of the traces that begin at this sidecar; a trace
// begun elsewhere is sampled as its caller decided.
func NewTracer(t oteltrace.Tracer, ratio float64) *Tracer {
	ratio = min(max(ratio, 0), 1)
	return &Tracer{t: t, threshold: uint64(ratio * (1 << 63))}
}

// callTrace is a Call's tracing state.
type callTrace struct {
	tr *Tracer
	// caller is the trace context the request came with (Valid: it had
	// one); own is the one this hop made for a request without.
	caller, own oteltrace.SpanContext
	// id is the request's trace id, once it has one (for the access log
	// and explain: it outlives the spans).
	id      oteltrace.TraceID
	sampled bool
	// span is the current attempt's (nil: none open).
	span oteltrace.Span
	// name is the spans' name, "{method}" or "{method} {route}".
	name string
	// route and routePath: the route resource whose rule matched, and
	// the rule's path (http.route).
	route, routePath string
}

// begin reads the request's trace context and decides whether it is
// sampled.
func (t *callTrace) begin(tr *Tracer, view interface{ Header(string) []byte }) {
	*t = callTrace{tr: tr}
	sc, ok := parseTraceParent(view.Header(TraceParentHeader))
	if ok {
		if ts := view.Header(TraceStateHeader); len(ts) > 0 {
			if state, err := oteltrace.ParseTraceState(string(ts)); err == nil {
				sc = sc.WithTraceState(state)
			}
		}
	} else {
		sc, ok = parseB3(view)
	}
	if ok {
		t.caller, t.sampled, t.id = sc, sc.IsSampled(), sc.TraceID()
		return
	}
	// The trace begins here.
	var tid oteltrace.TraceID
	var sid oteltrace.SpanID
	a, b, c := rand.Uint64(), rand.Uint64(), rand.Uint64()
	for i := range 8 {
		tid[i], tid[8+i], sid[i] = byte(a>>(8*i)), byte(b>>(8*i)), byte(c>>(8*i))
	}
	t.sampled = b>>1 < tr.threshold
	if !t.sampled {
		t.own = oteltrace.NewSpanContext(oteltrace.SpanContextConfig{TraceID: tid, SpanID: sid})
		t.id = tid
	}
}

// SetRoute names the route whose rule sent the request (its resource,
// and the rule's path for http.route, "" when it matched no path), for
// the spans. Call it after Init and before Next.
func (k *Call) SetRoute(route, path string) {
	k.trace.route, k.trace.routePath = route, path
}

// startSpan begins the span of the attempt just begun on ep.
func (k *Call) startSpan(ep *Endpoint) {
	t := &k.trace
	if t.tr == nil || !t.sampled {
		return
	}
	method := string(k.view.Method())
	if t.name == "" {
		t.name = method
		if t.routePath != "" {
			t.name = method + " " + t.routePath
		}
	}
	kind := oteltrace.SpanKindClient
	if k.c.Server {
		kind = oteltrace.SpanKindServer
	}
	attrs := make([]attribute.KeyValue, 0, 10)
	attrs = append(attrs,
		attribute.String("http.request.method", method),
		attribute.String("url.path", string(k.view.Path())),
		attribute.String("server.address", string(k.view.Authority())),
		attribute.String("network.peer.address", ep.Address),
		attribute.String("weft.service", k.c.Service),
		attribute.String("weft.instance", ep.Instance))
	if t.routePath != "" {
		attrs = append(attrs, attribute.String("http.route", t.routePath))
	}
	if t.route != "" {
		attrs = append(attrs, attribute.String("weft.route", t.route))
	}
	if k.attempts > 1 {
		attrs = append(attrs, attribute.Int("http.request.resend_count", k.attempts-1))
	}
	if k.view.GRPC() {
		attrs = append(attrs, attribute.String("rpc.system", "grpc"))
	}
	start := k.start
	if k.attempts > 1 || start.IsZero() {
		start = time.Now()
	}
	ctx := context.Background()
	if t.caller.IsValid() {
		ctx = oteltrace.ContextWithRemoteSpanContext(ctx, t.caller)
	}
	_, t.span = t.tr.t.Start(ctx, t.name, oteltrace.WithSpanKind(kind), oteltrace.WithTimestamp(start), oteltrace.WithAttributes(attrs...))
	t.id = t.span.SpanContext().TraceID()
}

// endSpan ends the current attempt's span: with the HTTP status the
// attempt got (0: none), the grpc-status label of a gRPC answer, and
// the error type of a failure ("": none).
func (k *Call) endSpan(status int, grpc, errType string, now time.Time) {
	t := &k.trace
	if t.span == nil {
		return
	}
	s := t.span
	t.span = nil
	if status > 0 {
		s.SetAttributes(attribute.Int("http.response.status_code", status))
	}
	if grpc != "" {
		if code, err := strconv.Atoi(grpc); err == nil {
			s.SetAttributes(attribute.Int("rpc.grpc.status_code", code))
			if code != 0 && errType == "" {
				errType = grpc
			}
		}
	}
	// A client span fails on 4xx and 5xx, a server span on 5xx
	// (OpenTelemetry's HTTP conventions).
	if errType == "" && (status >= 500 || status >= 400 && !k.c.Server) {
		errType = strconv.Itoa(status)
	}
	if errType != "" {
		s.SetAttributes(attribute.String("error.type", errType))
		s.SetStatus(codes.Error, errType)
	}
	if now.IsZero() {
		now = time.Now()
	}
	s.End(oteltrace.WithTimestamp(now))
}

// failSpan ends the current attempt's span for a failure of class.
func (k *Call) failSpan(class endpoint.Class) {
	if k.trace.span != nil {
		k.endSpan(0, "", class.String(), time.Time{})
	}
}

// End ends the request's last open span with the status its caller got
// (and the grpc-status label of a gRPC answer, "" for others), at now.
// Every engine calls it once the request is over; it is a no-op for a
// request not sampled, or whose spans have all ended.
func (k *Call) End(r Result, now time.Time) {
	if k.trace.span != nil {
		k.endSpan(r.Status, r.GRPC, "", now)
	}
}

// TraceParent is the traceparent the current try sends, written into
// buf: the current attempt's span, or the context this hop began for a
// request not sampled; nil when the request's own is passed on as it
// came (a request not sampled, or no Tracer).
func (k *Call) TraceParent(buf *[TraceParentLen]byte) []byte {
	t := &k.trace
	switch {
	case t.span != nil:
		return formatTraceParent(buf, t.span.SpanContext())
	case t.own.IsValid():
		return formatTraceParent(buf, t.own)
	}
	return nil
}

// TraceID is the request's trace id (false: none, the request is not
// traced or its trace has not begun).
func (k *Call) TraceID() (oteltrace.TraceID, bool) { return k.trace.id, k.trace.id.IsValid() }

// formatTraceParent writes sc as a traceparent value.
func formatTraceParent(buf *[TraceParentLen]byte, sc oteltrace.SpanContext) []byte {
	tid, sid := sc.TraceID(), sc.SpanID()
	buf[0], buf[1], buf[2] = '0', '0', '-'
	hex.Encode(buf[3:35], tid[:])
	buf[35] = '-'
	hex.Encode(buf[36:52], sid[:])
	buf[52], buf[53], buf[54] = '-', '0', '0'
	if sc.IsSampled() {
		buf[54] = '1'
	}
	return buf[:]
}

// parseTraceParent reads a W3C traceparent value: version 00 (or a later
// one, read as 00 as the spec asks), trace id, parent id, flags.
func parseTraceParent(v []byte) (oteltrace.SpanContext, bool) {
	if len(v) < TraceParentLen || v[2] != '-' || v[35] != '-' || v[52] != '-' {
		return oteltrace.SpanContext{}, false
	}
	if len(v) > TraceParentLen && (string(v[0:2]) == "00" || v[55] != '-') {
		return oteltrace.SpanContext{}, false // version 00 has nothing after the flags
	}
	var ver, flags [1]byte
	var tid oteltrace.TraceID
	var sid oteltrace.SpanID
	if !unhex(ver[:], v[0:2]) || ver[0] == 0xff || !unhex(tid[:], v[3:35]) || !unhex(sid[:], v[36:52]) || !unhex(flags[:], v[53:55]) {
		return oteltrace.SpanContext{}, false
	}
	sc := oteltrace.NewSpanContext(oteltrace.SpanContextConfig{TraceID: tid, SpanID: sid,
		TraceFlags: oteltrace.TraceFlags(flags[0] & 1), Remote: true})
	return sc, sc.IsValid()
}

// parseB3 reads B3 headers: the single b3 header, else the x-b3-*
// ones. An unsampled or undecided B3 context counts as not sampled,
// "d" (debug) and x-b3-flags: 1 as sampled.
func parseB3(view interface{ Header(string) []byte }) (oteltrace.SpanContext, bool) {
	var traceID, spanID, sampled []byte
	if b3 := view.Header(B3Header); len(b3) > 0 {
		parts := splitDash(b3)
		if len(parts) < 2 {
			return oteltrace.SpanContext{}, false
		}
		traceID, spanID = parts[0], parts[1]
		if len(parts) > 2 {
			sampled = parts[2]
		}
	} else {
		traceID, spanID, sampled = view.Header(B3TraceIDHeader), view.Header(B3SpanIDHeader), view.Header(B3SampledHeader)
		if f := view.Header(B3FlagsHeader); len(f) == 1 && f[0] == '1' {
			sampled = []byte("d")
		}
	}
	var tid oteltrace.TraceID
	var sid oteltrace.SpanID
	switch len(traceID) {
	case 32:
		if !unhex(tid[:], traceID) {
			return oteltrace.SpanContext{}, false
		}
	case 16: // a 64-bit trace id: the upper half is zero
		if !unhex(tid[8:], traceID) {
			return oteltrace.SpanContext{}, false
		}
	default:
		return oteltrace.SpanContext{}, false
	}
	if len(spanID) != 16 || !unhex(sid[:], spanID) {
		return oteltrace.SpanContext{}, false
	}
	var flags oteltrace.TraceFlags
	if len(sampled) == 1 && (sampled[0] == '1' || sampled[0] == 'd') || string(sampled) == "true" {
		flags = oteltrace.FlagsSampled
	}
	sc := oteltrace.NewSpanContext(oteltrace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: flags, Remote: true})
	return sc, sc.IsValid()
}

// splitDash splits a b3 value at its dashes (at most 4 parts).
func splitDash(v []byte) [][]byte {
	var parts [][]byte
	for len(parts) < 3 {
		i := indexByte(v, '-')
		if i < 0 {
			break
		}
		parts = append(parts, v[:i])
		v = v[i+1:]
	}
	return append(parts, v)
}

func indexByte(b []byte, c byte) int {
	for i := range b {
		if b[i] == c {
			return i
		}
	}
	return -1
}

// unhex decodes lower-case hex src into dst (len(src) == 2*len(dst)).
func unhex(dst, src []byte) bool {
	if len(src) != 2*len(dst) {
		return false
	}
	for i := range dst {
		hi, ok1 := nibble(src[2*i])
		lo, ok2 := nibble(src[2*i+1])
		if !ok1 || !ok2 {
			return false
		}
		dst[i] = hi<<4 | lo
	}
	return true
}

func nibble(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	}
	return 0, false
}
