package plan

import (
	"context"
	"encoding/binary"
	"math/rand/v2"
	"strconv"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	oteltrace "go.opentelemetry.io/otel/trace"

	"github.com/weftmesh/weft/internal/endpoint"
	"github.com/weftmesh/weft/internal/request"
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

// callTrace is a Call's tracing state, kept small: a request not
// sampled (nearly all) needs only its trace id and, when its trace
// begins here, the span id it passes on; a sampled request's span state
// is out of line (spans), made when it is drawn.
type callTrace struct {
	// id is the request's trace id, once it has one (for the access log
	// and explain: it outlives the spans).
	id oteltrace.TraceID
	// own is the parent this hop names, unsampled, for a trace that
	// begins here and is not sampled (zero: the caller's context, if
	// any, is passed on as it came).
	own oteltrace.SpanID
	// s is a sampled request's span state (nil: not sampled).
	s *spans
}

// spans is a sampled request's span state.
type spans struct {
	tr *Tracer
	// caller is the trace context the request came with (invalid: the
	// trace begins here).
	caller oteltrace.SpanContext
	// span is the current attempt's (nil: none open).
	span oteltrace.Span
	// name is the spans' name, "{method}" or "{method} {route}".
	name string
	// route and routePath: the route resource whose rule matched, and
	// the rule's path (http.route).
	route, routePath string
}

// begin reads the request's trace context and decides whether it is
// sampled: a caller's decision is followed; a trace that begins here is
// drawn at the Tracer's ratio.
func (t *callTrace) begin(tr *Tracer, view request.View) {
	h := traceHeaders(view)
	sc, ok := parseTraceParent(h.traceparent)
	w3c := ok
	if !ok && h.present&(hasB3|hasB3TraceID) != 0 {
		sc, ok = parseB3(view, h.present)
	}
	if ok {
		t.id = sc.TraceID()
		if !sc.IsSampled() {
			return // passed on as it came
		}
		if w3c && h.present&hasTraceState != 0 {
			if ts := view.Header(TraceStateHeader); len(ts) > 0 {
				if state, err := oteltrace.ParseTraceState(string(ts)); err == nil {
					sc = sc.WithTraceState(state)
				}
			}
		}
		t.s = &spans{tr: tr, caller: sc}
		return
	}
	// The trace begins here: sampled, the SDK draws its ids; not, this
	// hop names an unsampled parent for the hops after it.
	b := rand.Uint64()
	if b>>1 < tr.threshold {
		t.s = &spans{tr: tr}
		return
	}
	a, c := rand.Uint64(), rand.Uint64()
	if c == 0 {
		c = 1 // (a parent's id is never all zero)
	}
	binary.LittleEndian.PutUint64(t.id[:8], a)
	binary.LittleEndian.PutUint64(t.id[8:], b)
	binary.LittleEndian.PutUint64(t.own[:], c)
}

// SetRoute names the route whose rule sent the request (its resource,
// and the rule's path for http.route, "" when it matched no path), for
// the spans. Call it after Init and before Next.
func (k *Call) SetRoute(route, path string) {
	if s := k.trace.s; s != nil {
		s.route, s.routePath = route, path
	}
}

// startSpan begins the span of the attempt just begun on ep.
func (k *Call) startSpan(ep *Endpoint) {
	t := k.trace.s
	if t == nil {
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
	k.trace.id = t.span.SpanContext().TraceID()
}

// endSpan ends the current attempt's span: with the HTTP status the
// attempt got (0: none), the grpc-status label of a gRPC answer, and
// the error type of a failure ("": none).
func (k *Call) endSpan(status int, grpc, errType string, now time.Time) {
	t := k.trace.s
	if t == nil || t.span == nil {
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
	if k.spanOpen() {
		k.endSpan(0, "", class.String(), time.Time{})
	}
}

// spanOpen says whether the current attempt has a span not yet ended.
func (k *Call) spanOpen() bool { return k.trace.s != nil && k.trace.s.span != nil }

// End ends the request's last open span with the status its caller got
// (and the grpc-status label of a gRPC answer, "" for others), at now.
// Every engine calls it once the request is over; it is a no-op for a
// request not sampled, or whose spans have all ended.
func (k *Call) End(r Result, now time.Time) {
	if k.spanOpen() {
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
	case t.own.IsValid():
		return formatTraceParent(buf, t.id, t.own, false)
	case k.spanOpen():
		sc := t.s.span.SpanContext()
		return formatTraceParent(buf, sc.TraceID(), sc.SpanID(), sc.IsSampled())
	}
	return nil
}

// TraceID is the request's trace id (false: none, the request is not
// traced or its trace has not begun).
func (k *Call) TraceID() (oteltrace.TraceID, bool) { return k.trace.id, k.trace.id.IsValid() }

// formatTraceParent writes a traceparent value (version 00).
func formatTraceParent(buf *[TraceParentLen]byte, tid oteltrace.TraceID, sid oteltrace.SpanID, sampled bool) []byte {
	buf[0], buf[1], buf[2] = '0', '0', '-'
	hex16(buf[3:19], tid[:8])
	hex16(buf[19:35], tid[8:])
	buf[35] = '-'
	hex16(buf[36:52], sid[:])
	buf[52], buf[53], buf[54] = '-', '0', '0'
	if sampled {
		buf[54] = '1'
	}
	return buf[:]
}

// hex16 writes 8 bytes of src as 16 lower-case hex digits into dst, a
// word at a time (what encoding/hex does a byte at a time).
func hex16(dst, src []byte) {
	x := binary.BigEndian.Uint64(src)
	binary.BigEndian.PutUint64(dst[:8], hexDigits(x>>32))
	binary.BigEndian.PutUint64(dst[8:], hexDigits(x&0xffffffff))
}

// hexDigits spreads the 8 nibbles of x (32 bits) one to a byte, most
// significant first, and turns each into its hex digit.
func hexDigits(x uint64) uint64 {
	x = (x | x<<16) & 0x0000ffff0000ffff
	x = (x | x<<8) & 0x00ff00ff00ff00ff
	x = (x | x<<4) & 0x0f0f0f0f0f0f0f0f
	letters := (x + 0x0606060606060606) >> 4 & 0x0101010101010101 // 1 in each byte over 9
	return x + 0x3030303030303030 + letters*('a'-'0'-10)
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
	p := (*[TraceParentLen]byte)(v)
	t0, ok0 := unhex8(p[3:11])
	t1, ok1 := unhex8(p[11:19])
	t2, ok2 := unhex8(p[19:27])
	t3, ok3 := unhex8(p[27:35])
	s0, ok4 := unhex8(p[36:44])
	s1, ok5 := unhex8(p[44:52])
	v0, v1, f0, f1 := nibbles[p[0]], nibbles[p[1]], nibbles[p[53]], nibbles[p[54]]
	if !(ok0 && ok1 && ok2 && ok3 && ok4 && ok5) || v0|v1|f0|f1 >= 0x10 || v0 == 0xf && v1 == 0xf { // (version ff is invalid)
		return oteltrace.SpanContext{}, false
	}
	var tid oteltrace.TraceID
	var sid oteltrace.SpanID
	binary.BigEndian.PutUint64(tid[:8], uint64(t0)<<32|uint64(t1))
	binary.BigEndian.PutUint64(tid[8:], uint64(t2)<<32|uint64(t3))
	binary.BigEndian.PutUint64(sid[:], uint64(s0)<<32|uint64(s1))
	sc := oteltrace.NewSpanContext(oteltrace.SpanContextConfig{TraceID: tid, SpanID: sid,
		TraceFlags: oteltrace.TraceFlags(f1 & 1), Remote: true})
	return sc, sc.IsValid()
}

// TraceFields is what a request view may implement to hand Init the
// trace context headers it finds in one pass over its fields, each
// offered to TraceHeaders.Field; a view that does not is asked header
// by header. (They come back by value: a pointer passed through the
// interface would put them on the heap.)
type TraceFields interface {
	TraceFields() TraceHeaders
}

// TraceHeaders is what one pass over a request's fields found of its
// trace context: the first traceparent, and which of the other trace
// headers are there, to be looked up only when the decision needs them
// (tracestate for a sampled request, B3 without a valid traceparent).
type TraceHeaders struct {
	traceparent []byte
	present     uint8 // hasTraceParent, hasTraceState, hasB3, hasB3TraceID
}

// The trace headers found, as bits of TraceHeaders.present.
const (
	hasTraceParent = 1 << iota
	hasTraceState
	hasB3
	hasB3TraceID
)

// Field offers one of the request's header fields. A trace context one
// (its name in any case) is noted; any other costs a length check and,
// for a few lengths, a byte or two compared.
func (h *TraceHeaders) Field(name, value []byte) {
	if n := len(name); n == len(B3Header) || len(TraceStateHeader) <= n && n <= len(B3TraceIDHeader) { // (inlined: most fields stop here)
		h.field(name, value)
	}
}

func (h *TraceHeaders) field(name, value []byte) {
	switch len(name) {
	case len(B3Header):
		if name[0]|0x20 == 'b' && name[1] == '3' {
			h.present |= hasB3
		}
	case len(TraceStateHeader):
		if foldIs(name, traceStateWords) {
			h.present |= hasTraceState
		}
	case len(TraceParentHeader):
		if h.present&hasTraceParent == 0 && foldIs(name, traceParentWords) {
			h.present |= hasTraceParent
			h.traceparent = value // (the first counts, as for Header)
		}
	case len(B3TraceIDHeader):
		if foldIs(name, b3TraceIDWords) {
			h.present |= hasB3TraceID
		}
	}
}

// Header names of 8 bytes or more as two words, their first 8 bytes and
// their last 8, for foldIs.
var (
	traceStateWords  = words(TraceStateHeader)
	traceParentWords = words(TraceParentHeader)
	b3TraceIDWords   = words(B3TraceIDHeader)
)

func words(lower string) [2]uint64 {
	return [2]uint64{binary.LittleEndian.Uint64([]byte(lower)), binary.LittleEndian.Uint64([]byte(lower[len(lower)-8:]))}
}

// foldIs says whether name, 8 to 16 bytes, is the lower-case name of w
// in any case: a word at a time, each byte lower-cased by setting its
// 0x20 bit. That bit tells an upper-case letter from its lower case; it
// tells no other byte of a header name (a token: letters, digits and
// !#$%&'*+-.^_`|~) from a byte of these names, whose bytes are letters,
// digits and '-'.
func foldIs(name []byte, w [2]uint64) bool {
	const lower = 0x2020202020202020
	return binary.LittleEndian.Uint64(name)|lower == w[0] && binary.LittleEndian.Uint64(name[len(name)-8:])|lower == w[1]
}

// traceHeaders reads the request's trace context: in one pass when the
// view can (TraceFields), else its traceparent, with every other trace
// header possibly there.
func traceHeaders(view request.View) TraceHeaders {
	if f, ok := view.(TraceFields); ok {
		return f.TraceFields()
	}
	return TraceHeaders{traceparent: view.Header(TraceParentHeader), present: hasTraceParent | hasTraceState | hasB3 | hasB3TraceID}
}

// parseB3 reads B3 headers: the single b3 header, else the x-b3-*
// ones. An unsampled or undecided B3 context counts as not sampled,
// "d" (debug) and x-b3-flags: 1 as sampled.
func parseB3(view request.View, present uint8) (oteltrace.SpanContext, bool) {
	var traceID, spanID, sampled []byte
	var b3 []byte
	if present&hasB3 != 0 {
		b3 = view.Header(B3Header)
	}
	switch {
	case len(b3) > 0:
		parts, n := splitDash(b3)
		if n < 2 {
			return oteltrace.SpanContext{}, false
		}
		traceID, spanID = parts[0], parts[1]
		if n > 2 {
			sampled = parts[2]
		}
	case present&hasB3TraceID != 0:
		if traceID = view.Header(B3TraceIDHeader); len(traceID) == 0 {
			return oteltrace.SpanContext{}, false
		}
		spanID, sampled = view.Header(B3SpanIDHeader), view.Header(B3SampledHeader)
		if f := view.Header(B3FlagsHeader); len(f) == 1 && f[0] == '1' {
			sampled = []byte("d")
		}
	default:
		return oteltrace.SpanContext{}, false
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

// splitDash splits a b3 value at its dashes (at most 4 parts), in
// place: parts[:n].
func splitDash(v []byte) (parts [4][]byte, n int) {
	for n < 3 {
		i := indexByte(v, '-')
		if i < 0 {
			break
		}
		parts[n] = v[:i]
		n++
		v = v[i+1:]
	}
	parts[n] = v
	return parts, n + 1
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
	var bad byte
	for i := range dst {
		hi, lo := nibbles[src[2*i]], nibbles[src[2*i+1]]
		bad |= hi | lo
		dst[i] = hi<<4 | lo
	}
	return bad < 0x10
}

// unhex8 decodes 8 lower-case hex digits, as one word: each byte is
// checked to be 0-9 or a-f by adding to it so that the byte's top bit
// says whether it reached a bound, then the digits' values are packed.
func unhex8(src []byte) (uint32, bool) {
	const ones, tops = 0x0101010101010101, 0x8080808080808080
	x := binary.BigEndian.Uint64(src)
	atLeast := func(k uint64) uint64 { return (x + (0x80-k)*ones) & tops } // (bytes under 0x80: no carry)
	digit := atLeast('0') &^ atLeast('9'+1)
	letter := atLeast('a') &^ atLeast('f'+1)
	if x&tops != 0 || digit|letter != tops {
		return 0, false
	}
	v := x&(0x0f*ones) + (letter>>7)*9 // '0'-'9' -> 0-9, 'a'-'f' -> 10-15
	v = (v | v>>4) & 0x00ff00ff00ff00ff
	v = (v | v>>8) & 0x0000ffff0000ffff
	v = (v | v>>16) & 0x00000000ffffffff
	return uint32(v), true
}

// nibbles is each byte's value as a lower-case hex digit (0xff: not one).
var nibbles = func() (t [256]byte) {
	for c := range t {
		switch {
		case '0' <= c && c <= '9':
			t[c] = byte(c - '0')
		case 'a' <= c && c <= 'f':
			t[c] = byte(c - 'a' + 10)
		default:
			t[c] = 0xff
		}
	}
	return t
}()
