// Package snapshot compiles what the control plane pushed into the typed,
// validated view the data path routes with, once per push and off the
// request path:
//
//	push.State (etcd key -> JSON) --Compiler.Compile--> *Snapshot
//	   instances, service records,         services: name, endpoints
//	   ExternalService and                  (ready or not), protocol, known,
//	   TrafficPolicy resources              traffic policy (defaults filled)
//	                                              |
//	                            proxy.Table.Update (swapped atomically)
//
// Records that did not change since the last push are not decoded again.
// A record that cannot be decoded is left out and reported; it never
// takes the rest of the snapshot with it. The data path (package proxy)
// knows no etcd key and decodes no JSON.
package snapshot

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"github.com/weftmesh/weft/internal/config"
	"github.com/weftmesh/weft/internal/push"
	"github.com/weftmesh/weft/internal/registry"
)

// Snapshot is the mesh as one sidecar sees it at one revision.
type Snapshot struct {
	Revision int64
	Services map[string]*Service
	// Authorization is every AuthorizationPolicy of the mesh, sorted by
	// name: each inbound compiles those of its service and the mesh
	// policy (package security/authz).
	Authorization []config.Authorization
	// PeerAuthentication is every PeerAuthentication of the mesh, sorted
	// by name: each inbound takes its mode from them
	// (config.PeerAuthModeFor).
	PeerAuthentication []config.PeerAuth
}

// Service is one name the mesh routes to.
type Service struct {
	Name string
	// Endpoints are every endpoint the mesh lists, ready or not, sorted
	// by address.
	Endpoints []Endpoint
	// External: the endpoints come from an ExternalService resource.
	External bool
	// Protocol is what every endpoint (ready or not) declares, when they
	// agree; else "". The data path uses CommonProtocol of the ready ones.
	Protocol string
	// Policy is how traffic to the service flows: its TrafficPolicy with
	// the defaults filled in, or DefaultPolicy when it has none (or its
	// resource cannot be used, which Compile reports).
	Policy Policy
	// Routes are the rules of the HTTPRoutes and GRPCRoutes whose parent
	// is the service, in precedence order: the first that matches a
	// request decides where it goes. None: requests go to the service's
	// own instances.
	Routes []Route
}

// Endpoint is one instance (or external address) of a service.
type Endpoint struct {
	Instance string
	Address  string
	Labels   map[string]string
	Protocol string // http, h2c, tcp ("" for an HTTP external service)
	Ready    bool   // the instance's sidecar reports its app up (external: always)
	External bool   // from an ExternalService: nothing checks it
	MTLS     bool   // its sidecar takes mutual TLS (registry.Instance.MTLS)
}

// Ready returns the endpoints traffic may go to.
func (s *Service) Ready() []Endpoint {
	out := make([]Endpoint, 0, len(s.Endpoints))
	for _, e := range s.Endpoints {
		if e.Ready {
			out = append(out, e)
		}
	}
	return out
}

// Names lists the services, sorted.
func (s *Snapshot) Names() []string {
	out := make([]string, 0, len(s.Services))
	for n := range s.Services {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Problem is a record left out of a snapshot, and why.
type Problem struct {
	Key string
	Err error
}

func (p Problem) Error() string { return p.Key + ": " + p.Err.Error() }

// Compiler turns pushed state into snapshots, remembering what it decoded
// so that an unchanged record is not decoded again. Not safe for
// concurrent use: the push client calls it from one goroutine.
type Compiler struct {
	cache    map[string]decoded
	defaults *Policy // DefaultPolicy, compiled once
}

func (c *Compiler) defaultPolicy() Policy {
	if c.defaults == nil {
		p := DefaultPolicy()
		c.defaults = &p
	}
	return *c.defaults
}

type decoded struct {
	raw []byte
	v   any // registry.Instance, registry.Service, extService, policyRecord, routeRecord, subsetRecord, faultRecord, config.Authorization or config.PeerAuth
	err error
}

type extService struct {
	name string
	spec config.ExternalService
}

// Compile builds the snapshot of st at rev. Problems lists the records
// left out that are new or changed since the last Compile (one that
// stays broken is reported once). A TrafficPolicy applies to the service
// its name names once that service exists; a broken one is a problem and
// its service has the defaults.
func (c *Compiler) Compile(st push.State, rev int64) (*Snapshot, []Problem) {
	next := make(map[string]decoded, len(st))
	snap := &Snapshot{Revision: rev, Services: map[string]*Service{}}
	var problems []Problem
	policies := map[string]Policy{}
	var routes []routeRecord
	subsets := map[string]config.ServiceSubset{}
	faults := map[string]Fault{}
	service := func(name string) *Service {
		s := snap.Services[name]
		if s == nil {
			s = &Service{Name: name}
			snap.Services[name] = s
		}
		return s
	}
	for key, raw := range st {
		d, ok := c.cache[key]
		if !ok || !bytes.Equal(d.raw, raw) {
			d = decode(key, raw)
			if d.err != nil {
				problems = append(problems, Problem{Key: key, Err: d.err})
			}
		}
		next[key] = d
		if d.err != nil {
			continue
		}
		switch v := d.v.(type) {
		case registry.Instance:
			s := service(v.Service)
			s.Endpoints = append(s.Endpoints, Endpoint{Instance: v.ID, Address: v.Address, Labels: v.Labels,
				Protocol: v.Protocol, Ready: v.Ready, MTLS: v.MTLS})
		case registry.Service:
			service(v.Name)
		case extService:
			s := service(v.name)
			s.External = true
			for _, e := range v.spec.Endpoints {
				s.Endpoints = append(s.Endpoints, Endpoint{Instance: "external:" + e.Address, Address: e.Address,
					Labels: e.Labels, Protocol: v.spec.Protocol, Ready: true, External: true})
			}
		case policyRecord:
			policies[v.service] = v.policy
		case routeRecord:
			routes = append(routes, v)
		case subsetRecord:
			subsets[v.name] = v.spec
		case faultRecord:
			faults[v.fault.Name] = v.fault
		case config.Authorization:
			snap.Authorization = append(snap.Authorization, v)
		case config.PeerAuth:
			snap.PeerAuthentication = append(snap.PeerAuthentication, v)
		}
	}
	c.cache = next
	resolveRoutes(routes, subsets, faults, service)
	defaults := c.defaultPolicy()
	for _, s := range snap.Services {
		sort.Slice(s.Endpoints, func(i, j int) bool { return s.Endpoints[i].Address < s.Endpoints[j].Address })
		s.Protocol = CommonProtocol(s.Endpoints)
		if p, ok := policies[s.Name]; ok {
			s.Policy = p
		} else {
			s.Policy = defaults
		}
		sortRoutes(s.Routes)
	}
	sort.Slice(snap.Authorization, func(i, j int) bool { return snap.Authorization[i].Name < snap.Authorization[j].Name })
	sort.Slice(snap.PeerAuthentication, func(i, j int) bool { return snap.PeerAuthentication[i].Name < snap.PeerAuthentication[j].Name })
	sort.Slice(problems, func(i, j int) bool { return problems[i].Key < problems[j].Key })
	return snap, problems
}

// decode reads one record; keys it does not route with decode to nil.
func decode(key string, raw []byte) decoded {
	d := decoded{raw: raw}
	switch {
	case strings.HasPrefix(key, registry.KeyPrefix):
		var in registry.Instance
		if err := json.Unmarshal(raw, &in); err != nil {
			d.err = fmt.Errorf("malformed instance record: %w", err)
		} else if err := in.Validate(); err != nil {
			d.err = fmt.Errorf("invalid instance record: %w", err)
		} else {
			d.v = in
		}
	case strings.HasPrefix(key, registry.ServiceKeyPrefix):
		var sv registry.Service
		if err := json.Unmarshal(raw, &sv); err != nil {
			d.err = fmt.Errorf("malformed service record: %w", err)
		} else if err := registry.ValidName(sv.Name); err != nil {
			d.err = fmt.Errorf("invalid service record: %w", err)
		} else if key != registry.ServiceKey(sv.Name) {
			d.err = fmt.Errorf("service record names %q, not the service of its key", sv.Name)
		} else {
			d.v = sv
		}
	case strings.HasPrefix(key, config.KeyPrefix+"ExternalService/"):
		r, err := config.Decode(raw, 0)
		if err != nil {
			d.err = fmt.Errorf("malformed resource: %w", err)
			break
		}
		spec, err := config.DecodeExternalService(&r)
		if err != nil {
			d.err = fmt.Errorf("malformed ExternalService: %w", err)
			break
		}
		d.v = extService{name: r.Metadata.Name, spec: spec}
	case strings.HasPrefix(key, config.KeyPrefix+"HTTPRoute/"), strings.HasPrefix(key, config.KeyPrefix+"GRPCRoute/"):
		rr, err := decodeRoute(key, raw)
		if err != nil {
			d.err = err
			break
		}
		d.v = rr
	case strings.HasPrefix(key, config.KeyPrefix+"Fault/"):
		fr, err := decodeFault(raw)
		if err != nil {
			d.err = err
			break
		}
		d.v = fr
	case strings.HasPrefix(key, config.KeyPrefix+"ServiceSubset/"):
		sr, err := decodeSubset(raw)
		if err != nil {
			d.err = err
			break
		}
		d.v = sr
	case strings.HasPrefix(key, config.KeyPrefix+authorizationKind+"/"):
		a, err := decodeAuthorization(key, raw)
		if err != nil {
			d.err = err
			break
		}
		d.v = a
	case strings.HasPrefix(key, config.KeyPrefix+peerAuthKind+"/"):
		p, err := decodePeerAuth(key, raw)
		if err != nil {
			d.err = err
			break
		}
		d.v = p
	case strings.HasPrefix(key, config.KeyPrefix+policyKind+"/"):
		pr, err := decodePolicy(key, raw)
		if err != nil {
			d.err = err
			break
		}
		d.v = pr
	}
	return d
}

// CommonProtocol is the protocol every endpoint of eps declares, or "".
func CommonProtocol(eps []Endpoint) string {
	if len(eps) == 0 {
		return ""
	}
	p := eps[0].Protocol
	for _, e := range eps[1:] {
		if e.Protocol != p {
			return ""
		}
	}
	return p
}
