package snapshot

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/weftmesh/weft/internal/config"
)

// RouteConflict is a rule that never takes a request: a rule of higher
// precedence for the same parent service matches exactly what it does.
type RouteConflict struct {
	Parent string
	Match  string // what both match (config.RouteRule.Describe)
	Loser  string // HTTPRoute/NAME rule N (match M)
	Winner string
}

func (c RouteConflict) String() string {
	return fmt.Sprintf("%s on %s (%s): %s wins", c.Loser, c.Parent, c.Match, c.Winner)
}

// RouteConflicts finds, among the HTTPRoutes and GRPCRoutes given, the
// rules that never win by Gateway API's precedence (as the data path
// orders them: sortRoutes), and the rule that wins each time. Routes
// that do not compile are left out (apply refuses them).
func RouteConflicts(routes []config.Resource) []RouteConflict {
	byParent := map[string][]Route{}
	for i := range routes {
		parents, rules, err := config.CompileRoute(&routes[i])
		if err != nil {
			continue
		}
		for _, p := range parents {
			for _, r := range rules {
				byParent[p] = append(byParent[p], Route{RouteRule: r})
			}
		}
	}
	var out []RouteConflict
	for _, p := range slices.Sorted(maps.Keys(byParent)) {
		rs := byParent[p]
		sortRoutes(rs)
		for j := range rs {
			for i := range j {
				if sameMatch(&rs[i].RouteRule, &rs[j].RouteRule) {
					out = append(out, RouteConflict{Parent: p, Match: rs[j].Describe(), Loser: ruleRef(&rs[j].RouteRule), Winner: ruleRef(&rs[i].RouteRule)})
					break
				}
			}
		}
	}
	return out
}

func ruleRef(r *config.RouteRule) string {
	s := fmt.Sprintf("%s rule %d", r.Route, r.Rule)
	if r.RuleName != "" {
		s = fmt.Sprintf("%s rule %q", r.Route, r.RuleName)
	}
	if r.Match > 0 {
		s += fmt.Sprintf(" match %d", r.Match)
	}
	return s
}

// sameMatch: a and b match the same requests, condition for condition.
func sameMatch(a, b *config.RouteRule) bool {
	pa, pb := a.Path, b.Path
	if a.PathType == config.PathPrefix { // a trailing / is ignored
		pa, pb = strings.TrimSuffix(pa, "/"), strings.TrimSuffix(pb, "/")
	}
	return a.GRPC == b.GRPC && a.PathType == b.PathType && pa == pb && a.Method == b.Method && sameValues(a.Headers, b.Headers, true) && sameValues(a.Query, b.Query, false)
}

func sameValues(a, b []config.ValueMatch, foldNames bool) bool {
	if len(a) != len(b) {
		return false
	}
	key := func(m config.ValueMatch) string {
		n := m.Name
		if foldNames {
			n = strings.ToLower(n)
		}
		return fmt.Sprintf("%s\x00%s\x00%t", n, m.Value, m.Regex)
	}
	ka, kb := make([]string, len(a)), make([]string, len(b))
	for i := range a {
		ka[i], kb[i] = key(a[i]), key(b[i])
	}
	slices.Sort(ka)
	slices.Sort(kb)
	return slices.Equal(ka, kb)
}
