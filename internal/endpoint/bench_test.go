package endpoint

import (
	"testing"
	"time"
)

// BenchmarkBeginDone is one attempt's bookkeeping: Begin, then Done with
// a success (both latency estimates, the failure rate) or a 503.
func BenchmarkBeginDone(b *testing.B) {
	for _, o := range []Outcome{
		{Class: Success, Latency: time.Millisecond},
		{Class: Success, Latency: time.Millisecond, Status: HTTPStatus(503)},
	} {
		b.Run(o.Status.String(), func(b *testing.B) {
			e := New("svc", "i1", "10.0.0.1:80", nil)
			b.ReportAllocs()
			for b.Loop() {
				a := e.Begin()
				a.Done(o)
			}
		})
	}
}
