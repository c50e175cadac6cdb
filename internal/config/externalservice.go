package config

import (
	"encoding/json"
	"fmt"
	"net"
	"strconv"
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

func validateExternalService(spec json.RawMessage) (string, string) {
	var s ExternalService
	if f, m := decodeSpec(spec, &s); m != "" {
		return f, m
	}
	if s.Protocol != "" && s.Protocol != "http" && s.Protocol != "tcp" {
		return "spec.protocol", fmt.Sprintf("%q must be http or tcp", s.Protocol)
	}
	if len(s.Endpoints) == 0 {
		return "spec.endpoints", "needs at least one endpoint"
	}
	for i, e := range s.Endpoints {
		field := fmt.Sprintf("spec.endpoints[%d].address", i)
		host, port, err := net.SplitHostPort(e.Address)
		if err != nil || host == "" {
			return field, fmt.Sprintf("%q is not host:port", e.Address)
		}
		if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
			return field, fmt.Sprintf("port %q must be a number from 1 to 65535", port)
		}
	}
	return "", ""
}
