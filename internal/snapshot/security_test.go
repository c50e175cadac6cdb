package snapshot

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/weftmesh/weft/internal/config"
	"github.com/weftmesh/weft/internal/push"
)

func peerAuthResource(name, spec string) json.RawMessage {
	return json.RawMessage(`{"apiVersion":"weftmesh.io/v1alpha1","kind":"PeerAuthentication","metadata":{"name":"` + name + `"},"spec":` + spec + `}`)
}

// PeerAuthentications reach the snapshot sorted; a stored one that is not
// valid, or is under another name's key, is a problem and left out.
func TestCompilePeerAuthentication(t *testing.T) {
	st := push.State{
		config.Key("PeerAuthentication", "web"):    peerAuthResource("web", `{"service":"web","mtls":{"mode":"PERMISSIVE"}}`),
		config.Key("PeerAuthentication", "mesh"):   peerAuthResource("mesh", `{"mtls":{"mode":"STRICT"}}`),
		config.Key("PeerAuthentication", "broken"): peerAuthResource("broken", `{"service":"broken","mtls":{"mode":"sometimes"}}`),
		config.Key("PeerAuthentication", "other"):  peerAuthResource("web", `{"service":"web","mtls":{"mode":"STRICT"}}`),
	}
	var c Compiler
	snap, problems := c.Compile(st, 1)
	want := []config.PeerAuth{{Name: "mesh", Mode: "STRICT"}, {Name: "web", Service: "web", Mode: "PERMISSIVE"}}
	if !reflect.DeepEqual(snap.PeerAuthentication, want) {
		t.Errorf("got %+v, want %+v", snap.PeerAuthentication, want)
	}
	if len(problems) != 2 || !strings.Contains(problems[0].Error(), "spec.mtls.mode") || !strings.Contains(problems[1].Error(), "not the PeerAuthentication of its key") {
		t.Errorf("problems: got %v, want the broken mode and the wrong key", problems)
	}
}
