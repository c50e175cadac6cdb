package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	testgrpc "google.golang.org/grpc/interop/grpc_testing"

	"github.com/weftmesh/weft/internal/meshtest"
)

// TestGRPCMethodRoute: a GRPCRoute sends one method of a service to the
// instances of version v2 and every other call to v1, through both
// HTTP/2 engines' consumers: the instances' own sidecars count what they
// took.
func TestGRPCMethodRoute(t *testing.T) {
	t.Parallel()
	m := meshtest.New(t)
	cp := m.Control()
	var providers []*meshtest.Sidecar
	for _, v := range []string{"v1", "v2"} {
		app := m.App("grpcsvc-"+v, "--grpc")
		providers = append(providers, m.Sidecar(cp, "--service", "grpcsvc", "--id", "grpcsvc-"+v, "--app-port", app.Port,
			"--app-protocol", "h2c", "--label", "version="+v))
	}
	f := &fleet{m: m, cp: cp, service: "grpcsvc"}
	f.consumer = m.Sidecar(cp, "--service", "web")
	xnet := m.Sidecar(cp, "--service", "web", "--http2-engine", "x/net")
	waitEndpoints(t, f.consumer, "grpcsvc", 2)
	waitEndpoints(t, xnet, "grpcsvc", 2)
	apply(t, f, `apiVersion: weftmesh.io/v1alpha1
kind: ServiceSubset
metadata: {name: grpcsvc-v1}
spec: {service: grpcsvc, labels: {version: v1}}
---
apiVersion: weftmesh.io/v1alpha1
kind: ServiceSubset
metadata: {name: grpcsvc-v2}
spec: {service: grpcsvc, labels: {version: v2}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: grpcsvc}
spec:
  parentRefs: [{group: "", kind: Service, name: grpcsvc}]
  rules:
  - matches: [{method: {service: grpc.testing.TestService, method: UnaryCall}}]
    backendRefs: [{group: weftmesh.io, kind: ServiceSubset, name: grpcsvc-v2}]
  - backendRefs: [{group: weftmesh.io, kind: ServiceSubset, name: grpcsvc-v1}]
`)
	for _, sc := range []*meshtest.Sidecar{f.consumer, xnet} {
		m.Eventually(10*time.Second, func() (bool, string) {
			_, body := meshtest.Get("http://" + sc.Admin + "/config")
			return strings.Contains(body, "Exact /grpc.testing.TestService/UnaryCall") && strings.Contains(body, "grpcsvc/grpcsvc-v1"),
				"consumer /config without the GRPCRoute"
		})
	}
	took := func() (v1, v2 float64) {
		// gRPC answers (grpc-status OK) only.
		return metricSum(providers[0].Admin, "weft_requests_total", `direction="inbound"`, `grpc_status="0"`),
			metricSum(providers[1].Admin, "weft_requests_total", `direction="inbound"`, `grpc_status="0"`)
	}
	var clients []testgrpc.TestServiceClient
	for _, sc := range []*meshtest.Sidecar{f.consumer, xnet} {
		_, tc := interopClient(t, m, sc.Outbound, "grpcsvc") // (after a first EmptyCall)
		clients = append(clients, tc)
	}
	m.Eventually(10*time.Second, func() (bool, string) { // the clients' first EmptyCalls, recorded
		v1, v2 := took()
		return v1 == 2 && v2 == 0, fmt.Sprintf("before: v1 took %v calls and v2 %v, want the 2 first EmptyCalls on v1", v1, v2)
	})
	v1Before, v2Before := took()
	const n = 20
	for _, tc := range clients {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		for range n {
			if _, err := tc.UnaryCall(ctx, &testgrpc.SimpleRequest{}); err != nil {
				t.Fatalf("UnaryCall: %v", err)
			}
			if _, err := tc.EmptyCall(ctx, &testgrpc.Empty{}); err != nil {
				t.Fatalf("EmptyCall: %v", err)
			}
		}
		cancel()
	}
	m.Eventually(10*time.Second, func() (bool, string) {
		v1, v2 := took()
		return v1-v1Before == 2*n && v2-v2Before == 2*n,
			fmt.Sprintf("v1 took %v calls and v2 %v, want %d EmptyCalls on v1 and %d UnaryCalls on v2", v1-v1Before, v2-v2Before, 2*n, 2*n)
	})
}
