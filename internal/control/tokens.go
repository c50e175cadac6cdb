package control

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/weftmesh/weft/internal/keyspace"
	"github.com/weftmesh/weft/internal/registry"
	"github.com/weftmesh/weft/internal/security"
	"github.com/weftmesh/weft/internal/telemetry"
)

// Join tokens let a sidecar prove who it is before it has a certificate
// (weft token create). A token is "<id>.<secret>": etcd keeps, under
// keyspace.TokenPrefix (which the hub does not push), the id, the scope,
// the expiry and the SHA-256 of the secret, on a lease that ends with the
// token; the secret itself is shown once, in the answer that creates it.

// Token lifetimes.
const (
	DefaultTokenTTL = 24 * time.Hour
	MaxTokenTTL     = 365 * 24 * time.Hour
)

// tokenRecord is a join token as etcd keeps it.
type tokenRecord struct {
	security.Token
	Hash string `json:"sha256"` // hex SHA-256 of the secret
}

// Sentinel errors of token checks; certs.go turns them into 401 and 403.
var (
	errTokenUnknown   = errors.New("join token unknown or expired (weft token list shows the live ones; weft token create --service NAME makes one)")
	errTokenMalformed = errors.New("join token malformed: want the <id>.<secret> that weft token create printed")
)

// mayManageTokens says whether r may create, list or delete join tokens.
// The API token (auth.go) already guards these routes, so every caller
// that reached here may; a finer rule (roles, a token of its own for
// joins) goes here, the one place that decides.
func (c *Control) mayManageTokens(r *http.Request) error { return nil }

func (c *Control) mountTokens(mux *http.ServeMux) {
	mux.HandleFunc("POST /v1/tokens", c.createToken)
	mux.HandleFunc("GET /v1/tokens", c.listTokens)
	mux.HandleFunc("DELETE /v1/tokens/{id}", c.deleteToken)
}

func (c *Control) createToken(w http.ResponseWriter, r *http.Request) {
	if err := c.mayManageTokens(r); err != nil {
		fail(w, http.StatusForbidden, err)
		return
	}
	var req security.TokenRequest
	if err := json.NewDecoder(io.LimitReader(r.Body, 64<<10)).Decode(&req); err != nil {
		fail(w, http.StatusBadRequest, fmt.Errorf("body: %w", err))
		return
	}
	if err := validTokenRequest(req); err != nil {
		fail(w, http.StatusBadRequest, err)
		return
	}
	ttl := DefaultTokenTTL
	if req.TTLSeconds > 0 {
		ttl = time.Duration(req.TTLSeconds) * time.Second
	}
	created, err := c.putToken(r.Context(), req, ttl)
	if err != nil {
		fail(w, http.StatusServiceUnavailable, err)
		return
	}
	c.log.Info("join token created", "token_id", created.ID, "scope", created.Scope(), "expires", created.Expires)
	telemetry.WriteJSON(w, http.StatusCreated, created)
}

func validTokenRequest(req security.TokenRequest) error {
	switch {
	case req.Mesh && req.Service != "":
		return errors.New("service and mesh: give one (a token for one service, or a mesh-wide one)")
	case !req.Mesh && req.Service == "":
		return errors.New("service: required (or mesh: true for a mesh-wide token)")
	case req.TTLSeconds < 0 || time.Duration(req.TTLSeconds)*time.Second > MaxTokenTTL:
		return fmt.Errorf("ttlSeconds %d: want 1 to %d (a year), or 0 for the default 24h", req.TTLSeconds, int64(MaxTokenTTL/time.Second))
	}
	if req.Service != "" {
		if err := registry.ValidName(req.Service); err != nil {
			return fmt.Errorf("service: %w", err)
		}
	}
	return nil
}

func (c *Control) putToken(ctx context.Context, req security.TokenRequest, ttl time.Duration) (security.TokenCreated, error) {
	idb, secret := make([]byte, 6), make([]byte, 32)
	if _, err := rand.Read(idb); err != nil {
		return security.TokenCreated{}, err
	}
	if _, err := rand.Read(secret); err != nil {
		return security.TokenCreated{}, err
	}
	now := time.Now().UTC().Truncate(time.Second)
	rec := tokenRecord{Token: security.Token{ID: hex.EncodeToString(idb), Service: req.Service, Mesh: req.Mesh,
		Created: now, Expires: now.Add(ttl)}}
	s := base64.RawURLEncoding.EncodeToString(secret)
	sum := sha256.Sum256([]byte(s))
	rec.Hash = hex.EncodeToString(sum[:])
	b, _ := json.Marshal(rec)
	// The lease lets etcd delete the record when the token expires.
	lease, err := c.st.Client.Grant(ctx, int64((ttl+time.Second-1)/time.Second))
	if err != nil {
		return security.TokenCreated{}, fmt.Errorf("store token: %w", err)
	}
	if _, err := c.st.Client.Put(ctx, keyspace.TokenPrefix+rec.ID, string(b), clientv3.WithLease(lease.ID)); err != nil {
		return security.TokenCreated{}, fmt.Errorf("store token: %w", err)
	}
	return security.TokenCreated{Token: rec.Token, Secret: rec.ID + "." + s}, nil
}

func (c *Control) listTokens(w http.ResponseWriter, r *http.Request) {
	if err := c.mayManageTokens(r); err != nil {
		fail(w, http.StatusForbidden, err)
		return
	}
	resp, err := c.st.Client.Get(r.Context(), keyspace.TokenPrefix, clientv3.WithPrefix())
	if err != nil {
		fail(w, http.StatusServiceUnavailable, fmt.Errorf("read tokens: %w", err))
		return
	}
	now := time.Now()
	out := make([]security.Token, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		var rec tokenRecord
		if json.Unmarshal(kv.Value, &rec) != nil || !now.Before(rec.Expires) {
			continue
		}
		out = append(out, rec.Token)
	}
	sort.Slice(out, func(i, j int) bool {
		return out[i].Created.Before(out[j].Created) || out[i].Created.Equal(out[j].Created) && out[i].ID < out[j].ID
	})
	telemetry.WriteJSON(w, http.StatusOK, out)
}

func (c *Control) deleteToken(w http.ResponseWriter, r *http.Request) {
	if err := c.mayManageTokens(r); err != nil {
		fail(w, http.StatusForbidden, err)
		return
	}
	id := r.PathValue("id")
	if !validTokenID(id) {
		fail(w, http.StatusBadRequest, fmt.Errorf("id %q: want the 12 hex digits weft token list shows", id))
		return
	}
	resp, err := c.st.Client.Delete(r.Context(), keyspace.TokenPrefix+id)
	switch {
	case err != nil:
		fail(w, http.StatusServiceUnavailable, fmt.Errorf("delete token: %w", err))
	case resp.Deleted == 0:
		fail(w, http.StatusNotFound, fmt.Errorf("join token %s not found (expired, deleted, or never made)", id))
	default:
		c.log.Info("join token deleted", "token_id", id)
		w.WriteHeader(http.StatusNoContent)
	}
}

func validTokenID(id string) bool {
	if len(id) != 12 {
		return false
	}
	_, err := hex.DecodeString(id)
	return err == nil && strings.ToLower(id) == id
}

// checkToken looks up a join token by its id and compares the hash of
// its secret in constant time. Its errors never contain the token.
func (c *Control) checkToken(ctx context.Context, token string) (security.Token, error) {
	id, secret, ok := strings.Cut(token, ".")
	if !ok || !validTokenID(id) || secret == "" {
		return security.Token{}, errTokenMalformed
	}
	resp, err := c.st.Client.Get(ctx, keyspace.TokenPrefix+id)
	if err != nil {
		return security.Token{}, fmt.Errorf("read token: %w", err)
	}
	if len(resp.Kvs) == 0 {
		return security.Token{}, errTokenUnknown
	}
	var rec tokenRecord
	if err := json.Unmarshal(resp.Kvs[0].Value, &rec); err != nil {
		return security.Token{}, fmt.Errorf("token record %s: %w", id, err)
	}
	sum := sha256.Sum256([]byte(secret))
	want, err := hex.DecodeString(rec.Hash)
	if err != nil || subtle.ConstantTimeCompare(sum[:], want) != 1 || !time.Now().Before(rec.Expires) {
		return security.Token{}, errTokenUnknown
	}
	return rec.Token, nil
}
