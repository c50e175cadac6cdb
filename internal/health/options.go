package health

import (
	"fmt"
	"time"
)

// Defaults of Options.
const (
	DefaultInterval           = 5 * time.Second
	DefaultTimeout            = time.Second
	DefaultHealthyThreshold   = 2
	DefaultUnhealthyThreshold = 3
	// DefaultJitter is 10% of DefaultInterval.
	DefaultJitter = DefaultInterval / 10
)

// Options tune the probes of one service's endpoints. A TrafficPolicy's
// spec.healthCheck maps onto it field by field (the names in Validate's
// errors).
type Options struct {
	// Interval is the time between two probes of an endpoint, less up to
	// Jitter. Default 5 s.
	Interval time.Duration
	// Timeout is how long a probe may take, connect included. Default 1 s.
	Timeout time.Duration
	// HealthyThreshold is how many probes in a row must pass for an
	// endpoint that is down to be up again. Default 2.
	HealthyThreshold int
	// UnhealthyThreshold is how many probes in a row must fail for an
	// endpoint to be down. Default 3.
	UnhealthyThreshold int
	// Jitter is the most a probe comes early, chosen at random per probe,
	// so that the probes of many sidecars spread out. Default 10% of
	// Interval (DefaultOptions: 500 ms).
	Jitter time.Duration
}

// DefaultOptions returns the documented defaults.
func DefaultOptions() Options {
	return Options{
		Interval:           DefaultInterval,
		Timeout:            DefaultTimeout,
		HealthyThreshold:   DefaultHealthyThreshold,
		UnhealthyThreshold: DefaultUnhealthyThreshold,
		Jitter:             DefaultJitter,
	}
}

// Validate checks o, naming the first field that is wrong.
func (o Options) Validate() error {
	const p = "healthCheck."
	switch {
	case o.Interval <= 0:
		return fmt.Errorf("%sinterval: %v must be positive", p, o.Interval)
	case o.Timeout <= 0:
		return fmt.Errorf("%stimeout: %v must be positive", p, o.Timeout)
	case o.HealthyThreshold < 1:
		return fmt.Errorf("%shealthyThreshold: %d must be at least 1", p, o.HealthyThreshold)
	case o.UnhealthyThreshold < 1:
		return fmt.Errorf("%sunhealthyThreshold: %d must be at least 1", p, o.UnhealthyThreshold)
	case o.Jitter < 0 || o.Jitter >= o.Interval:
		return fmt.Errorf("%sjitter: %v must be from 0 to less than interval (%v)", p, o.Jitter, o.Interval)
	}
	return nil
}
