package plan

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/endpoint"
	"github.com/weftmesh/weft/internal/request"
)

// told is a request whose caller said how long it waits (TimeoutHeader).
type told struct {
	request.View
	v string
}

func (t told) Header(name string) []byte {
	if strings.EqualFold(name, TimeoutHeader) {
		return []byte(t.v)
	}
	return nil
}

func TestParseTimeoutHeader(t *testing.T) {
	for _, c := range []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"300", 300 * time.Millisecond, true},
		{"1", time.Millisecond, true},
		{"1000000000", 1e9 * time.Millisecond, true},
		{"0", 0, false},
		{"", 0, false},
		{"-5", 0, false},
		{"1.5", 0, false},
		{"300ms", 0, false},
		{"10000000000", 0, false},
		{"99999999999999999999", 0, false},
	} {
		got, ok := ParseTimeoutHeader([]byte(c.in))
		if got != c.want || ok != c.ok {
			t.Errorf("ParseTimeoutHeader(%q) = %v, %v; want %v, %v", c.in, got, ok, c.want, c.ok)
		}
	}
	for _, c := range []struct {
		in   time.Duration
		want string
	}{{400 * time.Millisecond, "400"}, {1500 * time.Microsecond, "2"}, {time.Nanosecond, "1"}, {0, "1"}, {time.Hour * 1e6, "1000000000"}} {
		if got := string(AppendTimeoutHeader(nil, c.in)); got != c.want {
			t.Errorf("AppendTimeoutHeader(%v) = %q, want %q", c.in, got, c.want)
		}
	}
}

// TestCallerTimeoutBoundsTries: the caller's timeout bounds every try
// (from the request's start) when it is sooner than the cluster's, is
// what the next hop is told, ends retries once it has passed, and is
// fixed for a try however often the engine asks.
func TestCallerTimeoutBoundsTries(t *testing.T) {
	eps := []*Endpoint{endpoint.New("s", "s-1", "127.0.0.1:1", nil), endpoint.New("s", "s-2", "127.0.0.1:2", nil)}
	c := NewCluster("s", eps, 10*time.Second, nil)
	c.PassTimeout = true

	var k Call
	k.Init(c, told{request.None, "300"}, time.Now())
	if k.Next() == nil {
		t.Fatal("Next: no endpoint")
	}
	first := k.TryTimeout()
	if first > 300*time.Millisecond || first < 250*time.Millisecond {
		t.Fatalf("TryTimeout = %v, want about the caller's 300ms (not the cluster's 10s)", first)
	}
	if d, pass := k.NextHopTimeout(); !pass || d != first {
		t.Errorf("NextHopTimeout = %v, %v; want %v, true", d, pass, first)
	}
	time.Sleep(20 * time.Millisecond) // the clock moves; the try's bound does not
	if got := k.TryTimeout(); got != first {
		t.Errorf("TryTimeout changed within a try: %v then %v", first, got)
	}

	k.Init(c, told{request.None, "250"}, time.Now().Add(-time.Second)) // began a second ago
	k.Next()
	k.Failed(endpoint.ConnectFailed, errors.New("connection refused"))
	if k.Again(false) && k.Next() != nil {
		t.Error("a retry began after the caller's timeout had passed")
	}

	// A caller that says nothing, or something unreadable: the cluster's.
	for _, v := range []string{"", "soon"} {
		k.Init(c, told{request.None, v}, time.Now())
		k.Next()
		if got := k.TryTimeout(); got != 10*time.Second {
			t.Errorf("header %q: TryTimeout = %v, want the cluster's 10s", v, got)
		}
	}

	// An external service is not told.
	c.PassTimeout = false
	k.Init(c, request.None, time.Now())
	k.Next()
	if _, pass := k.NextHopTimeout(); pass {
		t.Error("NextHopTimeout passes the timeout on for a cluster that does not pass it")
	}
}
