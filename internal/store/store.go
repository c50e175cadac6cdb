// Package store opens the etcd that holds all of Weft's state: an embedded
// single-node etcd under a data directory by default, or an external etcd
// cluster when endpoints are given. Either way callers get a clientv3.Client;
// leases, watches and revisions are etcd's own.
package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.etcd.io/etcd/server/v3/etcdserver/api/v3client"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/weftmesh/weft/internal/keyspace"
)

// Prefix is the root of every key Weft writes.
const Prefix = keyspace.Prefix

// Options chooses where state lives.
type Options struct {
	// DataDir holds the embedded etcd's files. Ignored with Endpoints.
	DataDir string
	// Endpoints of an external etcd cluster; empty means embedded.
	Endpoints []string
	// DialTimeout bounds the first contact with an external cluster.
	DialTimeout time.Duration
	Logger      *slog.Logger
}

// Store is an open etcd and a client to it.
type Store struct {
	Client   *clientv3.Client
	Embedded bool
	etcd     *embed.Etcd
	level    zap.AtomicLevel
}

// Open starts the embedded etcd or connects to the external cluster, and
// returns once a read succeeds.
func Open(ctx context.Context, o Options) (*Store, error) {
	if o.DialTimeout == 0 {
		o.DialTimeout = 5 * time.Second
	}
	if len(o.Endpoints) > 0 {
		return openExternal(ctx, o)
	}
	return openEmbedded(ctx, o)
}

func openExternal(ctx context.Context, o Options) (*Store, error) {
	c, err := clientv3.New(clientv3.Config{
		Endpoints:   o.Endpoints,
		DialTimeout: o.DialTimeout,
		Logger:      quietZap(),
	})
	if err != nil {
		return nil, fmt.Errorf("etcd %v: %w", o.Endpoints, err)
	}
	cctx, cancel := context.WithTimeout(ctx, o.DialTimeout)
	defer cancel()
	if _, err := c.Get(cctx, Prefix+"probe"); err != nil {
		c.Close()
		return nil, fmt.Errorf("etcd %v unreachable: %w (check --etcd-endpoints)", o.Endpoints, err)
	}
	return &Store{Client: c}, nil
}

func openEmbedded(ctx context.Context, o Options) (*Store, error) {
	dir, err := filepath.Abs(o.DataDir)
	if err != nil {
		return nil, fmt.Errorf("data dir %q: %w", o.DataDir, err)
	}
	if err := checkWritable(dir); err != nil {
		return nil, err
	}
	cfg := embed.NewConfig()
	cfg.Name = "weft"
	cfg.Dir = filepath.Join(dir, "etcd")
	// A single node has nobody to elect against: fast ticks make start-up
	// take tens of milliseconds instead of a second.
	cfg.TickMs = 10
	cfg.ElectionMs = 100
	loop, _ := url.Parse("http://127.0.0.1:0")
	cfg.ListenClientUrls = []url.URL{*loop}
	cfg.AdvertiseClientUrls = []url.URL{*loop}
	cfg.ListenPeerUrls = []url.URL{*loop}
	cfg.AdvertisePeerUrls = []url.URL{*loop}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	// etcd logs errors of its own at Close ("server closed"); the level
	// is raised past them before closing.
	level := zap.NewAtomicLevelAt(zap.ErrorLevel)
	core := zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), zapcore.Lock(os.Stderr), level)
	zl := zap.New(quietCore{core})
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zl)

	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return nil, fmt.Errorf("start embedded etcd in %s: %w", cfg.Dir, err)
	}
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		e.Close()
		return nil, fmt.Errorf("embedded etcd: %w", err)
	case <-ctx.Done():
		e.Close()
		return nil, ctx.Err()
	case <-time.After(30 * time.Second):
		e.Close()
		return nil, errors.New("embedded etcd did not become ready in 30s")
	}
	return &Store{Client: v3client.New(e.Server), Embedded: true, etcd: e, level: level}, nil
}

// checkWritable makes dir if needed and proves a file can be written in it,
// so that a bad --data-dir fails with one clear line instead of deep inside etcd.
func checkWritable(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("data dir %s cannot be created: %w (choose another with --data-dir)", dir, err)
	}
	f, err := os.CreateTemp(dir, ".weft-write-check-*")
	if err != nil {
		return fmt.Errorf("data dir %s is not writable: %w (choose another with --data-dir)", dir, err)
	}
	name := f.Name()
	f.Close()
	return os.Remove(name)
}

// Close releases the client and stops the embedded etcd, if any.
func (s *Store) Close() error {
	err := s.Client.Close()
	if s.etcd != nil {
		// The in-process client has no connection of its own: closing it
		// reports its cancelled context, which is no failure.
		if errors.Is(err, context.Canceled) {
			err = nil
		}
		s.level.SetLevel(zap.FatalLevel)
		s.etcd.Close()
	}
	return err
}

// quietZap keeps the etcd client's own retry chatter out of Weft's logs;
// failures still surface as errors from the calls that hit them.
func quietZap() *zap.Logger { return zap.NewNop() }

// harmless are etcd messages logged at error level that are not errors for
// a single embedded node (a fresh data directory has no storage version yet).
var harmless = map[string]bool{
	"failed to update storage version": true,
}

// quietCore drops the harmless messages and passes everything else on.
type quietCore struct{ zapcore.Core }

func (c quietCore) With(f []zapcore.Field) zapcore.Core { return quietCore{c.Core.With(f)} }

func (c quietCore) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if harmless[e.Message] {
		return ce
	}
	return c.Core.Check(e, ce)
}
