package collect

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Store keeps the golden metrics of the last hour, in ten-second slots,
// from the reports sidecars send:
//
//	report (service, instance) --inbound series---------> instance ring
//	                           --outbound, egress series--> edge ring (source -> destination)
//	Service = the sum of its instances' rings; mirror series are not kept.
//
// Memory is bounded by Config.MaxSeries rings of about 30 KB each; a
// series that would go past it is dropped and counted
// (weft_collect_series_dropped_total). A series with nothing in the last
// hour is forgotten, and so is a sidecar that has not reported for an
// hour.
type Store struct {
	cfg     Config
	dropped prometheus.Counter

	mu        sync.Mutex
	instances map[string]map[string]*ring // service -> instance
	edges     map[string]map[string]*ring // source -> destination
	senders   map[sender]reportMark       // the last report applied, per sidecar
	held      int                         // rings in instances and edges
	swept     int64                       // slot number of the last sweep
}

type sender struct{ service, instance string }

type reportMark struct {
	boot string
	seq  uint64
	at   int64 // slot number when applied
}

// Config shapes a Store.
type Config struct {
	// MaxSeries is how many series (instance and edge rings) the store
	// holds at most. Default 10,000: at most about 300 MB.
	MaxSeries int
	// Now is the clock; time.Now by default.
	Now func() time.Time
}

// DefaultMaxSeries is Config.MaxSeries's default.
const DefaultMaxSeries = 10_000

// ErrBadReport is wrapped by Ingest's errors for a report it refuses.
var ErrBadReport = errors.New("bad report")

// NewStore makes a Store and registers its metrics in reg.
func NewStore(cfg Config, reg prometheus.Registerer) (*Store, error) {
	if cfg.MaxSeries == 0 {
		cfg.MaxSeries = DefaultMaxSeries
	}
	if cfg.MaxSeries < 0 {
		return nil, fmt.Errorf("collect: MaxSeries %d: must not be negative", cfg.MaxSeries)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	s := &Store{
		cfg:       cfg,
		instances: map[string]map[string]*ring{},
		edges:     map[string]map[string]*ring{},
		senders:   map[sender]reportMark{},
		dropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "weft_collect_series_dropped_total",
			Help: "Series updates from sidecars' reports dropped because the collection center held its maximum of series.",
		}),
	}
	held := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "weft_collect_series",
		Help: "Series (per instance and per edge, an hour in 10-second slots each) the collection center holds.",
	}, func() float64 {
		s.mu.Lock()
		defer s.mu.Unlock()
		return float64(s.held)
	})
	for _, c := range []prometheus.Collector{s.dropped, held} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("collect: register metrics: %w", err)
		}
	}
	return s, nil
}

// Ingest applies the report of one sidecar, the instance of service.
// A report applied already (the same Boot and Seq, or an older Seq) is
// acknowledged and not applied again.
func (s *Store) Ingest(service, instance string, r *Report) (Ack, error) {
	if err := r.Validate(); err != nil {
		return Ack{}, fmt.Errorf("%w: %w", ErrBadReport, err)
	}
	t := s.cfg.Now()
	now := slotOf(t)
	at := max(slotOf(t.Add(-r.Age())), now-Slots+1) // late figures go in the oldest slot, not nowhere
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sweep(now)
	from := sender{service, instance}
	if m, ok := s.senders[from]; ok && m.boot == r.Boot && r.Seq <= m.seq {
		return Ack{Seq: r.Seq}, nil
	}
	if _, ok := s.senders[from]; ok || len(s.senders) < s.cfg.MaxSeries {
		// Past as many sidecars as series, the figures are taken but no
		// mark is kept: a report sent again could count twice.
		s.senders[from] = reportMark{boot: r.Boot, seq: r.Seq, at: now}
	}
	for i := range r.Series {
		x := &r.Series[i]
		var g *ring
		switch x.Direction {
		case Inbound:
			g = s.ring(s.instances, service, instance)
		case Outbound, Egress:
			g = s.ring(s.edges, x.Source, x.Destination)
		default:
			continue
		}
		if g == nil {
			s.dropped.Inc()
			continue
		}
		g.add(at, x)
	}
	return Ack{Seq: r.Seq, Applied: true}, nil
}

// ring is the ring of a/b in m, made when the limit allows; nil when not.
func (s *Store) ring(m map[string]map[string]*ring, a, b string) *ring {
	inner := m[a]
	if g := inner[b]; g != nil {
		return g
	}
	if s.held >= s.cfg.MaxSeries {
		return nil
	}
	if inner == nil {
		inner = map[string]*ring{}
		m[a] = inner
	}
	g := &ring{}
	inner[b] = g
	s.held++
	return g
}

// sweep forgets, once a minute, the series with nothing in the last hour
// and the sidecars that have not reported in it.
func (s *Store) sweep(now int64) {
	if now-s.swept < int64(time.Minute/Resolution) {
		return
	}
	s.swept = now
	oldest := now - Slots + 1
	for _, m := range []map[string]map[string]*ring{s.instances, s.edges} {
		for a, inner := range m {
			for b, g := range inner {
				if g.last < oldest {
					delete(inner, b)
					s.held--
				}
			}
			if len(inner) == 0 {
				delete(m, a)
			}
		}
	}
	for k, m := range s.senders {
		if m.at < oldest {
			delete(s.senders, k)
		}
	}
}
