//go:build sidecaronly

package cli

import (
	"context"
	"errors"
)

// A build with -tags sidecaronly links neither etcd, gRPC nor the control
// plane, whose init code alone would add some 20 MB to every sidecar's RSS.
// Its control and demo verbs only say so.

// errNoControlPlane is what control and demo return in this build.
var errNoControlPlane = errors.New("this build has no control plane (built with -tags sidecaronly); use the full weft binary")

func init() {
	addVerb("control", "not in this build (-tags sidecaronly): run the control plane", noControlPlane)
	addVerb("demo", "not in this build (-tags sidecaronly): run a demo mesh", noControlPlane)
}

func noControlPlane(context.Context, *env, []string) error { return errNoControlPlane }
