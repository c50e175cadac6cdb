package traces

import (
	"encoding/hex"
	"strconv"
	"strings"
	"unicode/utf8"
	"unsafe"

	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
)

type (
	traceID [16]byte
	spanID  [8]byte
)

func (id traceID) String() string { return hex.EncodeToString(id[:]) }
func (id spanID) String() string  { return hex.EncodeToString(id[:]) }

// ParseTraceID reads a trace id as 32 hex digits.
func ParseTraceID(s string) (traceID, error) {
	var id traceID
	if len(s) != 2*len(id) {
		return id, errBadTraceID(s)
	}
	if _, err := hex.Decode(id[:], []byte(s)); err != nil || id == (traceID{}) {
		return id, errBadTraceID(s)
	}
	return id, nil
}

type errBadTraceID string

func (e errBadTraceID) Error() string {
	return "trace id " + strconv.Quote(string(e)) + ": want 32 hex digits, not all zero"
}

// Status codes of a span, as OTLP has them.
const (
	statusUnset uint8 = iota
	statusOK
	statusError
)

// span is one span as held: ids fixed-size, strings capped.
type span struct {
	traceID           traceID
	spanID, parentID  spanID
	hasParent         bool
	kind, status      uint8
	name, service     string
	statusMessage     string
	start, end        int64 // Unix ns
	attrs             []Attribute
	events            []event
	droppedAttributes int
	droppedEvents     int
}

// event is a span's event as held.
type event struct {
	name  string
	at    int64 // Unix ns
	attrs []Attribute
}

// fixedSize is what a span takes besides its strings and slices' elements.
const fixedSize = int64(unsafe.Sizeof(span{}))

// size is the approximate bytes a span holds.
func (s *span) size() int64 {
	n := fixedSize + int64(len(s.name)+len(s.service)+len(s.statusMessage))
	n += attrsSize(s.attrs)
	for _, e := range s.events {
		n += int64(unsafe.Sizeof(e)) + int64(len(e.name)) + attrsSize(e.attrs)
	}
	return n
}

func attrsSize(a []Attribute) int64 {
	n := int64(len(a)) * int64(unsafe.Sizeof(Attribute{}))
	for _, kv := range a {
		n += int64(len(kv.Key) + len(kv.Value))
	}
	return n
}

// Caps that are not Limits: keys and service names are short by nature.
const (
	maxKeyLen          = 64
	maxEventAttributes = 8
)

// convert turns one OTLP span into a held span, or reports it invalid
// (a trace or span id of the wrong length, or all zero).
func (l *Limits) convert(service string, in *tracepb.Span) (span, bool) {
	var out span
	if len(in.TraceId) != len(out.traceID) || len(in.SpanId) != len(out.spanID) {
		return out, false
	}
	copy(out.traceID[:], in.TraceId)
	copy(out.spanID[:], in.SpanId)
	if out.traceID == (traceID{}) || out.spanID == (spanID{}) {
		return out, false
	}
	if len(in.ParentSpanId) == len(out.parentID) {
		copy(out.parentID[:], in.ParentSpanId)
		out.hasParent = out.parentID != (spanID{})
	}
	out.kind = uint8(min(max(in.Kind, 0), tracepb.Span_SPAN_KIND_CONSUMER))
	if st := in.GetStatus(); st != nil {
		out.status = uint8(min(max(st.Code, 0), tracepb.Status_STATUS_CODE_ERROR))
		out.statusMessage = l.cut(st.Message)
	}
	out.name, out.service = l.cut(in.Name), l.cut(service)
	out.start, out.end = unixNano(in.StartTimeUnixNano), unixNano(in.EndTimeUnixNano)
	if out.end < out.start {
		out.end = out.start
	}
	out.attrs, out.droppedAttributes = l.attributes(in.Attributes, l.MaxAttributes)
	out.droppedAttributes += int(in.DroppedAttributesCount)
	n := min(len(in.Events), l.MaxEvents)
	out.droppedEvents = len(in.Events) - n + int(in.DroppedEventsCount)
	if n > 0 {
		out.events = make([]event, n)
		for i, e := range in.Events[:n] {
			out.events[i].name = l.cut(e.Name)
			out.events[i].at = unixNano(e.TimeUnixNano)
			out.events[i].attrs, _ = l.attributes(e.Attributes, maxEventAttributes)
		}
	}
	return out, true
}

func unixNano(ns uint64) int64 { return int64(min(ns, 1<<63-1)) }

// attributes keeps the first max attributes, their values as text, and
// says how many it left out.
func (l *Limits) attributes(in []*commonpb.KeyValue, max int) ([]Attribute, int) {
	n := min(len(in), max)
	if n == 0 {
		return nil, len(in)
	}
	out := make([]Attribute, n)
	for i, kv := range in[:n] {
		out[i] = Attribute{Key: cutTo(kv.Key, maxKeyLen), Value: l.cut(valueText(kv.Value))}
	}
	return out, len(in) - n
}

func (l *Limits) cut(s string) string { return cutTo(s, l.MaxValueLen) }

// cutTo keeps at most n bytes of s, ending on a whole UTF-8 character,
// and makes a copy so that the held string does not pin the request's
// buffer.
func cutTo(s string, n int) string {
	if len(s) <= n {
		return strings.Clone(s)
	}
	i := n
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return strings.Clone(s[:i])
}

// valueText is an attribute value as text: strings as they are, other
// scalars formatted, arrays and maps in a short bracketed form.
func valueText(v *commonpb.AnyValue) string {
	switch x := v.GetValue().(type) {
	case *commonpb.AnyValue_StringValue:
		return x.StringValue
	case *commonpb.AnyValue_BoolValue:
		return strconv.FormatBool(x.BoolValue)
	case *commonpb.AnyValue_IntValue:
		return strconv.FormatInt(x.IntValue, 10)
	case *commonpb.AnyValue_DoubleValue:
		return strconv.FormatFloat(x.DoubleValue, 'g', -1, 64)
	case *commonpb.AnyValue_BytesValue:
		return hex.EncodeToString(x.BytesValue)
	case *commonpb.AnyValue_ArrayValue:
		parts := make([]string, 0, len(x.ArrayValue.GetValues()))
		for _, e := range x.ArrayValue.GetValues() {
			parts = append(parts, valueText(e))
		}
		return "[" + strings.Join(parts, ",") + "]"
	case *commonpb.AnyValue_KvlistValue:
		parts := make([]string, 0, len(x.KvlistValue.GetValues()))
		for _, kv := range x.KvlistValue.GetValues() {
			parts = append(parts, kv.Key+"="+valueText(kv.Value))
		}
		return "{" + strings.Join(parts, ",") + "}"
	}
	return ""
}

// serviceName is the resource's service.name ("unknown_service" when it
// has none, as the OpenTelemetry SDKs name such a service).
func serviceName(attrs []*commonpb.KeyValue) string {
	for _, kv := range attrs {
		if kv.Key == "service.name" {
			if s := valueText(kv.Value); s != "" {
				return s
			}
		}
	}
	return "unknown_service"
}

// Add converts and stores the spans of an OTLP export. It returns how
// many it rejected (invalid ids, or a trace already holding the whole
// budget) and why, as OTLP's partial success reports them.
func (s *Store) Add(resources []*tracepb.ResourceSpans) (rejected int, reason string) {
	var batch []span
	invalid := 0
	for _, rs := range resources {
		service := serviceName(rs.GetResource().GetAttributes())
		for _, ss := range rs.ScopeSpans {
			for _, in := range ss.Spans {
				sp, ok := s.lim.convert(service, in)
				if !ok {
					invalid++
					continue
				}
				batch = append(batch, sp)
			}
		}
	}
	if invalid > 0 {
		s.dropped.WithLabelValues(reasonInvalid).Add(float64(invalid))
		s.received.Add(float64(invalid))
	}
	full := s.insert(batch)
	switch {
	case invalid > 0 && full > 0:
		reason = strconv.Itoa(invalid) + " spans without a valid trace or span id (16 and 8 bytes, not all zero); " + strconv.Itoa(full) + " spans over the store's budget for one trace"
	case invalid > 0:
		reason = strconv.Itoa(invalid) + " spans without a valid trace or span id (16 and 8 bytes, not all zero)"
	case full > 0:
		reason = strconv.Itoa(full) + " spans over the store's budget for one trace"
	}
	return invalid + full, reason
}
