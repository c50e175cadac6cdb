// Package e2e runs the real weft binary, control planes, sidecars and test
// apps as separate processes on 127.0.0.1, and checks what a user sees.
package e2e

import (
	"fmt"
	"os"
	"testing"

	"github.com/weftmesh/weft/internal/meshtest"
)

func TestMain(m *testing.M) {
	if _, err := meshtest.Build(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	meshtest.Cleanup()
	os.Exit(code)
}
