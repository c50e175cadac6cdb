package lb

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"golang.org/x/net/http/httpguts"
)

// Names of the balancers New makes. "default" is P2C.
const (
	NameDefault      = "default"
	NameRoundRobin   = "round-robin"
	NameP2C          = "p2c"
	NameLeastRequest = "least-request"
	NameRandom       = "random"
	NameWeighted     = "weighted"
	NameRingHash     = "ring-hash"
)

// Names lists the names New accepts.
var Names = []string{NameDefault, NameP2C, NameRoundRobin, NameLeastRequest, NameRandom, NameWeighted, NameRingHash}

// ErrUnknown is the error of a balancer name New does not know.
var ErrUnknown = errors.New("unknown balancer")

// Options tune the balancers New makes; the zero value is every default.
type Options struct {
	// Seed seeds the random choices of p2c, least-request, random and
	// ring-hash (0: a random seed). Tests set it to repeat their picks.
	Seed uint64
	// HashHeader is the request header ring-hash hashes; or HashCookie,
	// a cookie; or HashSource, the client's address (one of the three is
	// required there).
	HashHeader string
	HashCookie string
	HashSource bool
	// VirtualNodes is ring-hash's points per endpoint (0:
	// DefaultVirtualNodes; at most MaxVirtualNodes).
	VirtualNodes int
	// WeightLabel is the endpoint label weighted reads (""
	// DefaultWeightLabel).
	WeightLabel string
}

// Validate checks the options for the balancer name.
func (o Options) Validate(name string) error {
	if o.VirtualNodes < 0 || o.VirtualNodes > MaxVirtualNodes {
		return fmt.Errorf("lb: %s: virtual nodes %d: want 0 (the default, %d) to %d", name, o.VirtualNodes, DefaultVirtualNodes, MaxVirtualNodes)
	}
	if name == NameRingHash {
		n := 0
		for _, set := range []bool{o.HashHeader != "", o.HashCookie != "", o.HashSource} {
			if set {
				n++
			}
		}
		if n != 1 {
			return fmt.Errorf("lb: %s: hash on one of a header, a cookie or the source (%d given)", name, n)
		}
		if o.HashCookie != "" && strings.ContainsAny(o.HashCookie, " \t\r\n;=,\"") {
			return fmt.Errorf("lb: %s: hash cookie %q is not a cookie name", name, o.HashCookie)
		}
		if o.HashHeader != "" && !httpguts.ValidHeaderFieldName(o.HashHeader) {
			return fmt.Errorf("lb: %s: hash header %q is not a header name", name, o.HashHeader)
		}
	}
	if o.WeightLabel != "" && strings.ContainsAny(o.WeightLabel, " \t\r\n") {
		return fmt.Errorf("lb: %s: weight label %q has white space", name, o.WeightLabel)
	}
	return nil
}

// New returns the balancer called name, tuned by o: a fresh one, for one
// service.
func New(name string, o Options) (Balancer, error) {
	if !slices.Contains(Names, name) {
		return nil, fmt.Errorf("lb: %w %q: want one of %s", ErrUnknown, name, strings.Join(Names, ", "))
	}
	if err := o.Validate(name); err != nil {
		return nil, err
	}
	switch name {
	case NameDefault, NameP2C:
		return NewP2C(o.Seed), nil
	case NameRoundRobin:
		return &RoundRobin{}, nil
	case NameLeastRequest:
		return NewLeastRequest(o.Seed), nil
	case NameRandom:
		return NewRandom(o.Seed), nil
	case NameWeighted:
		return NewWeighted(o.WeightLabel), nil
	case NameRingHash:
		h := NewRingHash(o.HashHeader, o.VirtualNodes, o.Seed)
		h.Cookie, h.Source = o.HashCookie, o.HashSource
		return h, nil
	}
	panic("lb: " + name + " is in Names but not in New") // not reached
}
