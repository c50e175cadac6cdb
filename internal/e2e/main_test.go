// Package e2e runs the real weft binary, control planes, sidecars and test
// apps as separate processes on 127.0.0.1, and checks what a user sees.
package e2e

import (
	"flag"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/meshtest"
)

// Tests call t.Parallel unless they bind again an address they released
// (a control plane restarted in place, weft run with an app port picked in
// advance, a check that a port was closed), where a parallel test could
// take the port in between, or they load the machine enough to starve the
// timing of others; those run first, one at a time. They mostly wait on
// processes, so -parallel above GOMAXPROCS shortens a run further.
func TestMain(m *testing.M) {
	flag.Parse()
	// The control planes leave their API token for the CLI of the local
	// user: here, in a directory of this test binary's own, which every
	// process it starts inherits.
	cfgDir, err := os.MkdirTemp("", "weft-e2e-config-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Setenv("XDG_CONFIG_HOME", cfgDir)
	if _, err := meshtest.Build(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if testing.Verbose() {
		fmt.Printf("built weft and the test app in %s\n", meshtest.BuildTook().Round(time.Millisecond))
	}
	code := m.Run()
	meshtest.Cleanup()
	os.RemoveAll(cfgDir)
	os.Exit(code)
}
