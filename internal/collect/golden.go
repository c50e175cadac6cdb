// Package collect is the control plane's data collection center: it takes
// the periodic summaries sidecars send of the requests they carried,
// keeps golden metrics per service, instance and edge for the last hour
// in bounded memory, and answers queries over them (weft stat, alert
// rules, the dashboard).
package collect

import "time"

// Golden are the golden metrics of a service, an instance or an edge
// over a window: how many requests, how many failed, how fast.
type Golden struct {
	// Requests and Failures are exact counts over the window. A failure is
	// an answer with a 5xx status, or a gRPC answer whose grpc-status is
	// not 0 (OK), as Linkerd counts them.
	Requests uint64 `json:"requests"`
	Failures uint64 `json:"failures"`
	// RPS is Requests over the window's length.
	RPS float64 `json:"rps"`
	// SuccessRate is 1 - Failures/Requests (1 when there were none).
	SuccessRate float64 `json:"successRate"`
	// P50, P95 and P99 are latency quantiles estimated from merged
	// histograms (0 when there were no requests).
	P50 time.Duration `json:"p50"`
	P95 time.Duration `json:"p95"`
	P99 time.Duration `json:"p99"`
}

// Query is what the collection center answers, for the CLI, alert rules
// and the dashboard.
type Query interface {
	// Service is a destination service's figures over the last window,
	// as its instances' sidecars counted the requests they received.
	Service(name string, window time.Duration) Golden
	// Edge is the figures of the calls from one service to another over
	// the last window, as the callers' sidecars counted them.
	Edge(source, destination string, window time.Duration) Golden
}
