package store

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// open starts an embedded etcd in dir and closes it at the end of the test.
func open(t *testing.T, dir string) *Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := Open(ctx, Options{DataDir: dir})
	if err != nil {
		t.Fatalf("Open(%s): got error %v, want nil", dir, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestEmbeddedKeepsDataAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	start := time.Now()
	s, err := Open(ctx, Options{DataDir: dir})
	if err != nil {
		t.Fatalf("Open: got error %v, want nil", err)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("Open took %v, want well under 10s (fast ticks)", took)
	}
	if !s.Embedded {
		t.Errorf("Embedded: got false, want true")
	}
	if _, err := s.Client.Put(ctx, Prefix+"k", "v1"); err != nil {
		t.Fatalf("Put: %v", err)
	}
	s.Close() // its error is TestEmbeddedCloseReturnsNil's business
	if _, err := os.Stat(filepath.Join(dir, "etcd")); err != nil {
		t.Errorf("etcd dir: got %v, want it under the data dir", err)
	}

	s2 := open(t, dir)
	resp, err := s2.Client.Get(ctx, Prefix+"k")
	if err != nil {
		t.Fatalf("Get after reopen: %v", err)
	}
	if len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != "v1" {
		t.Errorf("Get after reopen: got %v, want v1", resp.Kvs)
	}
}

func TestOpenFailures(t *testing.T) {
	file := filepath.Join(t.TempDir(), "a-file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := l.Addr().String()
	l.Close()

	tests := []struct {
		name   string
		ctx    context.Context
		opts   Options
		errHas []string
	}{
		{"data dir under a file", context.Background(), Options{DataDir: filepath.Join(file, "sub")},
			[]string{"cannot be created", "--data-dir"}},
		{"external etcd unreachable", context.Background(), Options{Endpoints: []string{"http://" + dead}, DialTimeout: 300 * time.Millisecond},
			[]string{"unreachable", dead, "--etcd-endpoints"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			s, err := Open(tt.ctx, tt.opts)
			if err == nil {
				s.Close()
				t.Fatalf("Open: got a store, want an error containing %q", tt.errHas)
			}
			for _, want := range tt.errHas {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error: got %q, want it to contain %q", err, want)
				}
			}
			if took := time.Since(start); took > 10*time.Second {
				t.Errorf("Open failed after %v, want within 10s", took)
			}
		})
	}
}

// Closing a healthy embedded store is not an error. The client made by
// v3client.New has no connection, so clientv3.Client.Close returns its own
// cancelled context's error, context.Canceled, on every close.
func TestEmbeddedCloseReturnsNil(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := Open(ctx, Options{DataDir: t.TempDir()})
	if err != nil {
		t.Fatalf("Open: got error %v, want nil", err)
	}
	if _, err := s.Client.Get(ctx, Prefix+"k"); err != nil {
		t.Fatalf("Get: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("Close: got %v, want nil", err)
	}
}
