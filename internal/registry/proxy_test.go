package registry

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestLeaseIDJSON(t *testing.T) {
	// 2^62+1 is not representable as a float64: a number would be rounded
	// by JSON tools that read numbers as doubles.
	const big LeaseID = 1<<62 + 1
	b, err := json.Marshal(Instance{Service: "s", ID: "i", Address: "h:1", Lease: big})
	if err != nil {
		t.Fatal(err)
	}
	if want := `"lease":"4611686018427387905"`; !strings.Contains(string(b), want) {
		t.Errorf("marshal: got %s, want it to contain %s", b, want)
	}
	b, _ = json.Marshal(Instance{Service: "s", ID: "i", Address: "h:1"})
	if strings.Contains(string(b), "lease") {
		t.Errorf("marshal with no lease: got %s, want no lease field", b)
	}

	for _, tt := range []struct {
		in   string
		want LeaseID
		err  bool
	}{
		{`"4611686018427387905"`, big, false},
		{`4611686018427387905`, big, false}, // records from before leases were strings
		{`null`, 0, false},
		{`"12ab"`, 0, true},
		{`1.5`, 0, true},
		{`"`, 0, true},
	} {
		var got LeaseID
		err := json.Unmarshal([]byte(tt.in), &got)
		if (err != nil) != tt.err || got != tt.want {
			t.Errorf("unmarshal %s: got (%d, %v), want (%d, error %v)", tt.in, got, err, tt.want, tt.err)
		}
	}
}

func TestProxyValidate(t *testing.T) {
	ok := Proxy{Service: "web", ID: "web-1", Outbound: "127.0.0.1:15001"}
	tests := []struct {
		name    string
		edit    func(p *Proxy)
		errPref string // "" means valid
	}{
		{"valid consumer", func(p *Proxy) {}, ""},
		{"valid provider", func(p *Proxy) { p.Inbound = "10.0.0.1:15006" }, ""},
		{"bad service", func(p *Proxy) { p.Service = "Web" }, "service:"},
		{"empty id", func(p *Proxy) { p.ID = "" }, "id:"},
		{"id with slash", func(p *Proxy) { p.ID = "a/b" }, "id:"},
		{"outbound without port", func(p *Proxy) { p.Outbound = "127.0.0.1" }, "outbound:"},
		{"inbound without port", func(p *Proxy) { p.Inbound = "10.0.0.1" }, "inbound:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := ok
			tt.edit(&p)
			err := p.Validate()
			switch {
			case tt.errPref == "" && err != nil:
				t.Errorf("got error %v, want nil", err)
			case tt.errPref != "" && (err == nil || !strings.HasPrefix(err.Error(), tt.errPref)):
				t.Errorf("got error %v, want one starting %q", err, tt.errPref)
			}
		})
	}
	if got, want := ProxyKey("web", "web-1"), "/weft/proxies/web/web-1"; got != want {
		t.Errorf("ProxyKey: got %q, want %q", got, want)
	}
}
