package endpoint

// Local is per-endpoint state an engine keeps on the endpoint, such as
// its connection pool. CloseIdle closes what carries nothing now and lets
// the rest close when done: it runs when the endpoint leaves the routing
// table, and when the sidecar stops.
type Local interface {
	CloseIdle()
}

// Slot names one engine's place on every endpoint.
type Slot uint8

const maxSlots = 4

var makers []func(*Endpoint) Local

// NewSlot reserves a slot whose value mk makes for every new endpoint.
// Call it only from package initialisation (a var declaration), before
// any endpoint exists; it panics past the few the data path needs.
func NewSlot(mk func(*Endpoint) Local) Slot {
	if len(makers) >= maxSlots {
		panic("endpoint: too many slots")
	}
	makers = append(makers, mk)
	return Slot(len(makers) - 1)
}

// makeLocals fills e's slots.
func (e *Endpoint) makeLocals() {
	for i, mk := range makers {
		e.locals[i] = mk(e)
	}
}

// Local returns the value of slot s.
func (e *Endpoint) Local(s Slot) Local { return e.locals[s] }

// CloseIdle asks every engine's state on e to close what is idle.
func (e *Endpoint) CloseIdle() {
	for _, l := range e.locals {
		if l != nil {
			l.CloseIdle()
		}
	}
}
