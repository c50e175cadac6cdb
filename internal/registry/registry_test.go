package registry

import (
	"strings"
	"testing"
)

func inst(service, id, addr string) Instance {
	return Instance{Service: service, ID: id, Address: addr, Ready: true, Labels: map[string]string{"v": "1"}}
}

func TestInstanceValidate(t *testing.T) {
	tests := []struct {
		name    string
		in      Instance
		errHas  string // "" means valid
		errPref string
	}{
		{name: "valid", in: inst("catalog", "catalog-1", "10.0.0.1:8080")},
		{name: "valid one letter, ipv6", in: inst("a", "x", "[::1]:80")},
		{name: "valid 63 chars", in: inst(strings.Repeat("a", 63), "x", "h:1")},
		{name: "service upper case", in: inst("Catalog", "x", "h:1"), errPref: "service:", errHas: `"Catalog"`},
		{name: "service underscore", in: inst("cat_alog", "x", "h:1"), errPref: "service:"},
		{name: "service empty", in: inst("", "x", "h:1"), errPref: "service:"},
		{name: "service leading dash", in: inst("-cat", "x", "h:1"), errPref: "service:"},
		{name: "service trailing dash", in: inst("cat-", "x", "h:1"), errPref: "service:"},
		{name: "service 64 chars", in: inst(strings.Repeat("a", 64), "x", "h:1"), errPref: "service:"},
		{name: "id empty", in: inst("cat", "", "h:1"), errPref: "id:"},
		{name: "id slash", in: inst("cat", "a/b", "h:1"), errPref: "id:", errHas: `"a/b"`},
		{name: "id space", in: inst("cat", "a b", "h:1"), errPref: "id:"},
		{name: "address without port", in: inst("cat", "x", "10.0.0.1"), errPref: "address:", errHas: `"10.0.0.1"`},
		{name: "address empty", in: inst("cat", "x", ""), errPref: "address:"},
		{name: "protocol tcp", in: withProtocol(inst("db", "x", "h:1"), "tcp")},
		{name: "protocol unknown", in: withProtocol(inst("db", "x", "h:1"), "udp"), errPref: "protocol:", errHas: `"udp"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.in.Validate()
			if tt.errPref == "" {
				if err != nil {
					t.Errorf("Validate: got %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate: got nil, want error starting %q", tt.errPref)
			}
			if !strings.HasPrefix(err.Error(), tt.errPref) || !strings.Contains(err.Error(), tt.errHas) {
				t.Errorf("Validate: got %q, want prefix %q containing %q", err, tt.errPref, tt.errHas)
			}
		})
	}
}

func TestKey(t *testing.T) {
	if got, want := Key("catalog", "c1"), "/weft/instances/catalog/c1"; got != want {
		t.Errorf("Key: got %q, want %q", got, want)
	}
}

func withProtocol(in Instance, p string) Instance { in.Protocol = p; return in }
