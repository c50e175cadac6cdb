package stdhttp

import (
	"net/http"
	"testing"
)

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
