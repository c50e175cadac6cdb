package endpoint

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// group is a group of n fresh endpoints with options o.
func group(t *testing.T, n int, o OutlierOptions) (*Group, []*Endpoint) {
	t.Helper()
	g, err := NewGroup(o)
	if err != nil {
		t.Fatalf("NewGroup: %v", err)
	}
	var eps []*Endpoint
	for i := range n {
		eps = append(eps, New("svc", fmt.Sprint("i", i), fmt.Sprintf("10.0.0.%d:80", i), nil))
	}
	g.SetMembers(eps)
	return g, eps
}

// open is the defaults with every endpoint allowed out at once.
func open() OutlierOptions {
	o := DefaultOutlierOptions()
	o.MaxEjectionPercent = 100
	return o
}

// hit is one attempt on e that starts at at and comes to o (Latency 0:
// it ends at at too).
func hit(e *Endpoint, at time.Time, o Outcome) {
	a := e.BeginAt(at)
	a.Done(o)
}

func answer(code int) Outcome { return Outcome{Class: Success, Status: HTTPStatus(code)} }

func TestOutlierOptionsValidate(t *testing.T) {
	if err := DefaultOutlierOptions().Validate(); err != nil {
		t.Fatalf("defaults: got %v, want valid", err)
	}
	tests := []struct {
		name string
		set  func(*OutlierOptions)
		want string
	}{
		{"percent", func(o *OutlierOptions) { o.MaxEjectionPercent = 150 }, "outlierDetection.maxEjectionPercent: 150 must be between 0 and 100"},
		{"5xx", func(o *OutlierOptions) { o.Consecutive5xx = -1 }, "outlierDetection.consecutive5xx: -1"},
		{"gateway", func(o *OutlierOptions) { o.ConsecutiveGatewayErrors = MaxConsecutive + 1 }, "outlierDetection.consecutiveGatewayErrors:"},
		{"connect", func(o *OutlierOptions) { o.ConsecutiveConnectFailures = -2 }, "outlierDetection.consecutiveConnectFailures:"},
		{"interval", func(o *OutlierOptions) { o.Interval = 0 }, "outlierDetection.interval: 0s must be positive"},
		{"base", func(o *OutlierOptions) { o.BaseEjectionTime = -time.Second }, "outlierDetection.baseEjectionTime:"},
		{"max", func(o *OutlierOptions) { o.MaxEjectionTime = time.Second }, "outlierDetection.maxEjectionTime: 1s must be at least baseEjectionTime (30s)"},
		{"hosts", func(o *OutlierOptions) { o.SuccessRateMinHosts = -1 }, "outlierDetection.successRateMinHosts:"},
		{"volume", func(o *OutlierOptions) { o.SuccessRateRequestVolume = -1 }, "outlierDetection.successRateRequestVolume:"},
		{"stdev", func(o *OutlierOptions) { o.SuccessRateStdevFactor = -0.5 }, "outlierDetection.successRateStdevFactor:"},
		{"panic", func(o *OutlierOptions) { o.PanicThreshold = 101 }, "outlierDetection.panicThreshold: 101"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := DefaultOutlierOptions()
			tt.set(&o)
			err := o.Validate()
			if err == nil || !strings.HasPrefix(err.Error(), tt.want) {
				t.Errorf("Validate: got %v, want an error starting %q", err, tt.want)
			}
			if _, err := NewGroup(o); err == nil {
				t.Errorf("NewGroup: got no error, want %q", tt.want)
			}
		})
	}
}

func TestConsecutiveDetectors(t *testing.T) {
	reset, rst, timeout := answer(200), Outcome{Class: Reset}, Outcome{Class: Timeout}
	connect := Outcome{Class: ConnectFailed}
	tests := []struct {
		name  string
		set   func(*OutlierOptions)
		steps []Outcome
		want  Reason // ReasonNone: not ejected
	}{
		{"five 500s", nil, repeat(answer(500), 5), ReasonConsecutive5xx},
		{"four 500s", nil, repeat(answer(500), 4), ReasonNone},
		{"an answer resets the count", nil, append(append(repeat(answer(500), 4), reset), repeat(answer(500), 4)...), ReasonNone},
		{"a 429 is an answer", nil, append(append(repeat(answer(500), 4), answer(429)), answer(500)), ReasonNone},
		{"five 503s are gateway errors", nil, repeat(answer(503), 5), ReasonGatewayErrors},
		{"gateway errors alone", func(o *OutlierOptions) { o.Consecutive5xx = 0 }, repeat(answer(502), 5), ReasonGatewayErrors},
		{"a 500 is no gateway error", func(o *OutlierOptions) { o.Consecutive5xx = 0 }, repeat(answer(500), 9), ReasonNone},
		{"gRPC INTERNAL is a 5xx", nil, repeat(Outcome{Class: Success, Status: GRPCStatus(13)}, 5), ReasonConsecutive5xx},
		{"gRPC UNAVAILABLE is a gateway error", func(o *OutlierOptions) { o.Consecutive5xx = 0 }, repeat(Outcome{Class: Success, Status: GRPCStatus(14)}, 5), ReasonGatewayErrors},
		{"gRPC NOT_FOUND is an answer", nil, repeat(Outcome{Class: Success, Status: GRPCStatus(5)}, 9), ReasonNone},
		{"resets and timeouts are gateway errors", nil, []Outcome{rst, timeout, rst, timeout, rst}, ReasonGatewayErrors},
		{"five connect failures", nil, repeat(connect, 5), ReasonConnectFailure},
		{"a connection made resets the connect count", func(o *OutlierOptions) { o.Consecutive5xx, o.ConsecutiveGatewayErrors = 0, 0 },
			[]Outcome{connect, connect, connect, connect, rst, connect}, ReasonNone},
		{"a timeout does not", func(o *OutlierOptions) { o.Consecutive5xx, o.ConsecutiveGatewayErrors = 0, 0 },
			[]Outcome{connect, connect, connect, connect, timeout, connect}, ReasonConnectFailure},
		{"cancelled says nothing", nil, append(append(repeat(answer(500), 4), Outcome{Class: Cancelled}), answer(500)), ReasonConsecutive5xx},
		{"off", func(o *OutlierOptions) {
			*o = OutlierOptions{Interval: time.Second, BaseEjectionTime: time.Second, MaxEjectionTime: time.Second}
		},
			repeat(connect, 20), ReasonNone},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := open()
			if tt.set != nil {
				tt.set(&o)
			}
			_, eps := group(t, 3, o)
			e := eps[0]
			at := time.Now()
			for _, s := range tt.steps {
				hit(e, at, s)
			}
			if got := e.OutlierEjected(at.UnixNano()); got != (tt.want != ReasonNone) {
				t.Fatalf("ejected after %d outcomes: got %v, want %v", len(tt.steps), got, tt.want != ReasonNone)
			}
			st := e.Stats()
			if st.EjectionReason != tt.want {
				t.Errorf("reason: got %v, want %v", st.EjectionReason, tt.want)
			}
			if tt.want == ReasonNone {
				return
			}
			if got, want := time.Unix(0, e.outlierUntil.Load()).Sub(at), o.BaseEjectionTime; got != want {
				t.Errorf("ejected for %v, want %v", got, want)
			}
			if st.Ejections != 1 || st.EjectionsBy[tt.want] != 1 || !st.Health.Outlier || st.Health.Eligible() {
				t.Errorf("stats: got ejections %d (%v), health %+v, want 1 %v, outlier", st.Ejections, st.EjectionsBy, st.Health, tt.want)
			}
		})
	}
}

func repeat(o Outcome, n int) []Outcome {
	out := make([]Outcome, n)
	for i := range out {
		out[i] = o
	}
	return out
}

// Each ejection in a row lasts one BaseEjectionTime longer, up to
// MaxEjectionTime; every clean Interval after one ends takes a step off.
func TestEjectionMultiplier(t *testing.T) {
	o := open()
	o.MaxEjectionTime = 100 * time.Second
	_, eps := group(t, 2, o)
	e := eps[0]
	at := time.Now()
	eject := func() time.Duration {
		t.Helper()
		for range 5 {
			hit(e, at, answer(500))
		}
		if !e.OutlierEjected(at.UnixNano()) {
			t.Fatalf("not ejected after five 500s")
		}
		d := time.Unix(0, e.outlierUntil.Load()).Sub(at)
		at = at.Add(d)
		return d
	}
	for i, want := range []time.Duration{30 * time.Second, 60 * time.Second, 90 * time.Second, 100 * time.Second, 100 * time.Second} {
		if got := eject(); got != want {
			t.Errorf("ejection %d in a row: got %v, want %v", i+1, got, want)
		}
	}
	// The multiplier stopped at 4 (4 × 30 s ≥ 100 s); two clean
	// intervals bring it to 2, so the next ejection is the third step.
	at = at.Add(2*o.Interval + time.Second)
	if got, want := eject(), 90*time.Second; got != want {
		t.Errorf("ejection after two clean intervals: got %v, want %v", got, want)
	}
	at = at.Add(time.Hour)
	if got, want := eject(), 30*time.Second; got != want {
		t.Errorf("ejection after an hour clean: got %v, want %v", got, want)
	}
	if got := e.Stats().EjectionsBy[ReasonConsecutive5xx]; got != 7 {
		t.Errorf("ejections counted: got %d, want 7", got)
	}
}

func TestMaxEjectionPercent(t *testing.T) {
	tests := []struct {
		members, percent, failing, want int
	}{
		{10, 10, 3, 1},
		{10, 20, 3, 2},
		{3, 10, 3, 1}, // at least one
		{3, 0, 3, 1},
		{5, 100, 5, 5},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%d members %d%%", tt.members, tt.percent), func(t *testing.T) {
			o := DefaultOutlierOptions()
			o.MaxEjectionPercent = tt.percent
			g, eps := group(t, tt.members, o)
			at := time.Now()
			for _, e := range eps[:tt.failing] {
				for range 5 {
					hit(e, at, answer(503))
				}
			}
			st := g.Stats(at)
			if st.Ejected != tt.want || st.Skipped != uint64(tt.failing-tt.want) || st.Ejections[ReasonGatewayErrors] != uint64(tt.want) {
				t.Errorf("ejected %d, skipped %d, counted %v: want %d, %d, %d gateway-errors",
					st.Ejected, st.Skipped, st.Ejections, tt.want, tt.failing-tt.want, tt.want)
			}
			// Once the ejections end, the others may go.
			later := at.Add(o.BaseEjectionTime + time.Second)
			for _, e := range eps[tt.want:tt.failing] {
				for range 5 {
					hit(e, later, answer(503))
				}
			}
			if got, want := g.Stats(later).Ejected, min(tt.want, tt.failing-tt.want); got != want {
				t.Errorf("ejected after the first ended: got %d, want %d", got, want)
			}
		})
	}
}

// An endpoint in no group has the connect backoff only; one that leaves
// its group is ejected no more.
func TestNoGroup(t *testing.T) {
	e := New("svc", "i1", "10.0.0.1:80", nil)
	at := time.Now()
	for range 10 {
		hit(e, at, answer(503))
	}
	if e.OutlierEjected(at.UnixNano()) || e.Group() != nil {
		t.Fatalf("endpoint in no group: ejected %v, group %v, want false, nil", e.OutlierEjected(at.UnixNano()), e.Group())
	}
	g, eps := group(t, 3, open())
	g.SetMembers(eps[1:])
	if eps[0].Group() != nil || eps[1].Group() != g || len(g.Members()) != 2 {
		t.Fatalf("after SetMembers without i0: groups %v %v, members %d, want nil, g, 2", eps[0].Group(), eps[1].Group(), len(g.Members()))
	}
	for range 10 {
		hit(eps[0], at, answer(503))
	}
	if eps[0].OutlierEjected(at.UnixNano()) {
		t.Errorf("endpoint that left its group: ejected, want not")
	}
}

func TestSuccessRate(t *testing.T) {
	tests := []struct {
		name  string
		set   func(*OutlierOptions)
		rates []int // failures per 100 attempts of each member
		want  []int // members ejected
	}{
		{"one far below", nil, []int{0, 1, 0, 2, 1, 50}, []int{5}},
		{"all alike", nil, []int{10, 10, 10, 10, 10, 10}, nil},
		{"too few hosts", nil, []int{0, 0, 0, 50}, nil},
		{"just enough hosts", nil, []int{0, 0, 0, 0, 50}, []int{4}},
		{"too little volume", func(o *OutlierOptions) { o.SuccessRateRequestVolume = 101 }, []int{0, 1, 0, 2, 1, 50}, nil},
		{"off", func(o *OutlierOptions) { o.SuccessRateMinHosts = 0 }, []int{0, 1, 0, 2, 1, 50}, nil},
		{"two below, lowest first, as the percentage allows", func(o *OutlierOptions) { o.MaxEjectionPercent = 10; o.SuccessRateStdevFactor = 0.5 },
			[]int{0, 0, 0, 0, 0, 0, 0, 0, 40, 60}, []int{9}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := open()
			o.Consecutive5xx, o.ConsecutiveGatewayErrors = 0, 0
			if tt.set != nil {
				tt.set(&o)
			}
			g, eps := group(t, len(tt.rates), o)
			at := time.Now()
			g.Tick(at)
			for i, e := range eps {
				for k := range 100 {
					out := answer(200)
					if k < tt.rates[i] {
						out = answer(500)
					}
					hit(e, at, out)
				}
			}
			at = at.Add(o.Interval)
			g.Tick(at)
			var got []int
			for i, e := range eps {
				if e.OutlierEjected(at.UnixNano()) {
					got = append(got, i)
					if r := e.Stats().EjectionReason; r != ReasonSuccessRate {
						t.Errorf("member %d: reason %v, want success-rate", i, r)
					}
				}
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("ejected members: got %v, want %v", got, tt.want)
			}
			// The next interval counts afresh: no traffic, no judgement.
			g.Tick(at.Add(o.Interval))
			if n := g.Stats(at).Ejections[ReasonSuccessRate]; n != uint64(len(tt.want)) {
				t.Errorf("success-rate ejections after a quiet interval: got %d, want %d", n, len(tt.want))
			}
		})
	}
}

func TestHealthFlags(t *testing.T) {
	e := New("svc", "i1", "10.0.0.1:80", nil)
	if h := e.Stats().Health; !h.Eligible() || h.String() != "healthy" {
		t.Fatalf("new endpoint: got %+v (%s), want eligible, healthy", h, h)
	}
	if !e.SetProbeDown(true) || e.SetProbeDown(true) || !e.ProbeDown() {
		t.Errorf("SetProbeDown(true) twice: want changed, then not")
	}
	if h := e.Stats().Health; h.Eligible() || h.String() != "probe-down" {
		t.Errorf("probe-down: got %+v (%s), want not eligible, probe-down", h, h)
	}
	if !e.SetReady(false) || e.Ready() || e.Stats().Health.String() != "not-ready" {
		t.Errorf("SetReady(false): ready %v, health %s, want false, not-ready", e.Ready(), e.Stats().Health)
	}
	e.SetReady(true)
	if !e.SetProbeDown(false) || !e.Stats().Health.Eligible() {
		t.Errorf("back up: health %+v, want eligible", e.Stats().Health)
	}
	e.ConnectFailed()
	if h := e.Stats().Health; !h.BackedOff || h.Outlier || h.String() != "backoff" {
		t.Errorf("after a connect failure: got %+v (%s), want backoff, not outlier", h, h)
	}
}

// A hot endpoint's counters hold under concurrent attempts; run with -race.
func TestOutlierConcurrent(t *testing.T) {
	g, eps := group(t, 4, open())
	done := make(chan struct{})
	for w := range 4 {
		go func() {
			defer func() { done <- struct{}{} }()
			for i := range 2000 {
				code := 200
				if (i+w)%3 == 0 {
					code = 503
				}
				hit(eps[i%4], time.Now(), answer(code))
			}
		}()
	}
	for range 3 {
		g.Tick(time.Now())
		_ = g.Stats(time.Now())
	}
	for range 4 {
		<-done
	}
	var n uint64
	for _, e := range eps {
		n += e.Attempts()
	}
	if n != 8000 {
		t.Errorf("attempts: got %d, want 8000", n)
	}
}
