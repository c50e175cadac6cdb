// Package tracestest makes OTLP spans for the tests of the trace store
// and its receiver.
package tracestest

import (
	"encoding/binary"
	"time"

	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
)

// T0 is the time spans start from.
var T0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// TID is trace id n (its first byte set, so that no id is all zeros).
func TID(n uint64) []byte {
	b := make([]byte, 16)
	binary.BigEndian.PutUint64(b[8:], n)
	b[0] = 0xab
	return b
}

// SID is span id n (nil for 0: no span).
func SID(n uint64) []byte {
	if n == 0 {
		return nil
	}
	b := make([]byte, 8)
	binary.BigEndian.PutUint64(b, n)
	return b
}

// Span is a server span of trace tr, id id, parent parent (0: none),
// from start to end after T0.
func Span(tr, id, parent uint64, name string, start, end time.Duration) *tracepb.Span {
	return &tracepb.Span{
		TraceId: TID(tr), SpanId: SID(id), ParentSpanId: SID(parent), Name: name,
		Kind:              tracepb.Span_SPAN_KIND_SERVER,
		StartTimeUnixNano: uint64(T0.Add(start).UnixNano()),
		EndTimeUnixNano:   uint64(T0.Add(end).UnixNano()),
	}
}

// Of is spans as the export of service.
func Of(service string, spans ...*tracepb.Span) []*tracepb.ResourceSpans {
	return []*tracepb.ResourceSpans{{
		Resource:   &resourcepb.Resource{Attributes: []*commonpb.KeyValue{Str("service.name", service)}},
		ScopeSpans: []*tracepb.ScopeSpans{{Spans: spans}},
	}}
}

// Str is a string attribute.
func Str(k, v string) *commonpb.KeyValue {
	return &commonpb.KeyValue{Key: k, Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: v}}}
}
