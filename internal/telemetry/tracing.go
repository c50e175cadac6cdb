package telemetry

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net/url"
	"strings"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// newGRPCExporter makes an OTLP/gRPC exporter to host (insecure: without
// TLS); nil in a sidecar-only build, which links no gRPC (tracing_grpc.go).
var newGRPCExporter func(ctx context.Context, host string, insecure bool) (sdktrace.SpanExporter, error)

// TracingOff is the --otlp-endpoint that sends no spans.
const TracingOff = "off"

// Tracing is where a process's spans go and who it is.
type Tracing struct {
	// Endpoint is an OTLP receiver: http://HOST:PORT[/PATH] or https://
	// for OTLP/HTTP (PATH defaults to /v1/traces), grpc://HOST:PORT for
	// OTLP/gRPC without TLS, grpcs://HOST:PORT with it.
	Endpoint string
	// Service and Instance name the process (service.name,
	// service.instance.id).
	Service, Instance string
	// MaxQueue bounds the spans waiting to be sent; past it spans are
	// dropped (the SDK's batch processor).
	MaxQueue int
	// Log takes the exporter's errors (a receiver that cannot be
	// reached), in place of the SDK's default of the standard logger.
	Log *slog.Logger
	// TLS, when set, is the TLS config of an https:// OTLP/HTTP
	// endpoint: a sidecar's, to the control plane's receiver, presents
	// its workload certificate (nil: the system's roots, no certificate).
	TLS *tls.Config
}

// ValidateEndpoint checks an --otlp-endpoint value.
func ValidateEndpoint(endpoint string) error {
	if endpoint == TracingOff {
		return nil
	}
	u, err := url.Parse(endpoint)
	if err != nil || u.Host == "" {
		return fmt.Errorf("%q: want http://HOST:PORT[/PATH], https://..., grpc://HOST:PORT, grpcs://HOST:PORT or off", endpoint)
	}
	switch u.Scheme {
	case "http", "https", "grpc", "grpcs":
		return nil
	}
	return fmt.Errorf("%q: scheme %q: want http, https (OTLP/HTTP), grpc or grpcs (OTLP/gRPC)", endpoint, u.Scheme)
}

// NewTracerProvider returns an OpenTelemetry tracer provider that batches
// spans to t.Endpoint by OTLP. Shut it down to send what is queued.
func NewTracerProvider(ctx context.Context, t Tracing) (*sdktrace.TracerProvider, error) {
	if err := ValidateEndpoint(t.Endpoint); err != nil {
		return nil, err
	}
	u, _ := url.Parse(t.Endpoint)
	if t.Log != nil {
		log := t.Log
		otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) { log.Warn("sending spans", "endpoint", t.Endpoint, "err", err) }))
	}
	var exp sdktrace.SpanExporter
	switch u.Scheme {
	case "http", "https":
		target := *u
		if strings.TrimSuffix(target.Path, "/") == "" {
			target.Path = "/v1/traces"
		}
		exp = newOTLPHTTP(target.String(), t.TLS)
	default:
		if newGRPCExporter == nil {
			return nil, fmt.Errorf("%q: this build (sidecaronly) sends spans by OTLP/HTTP only (http:// or https://); OTLP/gRPC needs the full weft binary", t.Endpoint)
		}
		var err error
		if exp, err = newGRPCExporter(ctx, u.Host, u.Scheme == "grpc"); err != nil {
			return nil, fmt.Errorf("OTLP exporter for %s: %w", t.Endpoint, err)
		}
	}
	res := resource.NewSchemaless(attribute.String("service.name", t.Service), attribute.String("service.instance.id", t.Instance))
	queue := t.MaxQueue
	if queue <= 0 {
		queue = sdktrace.DefaultMaxQueueSize
	}
	return sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exp, sdktrace.WithMaxQueueSize(queue)),
		sdktrace.WithResource(res),
		// Whether a request is sampled is decided on the request path
		// (plan.Tracer): the spans made are the sampled ones.
		sdktrace.WithSampler(sdktrace.AlwaysSample()),
	), nil
}
