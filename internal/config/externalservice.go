package config

import (
	"encoding/json"
	"fmt"
	"net"
	"strconv"
	"strings"
)

// ExternalService declares a service that has no sidecar: the mesh routes
// to the endpoints listed here instead of to registered instances.
type ExternalService struct {
	// Protocol is what the endpoints speak: http (the default) or tcp. A
	// TCP service is forwarded as bytes, without protocol detection.
	Protocol  string     `json:"protocol,omitempty"`
	Endpoints []Endpoint `json:"endpoints"`
}

// Endpoint is one address of an external service.
type Endpoint struct {
	Address string            `json:"address"` // host:port
	Labels  map[string]string `json:"labels,omitempty"`
}

// DecodeExternalService reads the spec of a validated ExternalService.
func DecodeExternalService(r *Resource) (ExternalService, error) {
	var s ExternalService
	err := json.Unmarshal(r.Spec, &s)
	return s, err
}

func validateExternalService(spec json.RawMessage) *FieldError {
	var s ExternalService
	if fe := decodeSpec(spec, &s); fe != nil {
		return fe
	}
	if s.Protocol != "" && s.Protocol != "http" && s.Protocol != "tcp" {
		return &FieldError{Field: "spec.protocol", Msg: fmt.Sprintf("%q must be http or tcp", s.Protocol)}
	}
	if len(s.Endpoints) == 0 {
		return &FieldError{Field: "spec.endpoints", Msg: "needs at least one endpoint"}
	}
	seen := map[string]int{} // canonical address → index
	for i, e := range s.Endpoints {
		field := fmt.Sprintf("spec.endpoints[%d].address", i)
		host, port, err := net.SplitHostPort(e.Address)
		if err != nil || host == "" {
			return &FieldError{Field: field, Msg: fmt.Sprintf("%q is not host:port", e.Address)}
		}
		p, err := strconv.Atoi(port)
		if err != nil || p < 1 || p > 65535 {
			return &FieldError{Field: field, Msg: fmt.Sprintf("port %q must be a number from 1 to 65535", port)}
		}
		key := canonicalAddr(host, p)
		if first, dup := seen[key]; dup {
			return &FieldError{Field: field, Msg: fmt.Sprintf("%q is the same endpoint as spec.endpoints[%d] (%q)", e.Address, first, s.Endpoints[first].Address)}
		}
		seen[key] = i
		if fe := validateLabels(fmt.Sprintf("spec.endpoints[%d].labels", i), e.Labels); fe != nil {
			return fe
		}
	}
	return nil
}

// SameEndpoint reports whether two host:port addresses name the same
// endpoint, as validation counts duplicates.
func SameEndpoint(a, b string) bool {
	ka, oka := endpointKey(a)
	kb, okb := endpointKey(b)
	return oka && okb && ka == kb
}

func endpointKey(addr string) (string, bool) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", false
	}
	p, err := strconv.Atoi(port)
	if err != nil {
		return "", false
	}
	return canonicalAddr(host, p), true
}

// canonicalAddr spells an address one way, so that pay.example.com:443 and
// PAY.example.com:0443, or [::1]:80 and [0::1]:80, count as one endpoint.
func canonicalAddr(host string, port int) string {
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	if ip := net.ParseIP(host); ip != nil {
		host = ip.String()
	}
	return net.JoinHostPort(host, strconv.Itoa(port))
}
