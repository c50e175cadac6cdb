//go:build !sidecaronly

package telemetry

import (
	"context"

	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// The full binary also exports by OTLP/gRPC, with the OpenTelemetry SDK's
// exporter (it links gRPC, which a sidecar-only build leaves out).
func init() {
	newGRPCExporter = func(ctx context.Context, host string, insecure bool) (sdktrace.SpanExporter, error) {
		opts := []otlptracegrpc.Option{otlptracegrpc.WithEndpoint(host)}
		if insecure {
			opts = append(opts, otlptracegrpc.WithInsecure())
		}
		return otlptracegrpc.New(ctx, opts...)
	}
}
