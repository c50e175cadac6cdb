// Package version names the build of Weft that is running.
package version

// Version is set at link time with -ldflags "-X github.com/weftmesh/weft/internal/version.Version=v1.2.3".
var Version = "dev"
