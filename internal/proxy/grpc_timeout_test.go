package proxy

import (
	"math"
	"net/http"
	"testing"
)

func TestGRPCTimeoutParseEdges(t *testing.T) {
	if d, ok := parseGRPCTimeout("99999999H"); !ok || d != math.MaxInt64 {
		t.Errorf("99999999H: got %v %v, want the longest Duration (it overflows otherwise)", d, ok)
	}
	if d, ok := parseGRPCTimeout("2562047H"); !ok || d.Hours() != 2562047 {
		t.Errorf("2562047H: got %v %v", d, ok)
	}
	if n := testing.AllocsPerRun(100, func() { parseGRPCTimeout("100m") }); n != 0 {
		t.Errorf("parseGRPCTimeout allocates %v times per call, want 0", n)
	}
}

func TestTrailerKey(t *testing.T) {
	for _, k := range []string{"Grpc-Status", "Grpc-Message", "Grpc-Status-Details-Bin", "X-Checksum"} {
		if got, want := trailerKey(k), http.TrailerPrefix+k; got != want {
			t.Errorf("trailerKey(%q) = %q, want %q", k, got, want)
		}
	}
	if n := testing.AllocsPerRun(100, func() { trailerKey("Grpc-Status") }); n != 0 {
		t.Errorf("trailerKey allocates %v times for Grpc-Status, want 0", n)
	}
}
