package proxy

import (
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
		got, ok := parseGRPCTimeout(c.in)
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
		if got := formatGRPCTimeout(c.in); got != c.want {
			t.Errorf("format %v: got %q, want %q", c.in, got, c.want)
		}
		if back, ok := parseGRPCTimeout(formatGRPCTimeout(c.in)); !ok || back != c.in {
			t.Errorf("round trip %v: got %v %v", c.in, back, ok)
		}
	}
}
