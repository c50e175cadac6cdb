package push

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/store/storetest"
	"github.com/weftmesh/weft/internal/testlog"
)

func TestMain(m *testing.M) { storetest.Main(m) }

// streamServer is a stand-in control plane: the i-th stream request is
// answered by conns[i] (the last one for any after), and each request's
// ?since= is recorded.
type streamServer struct {
	*httptest.Server
	mu    sync.Mutex
	since []string
}

// conn writes a stream for one connection; returning ends it.
type conn func(w http.ResponseWriter, r *http.Request)

func newStreamServer(t *testing.T, conns ...conn) *streamServer {
	s := &streamServer{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/stream" {
			http.NotFound(w, r)
			return
		}
		s.mu.Lock()
		i := len(s.since)
		s.since = append(s.since, r.URL.Query().Get("since"))
		s.mu.Unlock()
		conns[min(i, len(conns)-1)](w, r)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *streamServer) sinces() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.since...)
}

// send writes messages and flushes them.
func send(w http.ResponseWriter, msgs ...Message) {
	for _, m := range msgs {
		w.Write(Encode(m))
	}
	w.(http.Flusher).Flush()
}

// hold keeps the stream open until the client or the server goes.
func hold(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }

func change(k, v string) Change {
	if v == "" {
		return Change{Key: k}
	}
	return Change{Key: k, Value: json.RawMessage(v)}
}

// seen is what OnState was given, copied.
type seen struct {
	mu     sync.Mutex
	states []State
	revs   []int64
}

func (s *seen) on(st State, rev int64) {
	cp := make(State, len(st))
	for k, v := range st {
		cp[k] = v
	}
	s.mu.Lock()
	s.states, s.revs = append(s.states, cp), append(s.revs, rev)
	s.mu.Unlock()
}

func (s *seen) last() (State, int64, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.states) == 0 {
		return nil, 0, 0
	}
	return s.states[len(s.states)-1], s.revs[len(s.revs)-1], len(s.states)
}

// runClient follows srv until the test ends.
func runClient(t *testing.T, srv *streamServer) (*Client, *seen, *testlog.Buffer) {
	logs := &testlog.Buffer{}
	got := &seen{}
	tr := &http.Transport{Proxy: nil}
	c := &Client{Base: srv.URL, HTTP: &http.Client{Transport: tr},
		Log: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})), OnState: got.on}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: got %v, want nil", err)
		}
		tr.CloseIdleConnections()
	})
	return c, got, logs
}

func eventually(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ok, last := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 10s; last seen: %s", what, last)
		}
		time.Sleep(5 * time.Millisecond) // polling interval, not synchronisation
	}
}

func stateIs(got *seen, want map[string]string, wantRev int64) func() (bool, string) {
	return func() (bool, string) {
		st, rev, _ := got.last()
		plain := map[string]string{}
		for k, v := range st {
			plain[k] = string(v)
		}
		return rev == wantRev && reflect.DeepEqual(plain, want), fmt.Sprintf("revision %d, state %v", rev, plain)
	}
}

func TestClientSnapshotUpdateAndResume(t *testing.T) {
	second := make(chan struct{})
	srv := newStreamServer(t,
		func(w http.ResponseWriter, r *http.Request) {
			send(w, Message{Type: TypeSnapshot, Revision: 5, Changes: []Change{change("/a", `1`), change("/b", `2`)}})
			send(w, Message{Type: TypePing})
			send(w, Message{Type: TypeUpdate, Revision: 6, Changes: []Change{change("/b", ""), change("/c", `3`)}})
			<-second // ends the stream when the test says so
		},
		func(w http.ResponseWriter, r *http.Request) {
			// The log moved on: a snapshot replaces everything the client had.
			send(w, Message{Type: TypeSnapshot, Revision: 9, Changes: []Change{change("/d", `4`)}})
			hold(w, r)
		},
	)
	c, got, logs := runClient(t, srv)

	eventually(t, "snapshot then update", stateIs(got, map[string]string{"/a": "1", "/c": "3"}, 6))
	if _, _, n := got.last(); n != 2 {
		t.Errorf("OnState calls: got %d, want 2 (a ping applies nothing)", n)
	}
	if st, rev, _ := got.last(); rev != 6 || len(st) != 2 {
		t.Errorf("after the update: got revision %d and %d keys, want 6 and 2", rev, len(st))
	}
	if !c.Connected() || !c.Synced() || c.Revision() != 6 {
		t.Errorf("client: got connected %v, synced %v, revision %d; want true, true, 6", c.Connected(), c.Synced(), c.Revision())
	}

	close(second)
	eventually(t, "snapshot on the second stream", stateIs(got, map[string]string{"/d": "4"}, 9))
	if s := srv.sinces(); len(s) != 2 || s[0] != "0" || s[1] != "6" {
		t.Errorf("?since= of the streams: got %v, want [0 6] (resume from the last revision)", s)
	}
	if !strings.Contains(logs.String(), `msg="reconnected to control plane"`) || !strings.Contains(logs.String(), "resuming_from=6") {
		t.Errorf("log: got %q, want a reconnected line resuming from 6", logs.String())
	}
}

func TestClientKeepsStateWhileDisconnected(t *testing.T) {
	back := make(chan struct{})
	srv := newStreamServer(t,
		func(w http.ResponseWriter, r *http.Request) {
			send(w, Message{Type: TypeSnapshot, Revision: 3, Changes: []Change{change("/k", `"v"`)}})
		},
		func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-back:
				send(w, Message{Type: TypeUpdate, Revision: 4, Changes: []Change{change("/k2", `"w"`)}})
				hold(w, r)
			default:
				http.Error(w, "not ready", http.StatusServiceUnavailable)
			}
		},
	)
	c, got, logs := runClient(t, srv)

	// The stream ends and the control plane refuses for a while: the
	// client keeps the state it had, says it is waiting, and not that it
	// is back.
	eventually(t, "refused streams", func() (bool, string) { return len(srv.sinces()) >= 4, logs.String() })
	if st, rev, _ := got.last(); rev != 3 || string(st["/k"]) != `"v"` {
		t.Errorf("state while disconnected: got revision %d %v, want revision 3 with /k", rev, st)
	}
	if c.Connected() || !c.Synced() {
		t.Errorf("while refused: got connected %v, synced %v; want false, true", c.Connected(), c.Synced())
	}
	if !strings.Contains(logs.String(), `msg="waiting for control plane"`) || !strings.Contains(logs.String(), "503 Service Unavailable") {
		t.Errorf("log: got %q, want waiting lines naming the 503", logs.String())
	}
	if strings.Contains(logs.String(), "reconnected") {
		t.Errorf("log while still refused: got %q, want no reconnected line", logs.String())
	}

	close(back)
	eventually(t, "update after coming back", stateIs(got, map[string]string{"/k": `"v"`, "/k2": `"w"`}, 4))
	for i, s := range srv.sinces()[1:] {
		if s != "3" {
			t.Errorf("stream %d: got ?since=%s, want 3", i+2, s)
		}
	}
	if n := strings.Count(logs.String(), `msg="reconnected to control plane"`); n != 1 {
		t.Errorf("reconnected lines: got %d, want 1:\n%s", n, logs.String())
	}
	if !c.Connected() {
		t.Errorf("Connected after coming back: got false, want true")
	}
}

func TestClientFirstConnectIsNotAReconnect(t *testing.T) {
	srv := newStreamServer(t, func(w http.ResponseWriter, r *http.Request) {
		send(w, Message{Type: TypeSnapshot, Revision: 1})
		hold(w, r)
	})
	c, got, logs := runClient(t, srv)
	eventually(t, "first sync", func() (bool, string) { _, _, n := got.last(); return n == 1 && c.Synced(), logs.String() })
	if strings.Contains(logs.String(), "reconnected") {
		t.Errorf("log after the first connection: got %q, want no reconnected line", logs.String())
	}
}

func TestClientReconnectsAfterABadMessage(t *testing.T) {
	srv := newStreamServer(t,
		func(w http.ResponseWriter, r *http.Request) {
			send(w, Message{Type: TypeSnapshot, Revision: 2, Changes: []Change{change("/a", `1`)}})
			io.WriteString(w, "{not json\n")
			w.(http.Flusher).Flush()
			hold(w, r)
		},
		func(w http.ResponseWriter, r *http.Request) {
			send(w, Message{Type: "future-kind", Revision: 50}) // ignored
			send(w, Message{Type: TypeUpdate, Revision: 3, Changes: []Change{change("/b", `2`)}})
			hold(w, r)
		},
	)
	_, got, logs := runClient(t, srv)
	eventually(t, "update on the second stream", stateIs(got, map[string]string{"/a": "1", "/b": "2"}, 3))
	for _, want := range []string{"stream: bad message", `msg="stream: ignoring unknown message type" type=future-kind`} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log: got %q, want it to contain %q", logs.String(), want)
		}
	}
}
