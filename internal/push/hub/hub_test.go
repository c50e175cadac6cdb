package hub

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/weftmesh/weft/internal/config"
	"github.com/weftmesh/weft/internal/config/configstore"
	"github.com/weftmesh/weft/internal/keyspace"
	"github.com/weftmesh/weft/internal/push"
	"github.com/weftmesh/weft/internal/registry"
	"github.com/weftmesh/weft/internal/registry/regstore"
	"github.com/weftmesh/weft/internal/store/storetest"
)

var discard = slog.New(slog.DiscardHandler)

// startHub runs a Hub until the end of the test and waits for its first load.
func startHub(t *testing.T, c *clientv3.Client) *Hub {
	t.Helper()
	h := New(c, discard)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		h.Run(ctx)
	}()
	t.Cleanup(func() { cancel(); <-done })
	select {
	case <-h.Ready():
	case <-time.After(10 * time.Second):
		t.Fatalf("hub not ready after 10s")
	}
	return h
}

// serve puts a stream Handler for h behind a real HTTP server.
func serve(t *testing.T, h *Hub) (*httptest.Server, *atomic.Int64, *atomic.Int64) {
	t.Helper()
	var streams, sent atomic.Int64
	srv := httptest.NewServer(&Handler{Hub: h, Streams: &streams, OnSend: func(n int) { sent.Add(int64(n)) }})
	t.Cleanup(srv.Close)
	return srv, &streams, &sent
}

// hubRev is the revision the hub's state is at.
func hubRev(h *Hub) int64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.rev
}

// waitFor polls cond until it holds or timeout passes, then fails with
// what cond last reported.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, seen := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v; last seen: %s", what, timeout, seen)
		}
		<-time.After(5 * time.Millisecond)
	}
}

// streamLog records, on the client side, every stream opened and the
// messages that came on it.
type streamLog struct {
	mu      sync.Mutex
	streams []*streamRec
}

type streamRec struct {
	since string
	msgs  []push.Message
	buf   []byte
}

func (l *streamLog) get() []streamRec {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]streamRec, len(l.streams))
	for i, s := range l.streams {
		out[i] = streamRec{since: s.since, msgs: slices.Clone(s.msgs)}
	}
	return out
}

type recordingTransport struct {
	base http.RoundTripper
	log  *streamLog
}

func (rt *recordingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := rt.base.RoundTrip(r)
	if err != nil {
		return resp, err
	}
	rec := &streamRec{since: r.URL.Query().Get("since")}
	rt.log.mu.Lock()
	rt.log.streams = append(rt.log.streams, rec)
	rt.log.mu.Unlock()
	resp.Body = &recordingBody{ReadCloser: resp.Body, log: rt.log, rec: rec}
	return resp, nil
}

type recordingBody struct {
	io.ReadCloser
	log *streamLog
	rec *streamRec
}

func (b *recordingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.log.mu.Lock()
	defer b.log.mu.Unlock()
	b.rec.buf = append(b.rec.buf, p[:n]...)
	for {
		i := bytes.IndexByte(b.rec.buf, '\n')
		if i < 0 {
			break
		}
		var m push.Message
		if json.Unmarshal(b.rec.buf[:i], &m) == nil {
			b.rec.msgs = append(b.rec.msgs, m)
		} else {
			b.rec.msgs = append(b.rec.msgs, push.Message{Type: "UNDECODABLE: " + string(b.rec.buf[:i])})
		}
		b.rec.buf = b.rec.buf[i+1:]
	}
	return n, err
}

// stateRec keeps a copy of what the client's OnState last reported.
type stateRec struct {
	mu    sync.Mutex
	st    map[string]string
	rev   int64
	calls int
}

func (s *stateRec) on(st push.State, rev int64) {
	cp := make(map[string]string, len(st))
	for k, v := range st {
		cp[k] = string(v)
	}
	s.mu.Lock()
	s.st, s.rev = cp, rev
	s.calls++
	s.mu.Unlock()
}

func (s *stateRec) get() (map[string]string, int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.st), s.rev
}

func (s *stateRec) keys() []string {
	st, _ := s.get()
	return slices.Sorted(maps.Keys(st))
}

// startClient runs a push.Client against base until the end of the test.
func startClient(t *testing.T, base string) (*push.Client, *stateRec, *streamLog) {
	t.Helper()
	tr := &http.Transport{}
	sl := &streamLog{}
	rec := &stateRec{}
	c := &push.Client{Base: base, HTTP: &http.Client{Transport: &recordingTransport{base: tr, log: sl}}, Log: discard, OnState: rec.on}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Errorf("client Run did not return 10s after its context ended")
		}
		tr.CloseIdleConnections()
	})
	return c, rec, sl
}

func putInstance(t *testing.T, reg *regstore.Store, service, id string) string {
	t.Helper()
	in := registry.Instance{Service: service, ID: id, Address: "127.0.0.1:9000", Ready: true}
	if _, err := reg.Put(storetest.Ctx(t), in, 0, time.Minute); err != nil {
		t.Fatalf("registry Put %s/%s: %v", service, id, err)
	}
	return registry.Key(service, id)
}

func TestStreamEndToEnd(t *testing.T) {
	st := storetest.Open(t)
	ctx := storetest.Ctx(t)
	reg := regstore.New(st.Client)
	c1 := putInstance(t, reg, "catalog", "c1")
	res := config.Resource{APIVersion: config.APIVersion, Kind: "ExternalService", Metadata: config.Metadata{Name: "pay"},
		Spec: json.RawMessage(`{"endpoints":[{"address":"pay.example:443"}]}`)}
	if _, _, err := configstore.New(st.Client).Apply(ctx, res); err != nil {
		t.Fatalf("config Apply: %v", err)
	}
	cfgKey := config.Key("ExternalService", "pay")
	svcKey := registry.ServiceKey("catalog") // written with catalog's first instance
	// Neither of these is pushed.
	if _, err := st.Client.Put(ctx, keyspace.Prefix+"other/x", `{}`); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Client.Put(ctx, "/elsewhere", `{}`); err != nil {
		t.Fatal(err)
	}

	hub := startHub(t, st.Client)
	srv, streams, sent := serve(t, hub)
	client, rec, sl := startClient(t, srv.URL)

	// 1. The client starts with a snapshot of what is pushed.
	waitFor(t, 5*time.Second, "initial snapshot", func() (bool, string) {
		got := rec.keys()
		return client.Synced() && slices.Equal(got, []string{cfgKey, c1, svcKey}), fmt.Sprintf("synced %v keys %v", client.Synced(), got)
	})
	if s := sl.get(); len(s) != 1 || s[0].since != "0" || len(s[0].msgs) == 0 || s[0].msgs[0].Type != push.TypeSnapshot {
		t.Fatalf("first stream: got %+v, want one stream since=0 opening with a snapshot", s)
	}
	if st, _ := rec.get(); !strings.Contains(st[c1], `"id":"c1"`) {
		t.Errorf("state[%s]: got %s, want the instance record", c1, st[c1])
	}
	if got := streams.Load(); got != 1 {
		t.Errorf("open streams: got %d, want 1", got)
	}

	// 2. A registry put reaches OnState within a second.
	c2 := putInstance(t, reg, "catalog", "c2")
	waitFor(t, time.Second, "put of catalog/c2 to reach the client", func() (bool, string) {
		got := rec.keys()
		return slices.Contains(got, c2), fmt.Sprintf("keys %v", got)
	})

	// 3. So does a delete.
	if err := reg.Delete(ctx, "catalog", "c1"); err != nil {
		t.Fatalf("registry Delete: %v", err)
	}
	waitFor(t, time.Second, "delete of catalog/c1 to reach the client", func() (bool, string) {
		got := rec.keys()
		return slices.Equal(got, []string{cfgKey, c2, svcKey}), fmt.Sprintf("keys %v", got)
	})
	before, rev := rec.get()
	if client.Revision() != rev || hubRev(hub) != rev {
		t.Fatalf("revisions: got client %d, OnState %d, hub %d, want all equal", client.Revision(), rev, hubRev(hub))
	}
	if got := sent.Load(); got < 3 {
		t.Errorf("OnSend lines: got %d, want at least 3 (snapshot, put, delete)", got)
	}

	// 4. Reconnect: the client resumes at its revision and gets an empty
	// update, not a snapshot; it stays synced with the same state.
	srv.CloseClientConnections()
	waitFor(t, 5*time.Second, "second stream to open and deliver a message", func() (bool, string) {
		s := sl.get()
		return len(s) == 2 && len(s[1].msgs) > 0, fmt.Sprintf("%d streams: %+v", len(s), s)
	})
	second := sl.get()[1]
	if second.since != strconv.FormatInt(rev, 10) {
		t.Errorf("reconnect since: got %q, want %d", second.since, rev)
	}
	if m := second.msgs[0]; m.Type != push.TypeUpdate || m.Revision != rev || len(m.Changes) != 0 {
		t.Errorf("first message after reconnect: got %+v, want an empty update at revision %d", m, rev)
	}
	if !client.Synced() {
		t.Errorf("Synced after reconnect: got false, want true")
	}
	waitFor(t, 5*time.Second, "client connected again with one open stream", func() (bool, string) {
		return client.Connected() && streams.Load() == 1, fmt.Sprintf("connected %v streams %d", client.Connected(), streams.Load())
	})
	if after, arev := rec.get(); !maps.Equal(after, before) || arev != rev {
		t.Errorf("state after reconnect: got rev %d %v, want rev %d %v", arev, after, rev, before)
	}
}

// rawFirst opens a stream with ?since=since and returns its first message.
func rawFirst(t *testing.T, hc *http.Client, base, since string) (int, push.Message) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/v1/stream?since="+since, nil)
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("GET since=%s: %v", since, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return resp.StatusCode, push.Message{}
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/x-ndjson" {
		t.Errorf("Content-Type: got %q, want application/x-ndjson", ct)
	}
	line, err := bufio.NewReader(resp.Body).ReadBytes('\n')
	if err != nil {
		t.Fatalf("since=%s: reading first line: %v", since, err)
	}
	var m push.Message
	if err := json.Unmarshal(line, &m); err != nil {
		t.Fatalf("since=%s: first line %q: %v", since, line, err)
	}
	return resp.StatusCode, m
}

func changeKeys(m push.Message) []string {
	var out []string
	for _, c := range m.Changes {
		out = append(out, c.Key)
	}
	slices.Sort(out)
	return out
}

func TestStreamSince(t *testing.T) {
	st := storetest.Open(t)
	ctx := storetest.Ctx(t)
	var keys []string
	for i := range 4 {
		k := registry.Key("svc", fmt.Sprint("i", i))
		keys = append(keys, k)
		if _, err := st.Client.Put(ctx, k, `{"n":1}`); err != nil {
			t.Fatal(err)
		}
	}
	// A few more revisions the new hub's log does not hold.
	if _, err := st.Client.Put(ctx, keys[0], `{"n":2}`); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Client.Delete(ctx, keys[3]); err != nil {
		t.Fatal(err)
	}
	keys = keys[:3]

	hub := startHub(t, st.Client) // its log starts at the current revision
	srv, _, _ := serve(t, hub)
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	hc := &http.Client{Transport: tr}
	r0 := hubRev(hub)

	tests := []struct {
		name     string
		since    string
		status   int
		typ      string
		changes  []string
		revision int64
	}{
		{"since 0 is a snapshot", "0", 200, push.TypeSnapshot, keys, r0},
		{"no since is a snapshot", "", 200, push.TypeSnapshot, keys, r0},
		{"since before the log is a snapshot", "1", 200, push.TypeSnapshot, keys, r0},
		{"since the current revision is an empty update", fmt.Sprint(r0), 200, push.TypeUpdate, nil, r0},
		{"since ahead of the hub is a snapshot", fmt.Sprint(r0 + 100), 200, push.TypeSnapshot, keys, r0},
		{"since not a number", "abc", 400, "", nil, 0},
		{"since negative", "-1", 400, "", nil, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, m := rawFirst(t, hc, srv.URL, tt.since)
			if status != tt.status {
				t.Fatalf("status: got %d, want %d", status, tt.status)
			}
			if status != 200 {
				return
			}
			if m.Type != tt.typ || m.Revision != tt.revision || !slices.Equal(changeKeys(m), tt.changes) {
				t.Errorf("first message: got %s rev %d keys %v, want %s rev %d keys %v",
					m.Type, m.Revision, changeKeys(m), tt.typ, tt.revision, tt.changes)
			}
		})
	}

	// After one more change, since=r0 gets just that change.
	if _, err := st.Client.Put(ctx, keys[1], `{"n":3}`); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 2*time.Second, "hub to see the put", func() (bool, string) {
		return hubRev(hub) > r0, fmt.Sprintf("hub rev %d", hubRev(hub))
	})
	_, m := rawFirst(t, hc, srv.URL, fmt.Sprint(r0))
	if m.Type != push.TypeUpdate || len(m.Changes) != 1 || m.Changes[0].Key != keys[1] || string(m.Changes[0].Value) != `{"n":3}` {
		t.Errorf("since=%d after a put: got %+v, want an update with only %s={\"n\":3}", r0, m, keys[1])
	}
}

func TestStreamSkipsNonJSONRecord(t *testing.T) {
	st := storetest.Open(t)
	ctx := storetest.Ctx(t)
	bad1 := registry.Key("bad", "one")
	if _, err := st.Client.Put(ctx, bad1, "not json"); err != nil {
		t.Fatal(err)
	}
	good := registry.Key("catalog", "c1")
	if _, err := st.Client.Put(ctx, good, `{"id":"c1"}`); err != nil {
		t.Fatal(err)
	}

	hub := startHub(t, st.Client)
	srv, _, _ := serve(t, hub)
	client, rec, sl := startClient(t, srv.URL)
	waitFor(t, 5*time.Second, "snapshot without the bad record", func() (bool, string) {
		got := rec.keys()
		return client.Synced() && slices.Equal(got, []string{good}), fmt.Sprintf("keys %v", got)
	})

	bad2 := registry.Key("bad", "two")
	if _, err := st.Client.Put(ctx, bad2, "{oops"); err != nil {
		t.Fatal(err)
	}
	good2 := registry.Key("catalog", "c2")
	if _, err := st.Client.Put(ctx, good2, `{"id":"c2"}`); err != nil {
		t.Fatal(err)
	}
	waitFor(t, time.Second, "the record after the bad one to arrive", func() (bool, string) {
		got := rec.keys()
		return slices.Equal(got, []string{good, good2}), fmt.Sprintf("keys %v", got)
	})
	s := sl.get()
	if len(s) != 1 {
		t.Errorf("streams: got %d, want 1 (the bad record must not break the stream)", len(s))
	}
	for _, m := range s[0].msgs {
		for _, c := range m.Changes {
			// A bad record reaches sidecars at most as a deletion, never as a value.
			if (c.Key == bad1 || c.Key == bad2) && len(c.Value) != 0 {
				t.Errorf("message %s rev %d: got value %q for %s, want it skipped or deleted", m.Type, m.Revision, c.Value, c.Key)
			}
		}
	}
	if !client.Connected() {
		t.Errorf("Connected: got false, want true")
	}
}

func putEvent(key, value string, rev int64) *clientv3.Event {
	return &clientv3.Event{Type: clientv3.EventTypePut, Kv: &mvccpb.KeyValue{Key: []byte(key), Value: []byte(value), ModRevision: rev}}
}

func decodeLine(t *testing.T, line []byte) push.Message {
	t.Helper()
	var m push.Message
	if err := json.Unmarshal(line, &m); err != nil {
		t.Fatalf("decode %q: %v", line, err)
	}
	return m
}

func TestHubTrimmedLogServesSnapshot(t *testing.T) {
	h := New(nil, discard)
	const n = maxLog + 100
	for rev := int64(2); rev < 2+n; rev++ {
		h.apply(rev, []*clientv3.Event{putEvent(registry.Key("svc", fmt.Sprint("i", rev%50)), fmt.Sprintf(`{"rev":%d}`, rev), rev)})
	}
	last := int64(1 + n)
	h.mu.Lock()
	logLen, logRev := len(h.changes), h.logRev
	h.mu.Unlock()
	if logLen > maxLog || logRev <= 2 {
		t.Fatalf("after %d changes: got log of %d from rev %d, want at most %d, trimmed past rev 2", n, logLen, logRev, maxLog)
	}
	tests := []struct {
		since   int64
		typ     string
		changes int
	}{
		{1, push.TypeSnapshot, 50},
		{logRev - 1, push.TypeSnapshot, 50},
		{logRev, push.TypeUpdate, int(last - logRev)},
		{last - 3, push.TypeUpdate, 3},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint("since=", tt.since), func(t *testing.T) {
			line, rev, _ := h.Since(tt.since)
			m := decodeLine(t, line)
			if m.Type != tt.typ || rev != last || m.Revision != last || len(m.Changes) != tt.changes {
				t.Errorf("Since(%d): got %s rev %d (returned %d) with %d changes, want %s rev %d with %d changes",
					tt.since, m.Type, m.Revision, rev, len(m.Changes), tt.typ, last, tt.changes)
			}
		})
	}
}

// The producer (the watch loop) never waits for streams: with nobody
// reading, apply keeps going, and the change channel is closed, not sent on.
func TestHubProducerNeverBlocks(t *testing.T) {
	h := New(nil, discard)
	_, _, changed := h.Since(0) // a reader that never reads
	done := make(chan struct{})
	go func() {
		defer close(done)
		for rev := int64(2); rev < 20002; rev++ {
			h.apply(rev, []*clientv3.Event{putEvent(registry.Key("svc", "a"), "{}", rev)})
		}
	}()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatalf("20000 applies with no reader did not finish in 20s; hub at rev %d", hubRev(h))
	}
	select {
	case <-changed:
	default:
		t.Errorf("changed channel from before the applies: got open, want closed")
	}
	// Since itself does not wait either: at the current revision it
	// returns nothing and a channel that is still open.
	line, rev, ch := h.Since(20001)
	if line != nil || rev != 20001 {
		t.Errorf("Since(current): got (%q, %d), want (nil, 20001)", line, rev)
	}
	select {
	case <-ch:
		t.Errorf("changed channel with no change since: got closed, want open")
	default:
	}
}

func TestHubFollowsEtcdWithoutReaders(t *testing.T) {
	st := storetest.Open(t)
	ctx := storetest.Ctx(t)
	hub := startHub(t, st.Client)
	var lastRev int64
	for i := range 300 {
		resp, err := st.Client.Put(ctx, registry.Key("svc", fmt.Sprint("i", i)), "{}")
		if err != nil {
			t.Fatal(err)
		}
		lastRev = resp.Header.Revision
	}
	waitFor(t, 5*time.Second, "hub to reach the last revision", func() (bool, string) {
		return hubRev(hub) == lastRev, fmt.Sprintf("hub rev %d, etcd rev %d", hubRev(hub), lastRev)
	})
	line, _, _ := hub.Since(0)
	if m := decodeLine(t, line); len(m.Changes) != 300 {
		t.Errorf("snapshot: got %d keys, want 300", len(m.Changes))
	}
}

// An etcd watch that starts behind (an unsynced watcher) delivers at most
// 1000 revisions per response, each with the *current* revision in its
// header. A stream served between two such responses must not be told it
// is at a revision whose changes it has not been sent.
func TestHubRevisionCoversOnlyAppliedEvents(t *testing.T) {
	st := storetest.Open(t)
	ctx := storetest.Ctx(t)
	h := New(st.Client, discard)
	rev0, err := h.load(ctx)
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	const n = 2500
	for i := range n {
		if _, err := st.Client.Put(ctx, registry.Key("svc", fmt.Sprint("i", i)), "{}"); err != nil {
			t.Fatal(err)
		}
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	wch := st.Client.Watch(wctx, keyspace.Prefix, clientv3.WithPrefix(), clientv3.WithRev(rev0+1))

	// A receiver takes a snapshot after the first response and follows
	// the hub from there.
	recv := map[string]bool{}
	var recvRev int64
	applied, responses := 0, 0
	for applied < n {
		var resp clientv3.WatchResponse
		select {
		case resp = <-wch:
		case <-time.After(10 * time.Second):
			t.Fatalf("watch: no response in 10s after %d events", applied)
		}
		if err := resp.Err(); err != nil {
			t.Fatalf("watch: %v", err)
		}
		h.apply(resp.Header.Revision, resp.Events)
		applied += len(resp.Events)
		responses++
		line, rev, _ := h.Since(recvRev)
		if line == nil {
			continue
		}
		m := decodeLine(t, line)
		if m.Type == push.TypeSnapshot {
			clear(recv)
		}
		for _, c := range m.Changes {
			recv[c.Key] = len(c.Value) > 0
		}
		recvRev = rev
	}
	if len(recv) != n {
		t.Errorf("after %d watch responses: receiver at rev %d has %d keys, want %d (hub rev %d)",
			responses, recvRev, len(recv), n, hubRev(h))
	}
}

// TestMain fails the package when goroutines started by its tests (etcd,
// watches, streams, clients) outlive them.
func TestMain(m *testing.M) { storetest.Main(m) }

// A change written to an open stream reports its push latency; a stream
// refused reports its reason.
func TestStreamReportsLatencyAndErrors(t *testing.T) {
	st := storetest.Open(t)
	hub := startHub(t, st.Client)
	var mu sync.Mutex
	var latencies []time.Duration
	var reasons []string
	srv := httptest.NewServer(&Handler{Hub: hub,
		OnPush:  func(d time.Duration) { mu.Lock(); latencies = append(latencies, d); mu.Unlock() },
		OnError: func(r string) { mu.Lock(); reasons = append(reasons, r); mu.Unlock() }})
	t.Cleanup(srv.Close)

	resp, err := http.Get(srv.URL + "?since=x")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("since=x: got %d, want 400", resp.StatusCode)
	}

	client, _, _ := startClient(t, srv.URL)
	waitFor(t, 5*time.Second, "the first snapshot", func() (bool, string) { return client.Synced(), "not synced" })
	mu.Lock()
	if len(latencies) != 0 {
		t.Errorf("the first snapshot reported latency %v, want none (it is no change)", latencies)
	}
	mu.Unlock()
	putInstance(t, regstore.New(st.Client), "catalog", "c1")
	waitFor(t, 5*time.Second, "the change's push latency", func() (bool, string) {
		mu.Lock()
		defer mu.Unlock()
		return len(latencies) >= 1 && latencies[0] < 5*time.Second, fmt.Sprint(latencies)
	})
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(reasons, []string{"bad-request"}) {
		t.Errorf("errors: got %q, want [bad-request]", reasons)
	}
}
