package plan

import (
	"bytes"
	"net/http"
	"strings"

	"github.com/weftmesh/weft/internal/config"
)

// HeaderEdits is a route rule's RequestHeaderModifier or
// ResponseHeaderModifier: fields set (every value replaced), added and
// removed, names in lower case. Each engine applies them to the head it
// writes (Drops while it copies the fields, then Each).
type HeaderEdits struct {
	set, add []config.HeaderValue
	remove   []string
}

func newHeaderEdits(m *config.HeaderModifier) *HeaderEdits {
	if m == nil {
		return nil
	}
	return &HeaderEdits{set: m.Set, add: m.Add, remove: m.Remove}
}

// Drops reports whether a field the request (or response) came with is
// left out: removed, or set anew. Nil-safe.
func (h *HeaderEdits) Drops(name []byte) bool {
	if h == nil {
		return false
	}
	for _, r := range h.remove {
		if len(r) == len(name) && bytes.EqualFold(name, []byte(r)) {
			return true
		}
	}
	for _, s := range h.set {
		if len(s.Name) == len(name) && bytes.EqualFold(name, []byte(s.Name)) {
			return true
		}
	}
	return false
}

// DropsString is Drops for a name as a string.
func (h *HeaderEdits) DropsString(name string) bool {
	if h == nil {
		return false
	}
	for _, r := range h.remove {
		if strings.EqualFold(name, r) {
			return true
		}
	}
	for _, s := range h.set {
		if strings.EqualFold(name, s.Name) {
			return true
		}
	}
	return false
}

// Each calls f for every field to write after the ones kept: those set,
// then those added. Nil-safe.
func (h *HeaderEdits) Each(f func(name, value string)) {
	if h == nil {
		return
	}
	for _, s := range h.set {
		f(s.Name, s.Value)
	}
	for _, a := range h.add {
		f(a.Name, a.Value)
	}
}

// Apply edits h in place (the engines built on net/http). Nil-safe.
func (h *HeaderEdits) Apply(hd http.Header) {
	if h == nil {
		return
	}
	for _, r := range h.remove {
		hd.Del(r)
	}
	for _, s := range h.set {
		hd.Del(s.Name)
	}
	h.Each(hd.Add)
}

// then is h followed by next: one set of edits that does what applying
// h and then next does. A field next sets or removes is dropped from h's
// sets and adds. Nil-safe.
func (h *HeaderEdits) then(next *HeaderEdits) *HeaderEdits {
	if next == nil {
		return h
	}
	if h == nil {
		return next
	}
	out := &HeaderEdits{remove: append(append([]string(nil), h.remove...), next.remove...)}
	kept := func(vs []config.HeaderValue) []config.HeaderValue {
		var k []config.HeaderValue
		for _, v := range vs {
			if !next.DropsString(v.Name) {
				k = append(k, v)
			}
		}
		return k
	}
	out.set = append(kept(h.set), next.set...)
	out.add = append(kept(h.add), next.add...)
	return out
}
