package main

// gRPC's gzip codec, so --grpc serves compressed messages as well: grpc-go's
// own interop server binary registers none (see internal/e2e/conformance_test.go).
import _ "google.golang.org/grpc/encoding/gzip"
