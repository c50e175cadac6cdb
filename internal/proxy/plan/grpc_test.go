package plan

import (
	"math"
	"testing"
	"time"
)

func TestGRPCTimeoutFormat(t *testing.T) {
	parse := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"100m", 100 * time.Millisecond, true},
		{"5S", 5 * time.Second, true},
		{"2H", 2 * time.Hour, true},
		{"99999999u", 99999999 * time.Microsecond, true},
		{"123456789u", 0, false}, // nine digits
		{"5", 0, false},
		{"5x", 0, false},
		{"-5S", 0, false},
	}
	for _, c := range parse {
		got, ok := ParseGRPCTimeout(c.in)
		if got != c.want || ok != c.ok {
			t.Errorf("parse %q: got %v %v, want %v %v", c.in, got, ok, c.want, c.ok)
		}
	}
	format := []struct {
		in   time.Duration
		want string
	}{
		{1500 * time.Millisecond, "1500000u"},
		{200 * time.Second, "200000m"},
		{30 * time.Hour, "108000S"},
		{0, "0u"},
	}
	for _, c := range format {
		if got := FormatGRPCTimeout(c.in); got != c.want {
			t.Errorf("format %v: got %q, want %q", c.in, got, c.want)
		}
		if back, ok := ParseGRPCTimeout(FormatGRPCTimeout(c.in)); !ok || back != c.in {
			t.Errorf("round trip %v: got %v %v", c.in, back, ok)
		}
	}
}

func TestGRPCTimeoutParseEdges(t *testing.T) {
	if d, ok := ParseGRPCTimeout("99999999H"); !ok || d != math.MaxInt64 {
		t.Errorf("99999999H: got %v %v, want the longest Duration (it overflows otherwise)", d, ok)
	}
	if d, ok := ParseGRPCTimeout("2562047H"); !ok || d.Hours() != 2562047 {
		t.Errorf("2562047H: got %v %v", d, ok)
	}
	if n := testing.AllocsPerRun(100, func() { ParseGRPCTimeout("100m") }); n != 0 {
		t.Errorf("ParseGRPCTimeout allocates %v times per call, want 0", n)
	}
}
