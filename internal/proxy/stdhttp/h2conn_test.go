package stdhttp

import (
	"bytes"
	"errors"
	"github.com/weftmesh/weft/internal/proxy/proxytest"
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

func TestBatchConnKeepsOrderAndFlushesOnClose(t *testing.T) {
	proxytest.CheckGoroutines(t)
	c, peer := proxytest.TCPPair(t)
	b := newBatchConn(c)
	var want bytes.Buffer
	got := make(chan []byte)
	go func() {
		all, _ := io.ReadAll(peer)
		got <- all
	}()
	var mu sync.Mutex // http2.Transport writes under its own lock, so do we
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 500; i++ {
				mu.Lock()
				p := bytes.Repeat([]byte{byte(i)}, 1+i%97)
				want.Write(p)
				if n, err := b.Write(p); n != len(p) || err != nil {
					t.Errorf("write: %d %v", n, err)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if err := b.Close(); err != nil { // what is pending still leaves
		t.Fatal(err)
	}
	if all := <-got; !bytes.Equal(all, want.Bytes()) {
		t.Fatalf("peer read %d bytes, want the %d written, in order", len(all), want.Len())
	}
	if _, err := b.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("write after close: got %v, want net.ErrClosed", err)
	}
}

func TestBatchConnReportsWriteErrors(t *testing.T) {
	proxytest.CheckGoroutines(t)
	c, peer := proxytest.TCPPair(t)
	b := newBatchConn(c)
	defer b.Close()
	peer.Close()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, err := b.Write(make([]byte, 64<<10)); err != nil {
			return // the writer's error reaches the next Write
		}
		if time.Now().After(deadline) {
			t.Fatal("writes to a closed peer kept succeeding")
		}
		time.Sleep(time.Millisecond)
	}
}

func TestBatchConnPushesBackAndCloseReleasesWriters(t *testing.T) {
	proxytest.CheckGoroutines(t)
	c, _ := proxytest.TCPPair(t) // the peer never reads
	b := newBatchConn(c)
	blocked := make(chan error, 1)
	go func() {
		chunk := make([]byte, 256<<10)
		for {
			if _, err := b.Write(chunk); err != nil {
				blocked <- err
				return
			}
		}
	}()
	// The socket buffers fill, then batchMaxPending: Write must wait, not
	// grow the buffer without bound.
	time.Sleep(200 * time.Millisecond)
	select {
	case err := <-blocked:
		t.Fatalf("writes ended early: %v", err)
	default:
	}
	b.mu.Lock()
	pending := len(b.pending)
	b.mu.Unlock()
	if pending > batchMaxPending+256<<10 {
		t.Fatalf("pending %d bytes, want at most %d", pending, batchMaxPending+256<<10)
	}
	start := time.Now()
	b.Close()
	select {
	case <-blocked:
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not release a blocked Write")
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("Close took %s with a peer that does not read; want about %s", took, batchCloseFlush)
	}
}
