package collect

import (
	"testing"
	"time"
)

func TestServiceSeriesSumsEachStep(t *testing.T) {
	s, c, _ := newStore(t, 0)
	ingest(t, s, "api", "api-1", report(1, apiIn, 6, 0, 2)) // 3 minutes before the end
	c.advance(time.Minute)
	ingest(t, s, "api", "api-1", report(2, apiIn, 12, 3, 2)) // 2 minutes before
	ingest(t, s, "api", "api-2", report(1, apiIn, 12, 0, 2))
	c.advance(2 * time.Minute)
	ingest(t, s, "api", "api-1", report(3, apiIn, 60, 0, 5)) // in the current slot
	ingest(t, s, "web", "web-1", report(1, webToAPI, 99, 0, 2))

	got, ok := s.ServiceSeries("api", 5*time.Minute, time.Minute)
	if !ok {
		t.Fatal("ServiceSeries(api): ok false, want true")
	}
	if got.Service != "api" || got.Window != "5m" || got.Step != "1m" || len(got.Points) != 5 {
		t.Fatalf("got %s window %s step %s, %d points; want api, 5m, 1m, 5 points", got.Service, got.Window, got.Step, len(got.Points))
	}
	want := []struct {
		requests, failures uint64
	}{{0, 0}, {6, 0}, {24, 3}, {0, 0}, {60, 0}}
	var total uint64
	for i, w := range want {
		p := got.Points[i]
		total += p.Requests
		if p.Requests != w.requests || p.Failures != w.failures {
			t.Errorf("point %d: got %d requests, %d failures; want %d, %d", i, p.Requests, p.Failures, w.requests, w.failures)
		}
	}
	if p := got.Points[2]; p.RPS != 24.0/60 || p.SuccessRate != 1-3.0/24 {
		t.Errorf("point 2: got rps %v, success %v; want %v, %v", p.RPS, p.SuccessRate, 24.0/60, 1-3.0/24)
	}
	if all := s.Service("api", 5*time.Minute); all.Requests != total {
		t.Errorf("points add up to %d requests, Service over the window says %d", total, all.Requests)
	}
	end := time.Unix(0, (slotOf(c.Now())+1)*int64(Resolution)).UTC()
	for i, p := range got.Points {
		if wantT := end.Add(-time.Duration(len(got.Points)-1-i) * time.Minute); !p.Time.Equal(wantT) {
			t.Errorf("point %d ends at %s, want %s", i, p.Time, wantT)
		}
	}
	if p := got.Points[4]; p.P99 <= got.Points[2].P99 {
		t.Errorf("p99 of the slow step %s is not above the fast one's %s", p.P99, got.Points[2].P99)
	}
}

func TestServiceSeriesOfAnUnknownService(t *testing.T) {
	s, _, _ := newStore(t, 0)
	got, ok := s.ServiceSeries("nosuch", time.Hour, time.Hour)
	if ok {
		t.Error("ok true for a service the store never saw")
	}
	if len(got.Points) != 1 || got.Points[0].Requests != 0 || got.Points[0].SuccessRate != 1 {
		t.Errorf("got %+v, want one empty point", got.Points)
	}
}

func TestParseStep(t *testing.T) {
	cases := []struct {
		in     string
		window time.Duration
		want   time.Duration
		err    bool
	}{
		{"", time.Hour, time.Minute, false},
		{"", time.Minute, Resolution, false},
		{"30s", time.Hour, 30 * time.Second, false},
		{"15s", time.Hour, 20 * time.Second, false},
		{"1s", time.Hour, 0, true},
		{"2h", time.Hour, 0, true},
		{"2m", time.Minute, 0, true},
		{"soon", time.Hour, 0, true},
	}
	for _, c := range cases {
		got, err := ParseStep(c.in, c.window)
		if (err != nil) != c.err || got != c.want {
			t.Errorf("ParseStep(%q, %s): got %s, %v; want %s, error %v", c.in, c.window, got, err, c.want, c.err)
		}
	}
}
