package control

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/weftmesh/weft/internal/api"
	"github.com/weftmesh/weft/internal/keyspace"
	"github.com/weftmesh/weft/internal/push"
	"github.com/weftmesh/weft/internal/registry"
	"github.com/weftmesh/weft/internal/security"
)

// send is a request with headers, for the token and certificate APIs.
func (tc *testControl) send(t *testing.T, method, path, body string, header map[string]string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, tc.URL()+path, strings.NewReader(body))
	if header == nil && tc.api.Token != "" {
		req.Header.Set("Authorization", "Bearer "+tc.api.Token) // the API token (header: a request of its own, as a sidecar's)
	}
	if tc.api.Token != "" && !strings.HasPrefix(path, "/v1/certificates") {
		req.Header.Set("Authorization", "Bearer "+tc.api.Token) // the API token; certificate requests carry join tokens
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := tc.http.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (tc *testControl) createToken(t *testing.T, req security.TokenRequest) security.TokenCreated {
	t.Helper()
	b, _ := json.Marshal(req)
	code, body := tc.send(t, http.MethodPost, "/v1/tokens", string(b), nil)
	if code != http.StatusCreated {
		t.Fatalf("POST /v1/tokens %s: got %d %s, want 201", b, code, body)
	}
	var out security.TokenCreated
	if err := json.Unmarshal([]byte(body), &out); err != nil || out.Secret == "" {
		t.Fatalf("POST /v1/tokens: answer %s: %v", body, err)
	}
	return out
}

func TestTokens(t *testing.T) {
	tc := start(t)
	web := tc.createToken(t, security.TokenRequest{Service: "web", TTLSeconds: 3600})
	mesh := tc.createToken(t, security.TokenRequest{Mesh: true})
	if !strings.HasPrefix(web.Secret, web.ID+".") || web.Service != "web" || web.Expires.Sub(web.Created).Hours() != 1 {
		t.Errorf("created: got %+v, want a token <id>.<secret> for web, an hour long", web.Token)
	}
	if mesh.Scope() != "mesh" || mesh.Expires.Sub(mesh.Created) != DefaultTokenTTL {
		t.Errorf("mesh token: got %+v, want scope mesh for the default 24h", mesh.Token)
	}

	code, body := tc.get(t, "/v1/tokens")
	var list []security.Token
	json.Unmarshal([]byte(body), &list)
	if code != 200 || len(list) != 2 {
		t.Fatalf("GET /v1/tokens: got %d %s, want both tokens", code, body)
	}
	_, secret, _ := strings.Cut(web.Secret, ".")
	if strings.Contains(body, secret) || strings.Contains(body, "sha256") {
		t.Errorf("GET /v1/tokens shows a secret or its hash:\n%s", body)
	}
	// etcd holds the hash, never the secret.
	resp, err := tc.st.Client.Get(ctx(t), keyspace.TokenPrefix+web.ID)
	if err != nil || len(resp.Kvs) != 1 || strings.Contains(string(resp.Kvs[0].Value), secret) || resp.Kvs[0].Lease == 0 {
		t.Errorf("the record in etcd: %v %v; want one record on a lease, without the secret", resp, err)
	}

	if code, body := tc.send(t, http.MethodDelete, "/v1/tokens/"+web.ID, "", nil); code != http.StatusNoContent {
		t.Errorf("DELETE: got %d %s, want 204", code, body)
	}
	if code, body := tc.send(t, http.MethodDelete, "/v1/tokens/"+web.ID, "", nil); code != http.StatusNotFound || !strings.Contains(body, "not found") {
		t.Errorf("DELETE again: got %d %s, want 404", code, body)
	}
	if _, err := tc.checkToken(ctx(t), web.Secret); err != errTokenUnknown {
		t.Errorf("a deleted token: got %v, want errTokenUnknown", err)
	}
	if _, err := tc.checkToken(ctx(t), mesh.ID+".wrong"); err != errTokenUnknown {
		t.Errorf("a wrong secret: got %v, want errTokenUnknown", err)
	}

	bad := []struct{ body, want string }{
		{`{}`, "service: required"},
		{`{"service":"web","mesh":true}`, "give one"},
		{`{"service":"Web"}`, "service: "},
		{`{"service":"web","ttlSeconds":99999999999}`, "ttlSeconds"},
		{`{"service":"web","ttlSeconds":-1}`, "ttlSeconds"},
		{`{"service":`, "body: "},
	}
	for _, b := range bad {
		if code, body := tc.send(t, http.MethodPost, "/v1/tokens", b.body, nil); code != http.StatusBadRequest || !strings.Contains(body, b.want) {
			t.Errorf("POST /v1/tokens %s: got %d %s, want 400 naming %q", b.body, code, body, b.want)
		}
	}
	if code, _ := tc.send(t, http.MethodDelete, "/v1/tokens/not-an-id", "", nil); code != http.StatusBadRequest {
		t.Errorf("DELETE of a malformed id: got %d, want 400", code)
	}
}

// TestTokensAreNotPushed: a sidecar's stream never carries a token.
func TestTokensAreNotPushed(t *testing.T) {
	tc := start(t)
	tc.createToken(t, security.TokenRequest{Service: "web"})
	var mu sync.Mutex
	var last push.State
	pc := &push.Client{Base: tc.api.Base, HTTP: tc.http, Log: slog.New(slog.DiscardHandler),
		OnState: func(st push.State, rev int64) {
			mu.Lock()
			defer mu.Unlock()
			last = push.State{}
			for k, v := range st {
				last[k] = v
			}
		}}
	sctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = pc.Run(sctx) }()
	defer func() { stop(); <-done }()
	in := registry.Instance{Service: "web", ID: "w1", Address: "127.0.0.1:15006", Ready: true}
	if _, err := tc.api.Register(ctx(t), api.RegisterRequest{Instance: in}); err != nil {
		t.Fatal(err)
	}
	tc.createToken(t, security.TokenRequest{Mesh: true}) // and one made while the stream is open
	in.Ready = false
	if _, err := tc.api.Register(ctx(t), api.RegisterRequest{Instance: in}); err != nil {
		t.Fatal(err)
	}
	waitState(t, &mu, &last, func(st push.State) bool {
		v, ok := st[registry.Key("web", "w1")]
		return ok && strings.Contains(string(v), `"ready":false`)
	})
	mu.Lock()
	defer mu.Unlock()
	for k := range last {
		if strings.HasPrefix(k, keyspace.TokenPrefix) {
			t.Errorf("the push stream carries %s", k)
		}
	}
}
