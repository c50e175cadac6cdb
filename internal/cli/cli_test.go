package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/api"
	"github.com/weftmesh/weft/internal/control/controltest"
	"github.com/weftmesh/weft/internal/registry"
	"github.com/weftmesh/weft/internal/store/storetest"
)

func TestMain(m *testing.M) { storetest.Main(m) }

// startControl runs a real control plane in this process until the test
// ends; the CLI's connections to it are closed then.
func startControl(t *testing.T) string {
	t.Helper()
	c := controltest.Start(t, nil)
	t.Cleanup(api.Transport.CloseIdleConnections)
	return c.Addr()
}

// deadAddr is a port nothing listens on.
func deadAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// weft runs one command line in this process.
func weft(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var o, e bytes.Buffer
	err = Run(ctx, args, &o, &e)
	return o.String(), e.String(), err
}

func TestSplitGlobal(t *testing.T) {
	tests := []struct {
		args   []string
		global []string
		rest   []string
		errHas string
	}{
		{args: []string{"get", "services"}, rest: []string{"get", "services"}},
		{args: []string{"--control", "h:1", "get", "services"}, global: []string{"--control=h:1"}, rest: []string{"get", "services"}},
		{args: []string{"-control=h:1", "-o", "json", "--log-level", "debug", "version"},
			global: []string{"--control=h:1", "--o=json", "--log-level=debug"}, rest: []string{"version"}},
		{args: []string{"--control", "h:1", "run", "--", "--control"}, global: []string{"--control=h:1"}, rest: []string{"run", "--", "--control"}},
		{args: []string{"-h"}, rest: []string{"-h"}},
		{args: []string{"--servce", "x", "get"}, errHas: "unknown flag --servce before the command"},
		{args: []string{"--control"}, errHas: "flag --control needs a value"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			global, rest, err := splitGlobal(tt.args)
			if tt.errHas != "" {
				if err == nil || !strings.Contains(err.Error(), tt.errHas) || ExitCode(err) != 2 {
					t.Fatalf("got (%v, %v, %v), want a usage error containing %q", global, rest, err, tt.errHas)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(global, tt.global) || !reflect.DeepEqual(rest, tt.rest) {
				t.Errorf("got (%q, %q, %v), want (%q, %q, nil)", global, rest, err, tt.global, tt.rest)
			}
		})
	}
}

func TestGlobalFlagsBeforeOrAfterTheVerb(t *testing.T) {
	t.Setenv("WEFT_CONTROL", "")
	cp := startControl(t)
	for _, args := range [][]string{
		{"--control", cp, "get", "services"},
		{"get", "services", "--control", cp},
		{"--control=" + cp, "get", "services"},
		// The same flag after the verb wins over the one before it.
		{"--control", deadAddr(t), "get", "services", "--control", cp},
	} {
		out, _, err := weft(t, args...)
		if err != nil || !strings.HasPrefix(out, "NAME") {
			t.Errorf("weft %s: got (%q, %v), want the services table", strings.Join(args, " "), out, err)
		}
	}
	out, _, err := weft(t, "-o", "json", "--control", cp, "version")
	var v struct{ Client, Go string }
	if err != nil || json.Unmarshal([]byte(out), &v) != nil || v.Client == "" {
		t.Errorf("weft -o json --control X version: got (%q, %v), want JSON", out, err)
	}
	if _, _, err := weft(t, "--control", cp); err == nil || ExitCode(err) != 2 || !strings.Contains(err.Error(), "want a command after --control=") {
		t.Errorf("global flags alone: got %v, want a usage error asking for a command", err)
	}
	// A global flag the command does not take is named.
	_, _, err = weft(t, "-o", "json", "register", "legacy", "h:1", "--control", cp)
	if err == nil || ExitCode(err) != 2 || err.Error() != "register: flag provided but not defined: -o (see weft register -h)" {
		t.Errorf("weft -o json register: got %v, want a usage error naming -o and register", err)
	}
}

func TestVersionWithoutControlPlane(t *testing.T) {
	t.Setenv("WEFT_CONTROL", "")
	addr := deadAddr(t)
	out, _, err := weft(t, "version", "--control", addr)
	if err == nil || ExitCode(err) != 1 {
		t.Fatalf("version with no control plane: got error %v, want exit 1", err)
	}
	for _, want := range []string{"control plane at http://" + addr + " unreachable", "connection refused", "`weft control`", "WEFT_CONTROL"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error: got %q, want it to contain %q", err, want)
		}
	}
	if !strings.HasPrefix(out, "client: ") || !strings.Contains(out, "control: unknown") {
		t.Errorf("stdout: got %q, want the client version and the control plane unknown", out)
	}
	// JSON says it too, and still fails.
	out, _, err = weft(t, "version", "--control", addr, "-o", "json")
	if err == nil || !strings.Contains(out, `"controlError": "control plane at`) {
		t.Errorf("version -o json: got (%q, %v), want controlError and an error", out, err)
	}
}

func TestMessagesSayThingsOnce(t *testing.T) {
	t.Setenv("WEFT_CONTROL", "")
	cp := startControl(t)
	tests := []struct {
		args     []string
		wantErr  string
		wantCode int
	}{
		{[]string{"get", "externalservice", "legacy", "--control", cp}, "ExternalService/legacy not found", 1},
		{[]string{"delete", "externalservice", "legacy", "--control", cp}, "ExternalService/legacy not found", 1},
		{[]string{"get", "widgets", "--control", cp}, `get: unknown kind "widgets" (try services, instances, proxies, or a kind: AlertRule, AuthorizationPolicy, ExternalService, Fault, GRPCRoute, HTTPRoute, PeerAuthentication, ServiceSubset, TrafficPolicy)`, 2},
		{[]string{"delete", "widgets", "x", "--control", cp}, `delete: unknown kind "widgets" (kinds: AlertRule, AuthorizationPolicy, ExternalService, Fault, GRPCRoute, HTTPRoute, PeerAuthentication, ServiceSubset, TrafficPolicy)`, 2},
		{[]string{"get", "--control", cp}, "get: want services, instances [SERVICE], proxies [SERVICE], or KIND [NAME] (kinds: AlertRule, AuthorizationPolicy, ExternalService, Fault, GRPCRoute, HTTPRoute, PeerAuthentication, ServiceSubset, TrafficPolicy)", 2},
		{[]string{"sidecar", "--servce", "x"}, "sidecar: flag provided but not defined: -servce (see weft sidecar -h)", 2},
		{[]string{"get", "services", "--control", deadAddr(t)}, "(start one with `weft control`, or point --control or WEFT_CONTROL at a running one)", 1},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args[:2], " "), func(t *testing.T) {
			_, _, err := weft(t, tt.args...)
			if err == nil || !strings.HasSuffix(err.Error(), tt.wantErr) || ExitCode(err) != tt.wantCode {
				t.Fatalf("got error %v (exit %d), want exit %d and one ending %q", err, ExitCode(err), tt.wantCode, tt.wantErr)
			}
			if strings.Contains(err.Error(), "[") && !strings.Contains(tt.wantErr, "[") {
				t.Errorf("error %q lists something as a Go slice", err)
			}
		})
	}
}

func TestGetProxies(t *testing.T) {
	t.Setenv("WEFT_CONTROL", "")
	cp := startControl(t)
	c := api.NewClient(cp)
	since := time.Now().UTC().Add(-90 * time.Second).Truncate(time.Second)
	ctx := storetest.Ctx(t)
	web, err := c.RegisterProxy(ctx, api.ProxyRequest{Proxy: registry.Proxy{Service: "web", ID: "web-1", Node: "host-a",
		Outbound: "127.0.0.1:15001", Version: "v9", Since: since}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.RegisterProxy(ctx, api.ProxyRequest{Proxy: registry.Proxy{Service: "catalog", ID: "catalog-1",
		Outbound: "127.0.0.1:15011", Inbound: "10.0.0.2:15006", Since: since}}); err != nil {
		t.Fatal(err)
	}

	out, _, err := weft(t, "get", "proxies", "--control", cp)
	if err != nil {
		t.Fatalf("get proxies: %v", err)
	}
	var rows []string
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		rows = append(rows, strings.Join(strings.Fields(l), " "))
	}
	want := []string{
		"SERVICE ID NODE OUTBOUND INBOUND VERSION AGE",
		"catalog catalog-1 - 127.0.0.1:15011 10.0.0.2:15006 - 1m",
		"web web-1 host-a 127.0.0.1:15001 - v9 1m",
	}
	if !reflect.DeepEqual(rows, want) {
		t.Errorf("get proxies:\n got %q\nwant %q", rows, want)
	}

	out, _, err = weft(t, "get", "proxies", "web", "--control", cp, "-o", "json")
	var list []map[string]any
	if err != nil || json.Unmarshal([]byte(out), &list) != nil || len(list) != 1 {
		t.Fatalf("get proxies web -o json: got (%q, %v), want one proxy", out, err)
	}
	if got := list[0]["lease"]; got != web.Lease.String() {
		t.Errorf("lease in JSON: got %#v, want the string %q", got, web.Lease.String())
	}
	out, _, err = weft(t, "get", "proxy", "web", "--control", cp, "-o", "yaml")
	if err != nil || !strings.Contains(out, `lease: "`+web.Lease.String()+`"`) || !strings.Contains(out, "outbound: 127.0.0.1:15001") {
		t.Errorf("get proxy web -o yaml: got (%q, %v), want the record with the lease as a string", out, err)
	}
	if _, _, err := weft(t, "get", "proxies", "nothing", "--control", cp); err == nil || err.Error() != `no proxies of service "nothing"` {
		t.Errorf("get proxies nothing: got %v, want no proxies of service \"nothing\"", err)
	}
}

func TestHelpListsGlobalFlags(t *testing.T) {
	out, _, err := weft(t, "help")
	if err != nil || !strings.Contains(out, "weft [--control ADDR] [--log-level L] [-o FORMAT] COMMAND") || !strings.Contains(out, "proxies") {
		t.Errorf("help: got (%q, %v), want the global flags and the proxies listing", out, err)
	}
	if _, _, err := weft(t, "frobnicate"); err == nil || ExitCode(err) != 2 {
		t.Errorf("unknown command: got %v, want a usage error", err)
	}
}
