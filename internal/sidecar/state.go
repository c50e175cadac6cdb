package sidecar

import (
	"encoding/json"
	"net/http"
	"strings"
	"time"

	"github.com/weftmesh/weft/internal/config"
	"github.com/weftmesh/weft/internal/proxy"
	"github.com/weftmesh/weft/internal/push"
	"github.com/weftmesh/weft/internal/registry"
	"github.com/weftmesh/weft/internal/telemetry"
)

// applyState turns what the control plane pushed into the routing table:
// ready instances of each service, plus the endpoints of external services.
// A service whose instances are all not ready stays in the table, empty.
func (s *Sidecar) applyState(st push.State, rev int64) {
	services := map[string][]proxy.EndpointSpec{}
	for key, raw := range st {
		switch {
		case strings.HasPrefix(key, registry.KeyPrefix):
			var in registry.Instance
			if err := json.Unmarshal(raw, &in); err != nil {
				s.log.Warn("ignoring a malformed instance record", "key", key, "err", err)
				continue
			}
			list := services[in.Service]
			if in.Ready {
				list = append(list, proxy.EndpointSpec{Instance: in.ID, Address: in.Address, Labels: in.Labels, Protocol: in.Protocol})
			}
			services[in.Service] = list
		case strings.HasPrefix(key, config.KeyPrefix+"ExternalService/"):
			r, err := config.Decode(raw, 0)
			if err != nil {
				s.log.Warn("ignoring a malformed resource", "key", key, "err", err)
				continue
			}
			spec, err := config.DecodeExternalService(&r)
			if err != nil {
				s.log.Warn("ignoring a malformed ExternalService", "key", key, "err", err)
				continue
			}
			list := services[r.Metadata.Name]
			for _, e := range spec.Endpoints {
				list = append(list, proxy.EndpointSpec{Instance: "external:" + e.Address, Address: e.Address, Labels: e.Labels, Protocol: spec.Protocol})
			}
			services[r.Metadata.Name] = list
		}
	}
	s.table.Update(services)
	s.log.Debug("routing table updated", "revision", rev, "services", len(services))
}

func (s *Sidecar) adminMux() *http.ServeMux {
	return telemetry.Admin{Registry: s.deps.Registry, Ready: s.ready, Config: s.config}.Mux()
}

// ready is /readyz: in sync with the control plane at least once,
// registered, and the app up. After the first sync, losing the control
// plane does not make the sidecar unready: it keeps routing with what it
// last knew, and says so in the detail.
func (s *Sidecar) ready() telemetry.Status {
	d := map[string]any{
		"synced":           s.push.Synced(),
		"controlConnected": s.push.Connected(),
		"revision":         s.push.Revision(),
	}
	ok := s.push.Synced()
	if !ok {
		d["waitingFor"] = "first sync with the control plane at " + s.cfg.Control
	}
	if s.reg != nil {
		reg, lease := s.reg.Registered()
		appUp := s.health.ok.Load()
		d["registered"], d["lease"], d["appUp"] = reg, lease, appUp
		if !reg && ok {
			d["waitingFor"] = "registration with the control plane at " + s.cfg.Control
		}
		if !appUp && ok && reg {
			d["waitingFor"] = "the app at " + s.health.app
		}
		ok = ok && reg && appUp
	}
	return telemetry.Status{Ready: ok, Detail: d}
}

// configView is /config: what this sidecar runs with.
type configView struct {
	Config   Config                    `json:"config"`
	Revision int64                     `json:"revision"`
	Services map[string][]endpointView `json:"services"`
}

type endpointView struct {
	Instance string            `json:"instance"`
	Address  string            `json:"address"`
	Labels   map[string]string `json:"labels,omitempty"`
	Ejected  bool              `json:"ejected,omitempty"`
}

func (s *Sidecar) config() any {
	v := configView{Config: s.cfg, Revision: s.push.Revision(), Services: map[string][]endpointView{}}
	now := time.Now().UnixNano()
	for _, name := range s.table.Services() {
		c := s.table.Lookup(name)
		if c == nil {
			continue
		}
		eps := make([]endpointView, 0, len(c.Endpoints))
		for _, e := range c.Endpoints {
			eps = append(eps, endpointView{Instance: e.Instance, Address: e.Address, Labels: e.Labels, Ejected: e.Ejected(now)})
		}
		v.Services[name] = eps
	}
	return v
}
