package cli

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/weftmesh/weft/internal/collect/traces"
)

const (
	demoTrace    = "4bf92f3577b34da6a3ce929d0e0e4736"
	partialTrace = "00f067aa0ba902b700f067aa0ba902b7"
)

// postSpans sends, by OTLP/HTTP, the spans of a request through web,
// catalog and ratings (catalog's failed), and a trace whose root has not
// come.
func postSpans(t *testing.T, addr string, t0 time.Time) {
	t.Helper()
	id := func(s string) []byte {
		b := make([]byte, len(s)/2)
		for i := range b {
			b[i] = hexByte(s[2*i])<<4 | hexByte(s[2*i+1])
		}
		return b
	}
	sp := func(trace, span, parent, name string, kind tracepb.Span_SpanKind, from, to time.Duration) *tracepb.Span {
		return &tracepb.Span{TraceId: id(trace), SpanId: id(span), ParentSpanId: id(parent), Name: name, Kind: kind,
			StartTimeUnixNano: uint64(t0.Add(from).UnixNano()), EndTimeUnixNano: uint64(t0.Add(to).UnixNano())}
	}
	of := func(service string, spans ...*tracepb.Span) *tracepb.ResourceSpans {
		return &tracepb.ResourceSpans{
			Resource: &resourcepb.Resource{Attributes: []*commonpb.KeyValue{{Key: "service.name",
				Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: service}}}}},
			ScopeSpans: []*tracepb.ScopeSpans{{Spans: spans}},
		}
	}
	server, client := tracepb.Span_SPAN_KIND_SERVER, tracepb.Span_SPAN_KIND_CLIENT
	failed := sp(demoTrace, "00000000000000c1", "00000000000000a2", "GET /items", server, 8*time.Millisecond, 32*time.Millisecond)
	failed.Status = &tracepb.Status{Code: tracepb.Status_STATUS_CODE_ERROR, Message: "boom"}
	req := &coltracepb.ExportTraceServiceRequest{ResourceSpans: []*tracepb.ResourceSpans{
		of("ratings", sp(demoTrace, "00000000000000d1", "00000000000000c1", "GET /", server, 10*time.Millisecond, 20*time.Millisecond)),
		of("catalog", failed),
		of("web",
			sp(demoTrace, "00000000000000a2", "00000000000000a1", "GET catalog", client, 5*time.Millisecond, 35*time.Millisecond),
			sp(demoTrace, "00000000000000a1", "", "GET /", server, 0, 40*time.Millisecond)),
		of("catalog", sp(partialTrace, "00000000000000e1", "00000000000000e0", "GET /items", server, 100*time.Millisecond, 103*time.Millisecond)),
	}}
	body, _ := proto.Marshal(req)
	resp, err := http.Post("http://"+addr+"/v1/traces", "application/x-protobuf", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("POST /v1/traces: got %s, want 200", resp.Status)
	}
}

func hexByte(c byte) byte {
	if c >= 'a' {
		return c - 'a' + 10
	}
	return c - '0'
}

func TestTracesListAndTree(t *testing.T) {
	addr := startControl(t)
	t0 := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	postSpans(t, addr, t0)
	at := func(d time.Duration) string { return t0.Add(d).Local().Format("15:04:05.000") }

	cases := []struct {
		name string
		args []string
		want []string // the lines, in order, spaces squeezed
	}{
		{"all", nil, []string{
			"TRACE ID ROOT SPANS SERVICES DURATION START",
			partialTrace + " catalog GET /items (root not received) 1 catalog 3ms " + at(100*time.Millisecond),
			demoTrace + " web GET / 4 catalog,ratings,web 40ms " + at(0),
		}},
		{"by service", []string{"--service", "ratings"}, []string{
			"TRACE ID ROOT SPANS SERVICES DURATION START",
			demoTrace + " web GET / 4 catalog,ratings,web 40ms " + at(0),
		}},
		{"by duration", []string{"--min-duration", "5ms", "--limit", "1"}, []string{
			"TRACE ID ROOT SPANS SERVICES DURATION START",
			demoTrace + " web GET / 4 catalog,ratings,web 40ms " + at(0),
		}},
		{"a trace", []string{demoTrace}, []string{
			"trace " + demoTrace + ": 4 spans across catalog, ratings, web, 40ms, started " + t0.Local().Format("2006-01-02 15:04:05.000"),
			"SPAN SERVICE KIND OFFSET DURATION STATUS",
			"GET / web server +0s 40ms unset |========================================|",
			"GET catalog web client +5ms 30ms unset |     ==============================     |",
			"GET /items catalog server +8ms 24ms error: boom |        ========================        |",
			"GET / ratings server +10ms 10ms unset |          ==========                    |",
		}},
		{"a trace without its root", []string{partialTrace}, []string{
			"trace " + partialTrace + ": 1 span across catalog, 3ms, started " + t0.Add(100*time.Millisecond).Local().Format("2006-01-02 15:04:05.000"),
			"(its root span has not been received: the spans without a parent here are shown at the top)",
			"SPAN SERVICE KIND OFFSET DURATION STATUS",
			"GET /items (parent 00000000000000e0 not received) catalog server +0s 3ms unset |========================================|",
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out, _, err := weft(t, append([]string{"traces", "--control", addr}, c.args...)...)
			if err != nil {
				t.Fatal(err)
			}
			got := strings.Split(strings.TrimRight(out, "\n"), "\n")
			for i := range got {
				got[i] = squeezeOutsideBar(got[i])
			}
			if strings.Join(got, "\n") != strings.Join(c.want, "\n") {
				t.Errorf("got:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(c.want, "\n"))
			}
		})
	}

	// The tree's indentation, as printed.
	out, _, _ := weft(t, "traces", "--control", addr, demoTrace)
	for _, want := range []string{"\nGET /  ", "\n  GET catalog  ", "\n    GET /items  ", "\n      GET /  "} {
		if !strings.Contains(out, want) {
			t.Errorf("tree: want a line starting %q:\n%s", want[1:], out)
		}
	}

	out, _, err := weft(t, "traces", "--control", addr, "-o", "json", demoTrace)
	var tree traces.Tree
	if err != nil || json.Unmarshal([]byte(out), &tree) != nil || tree.TraceID != demoTrace || tree.Roots[0].Children[0].Children[0].Status != "error" {
		t.Errorf("-o json: got %v\n%s", err, out)
	}
}

// squeezeOutsideBar turns each run of spaces outside the bars into one space.
func squeezeOutsideBar(line string) string {
	head, bar, hasBar := strings.Cut(line, "|")
	head = strings.Join(strings.Fields(head), " ")
	if hasBar {
		return head + " |" + bar
	}
	return head
}

func TestTracesErrors(t *testing.T) {
	addr := startControl(t)
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"traces", "--control", addr, strings.Repeat("ab", 16)}, "trace " + strings.Repeat("ab", 16) + " not found: the control plane holds the spans of its last 10000 traces"},
		{[]string{"traces", "--control", addr, "nothex"}, `trace id "nothex": want 32 hex digits`},
		{[]string{"traces", "--control", addr, "--limit", "0"}, "--limit 0: must be at least 1"},
		{[]string{"traces", "--control", addr, "a", "b"}, "want traces [--service S]"},
		{[]string{"traces", "--control", addr, "--service", "web", demoTrace}, "--service and --min-duration filter the list"},
		{[]string{"traces", "--control", addr, "-o", "name"}, `-o "name": want table, json, yaml`},
		{[]string{"traces", "--control", deadAddr(t)}, "unreachable"},
	}
	for _, c := range cases {
		_, _, err := weft(t, c.args...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("weft %v: got %v, want an error with %q", c.args[3:], err, c.want)
		}
	}
	out, _, err := weft(t, "traces", "--control", addr, "-o", "json")
	if err != nil || strings.TrimSpace(out) != "[]" {
		t.Errorf("no traces, -o json: got %q (%v), want []", out, err)
	}
}
