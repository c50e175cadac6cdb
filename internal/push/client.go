package push

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"
)

// State is what a client knows: etcd key to JSON value.
type State map[string]json.RawMessage

// Client follows a control plane's stream, keeps State and its revision,
// and reconnects with backoff, resuming from the last revision it saw.
// While disconnected, the last State stays in force.
type Client struct {
	// Base is the control plane's URL, e.g. http://127.0.0.1:15010.
	Base string
	HTTP *http.Client
	Log  *slog.Logger
	// OnState is called from Run's goroutine after each applied message.
	// It must not keep st: the next message changes it.
	OnState func(st State, rev int64)

	state     State
	rev       atomic.Int64
	connected atomic.Bool
	synced    atomic.Bool
}

// Revision is the revision of the current State (0 before the first sync).
func (c *Client) Revision() int64 { return c.rev.Load() }

// Connected reports whether a stream is open now.
func (c *Client) Connected() bool { return c.connected.Load() }

// Synced reports whether a full State has been received at least once.
func (c *Client) Synced() bool { return c.synced.Load() }

// Run follows the stream until ctx ends.
func (c *Client) Run(ctx context.Context) error {
	if c.state == nil {
		c.state = State{}
	}
	backoff := 100 * time.Millisecond
	var lostAt time.Time // when the last stream ended; zero before the first
	for attempt := 1; ; attempt++ {
		connected, got, err := c.follow(ctx, lostAt)
		c.connected.Store(false)
		if ctx.Err() != nil {
			return nil
		}
		if connected {
			lostAt = time.Now()
		}
		if got {
			backoff, attempt = 100*time.Millisecond, 0
		}
		c.Log.Warn("waiting for control plane", "control", c.Base, "attempt", attempt,
			"err", err, "serving_revision", c.rev.Load())
		// Full jitter keeps a thousand sidecars from reconnecting in step.
		wait := backoff/2 + rand.N(backoff/2+1)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}

// follow runs one stream. connected reports whether the control plane
// answered, got whether any message arrived. lostAt is when the previous
// stream ended (zero for the first), for the log line that says it is back.
func (c *Client) follow(ctx context.Context, lostAt time.Time) (connected, got bool, err error) {
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	since := c.rev.Load()
	url := c.Base + "/v1/stream?since=" + strconv.FormatInt(since, 10)
	req, err := http.NewRequestWithContext(sctx, http.MethodGet, url, nil)
	if err != nil {
		return false, false, err
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return false, false, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return false, false, fmt.Errorf("stream: %s", resp.Status)
	}
	c.connected.Store(true)
	if lostAt.IsZero() {
		c.Log.Debug("connected to control plane", "control", c.Base, "since", since)
	} else {
		c.Log.Info("reconnected to control plane", "control", c.Base,
			"down_for", time.Since(lostAt).Round(time.Millisecond), "resuming_from", since)
	}
	// A stream that misses three pings is dead even if TCP has not noticed.
	watchdog := time.AfterFunc(3*PingInterval, cancel)
	defer watchdog.Stop()

	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 256<<20)
	for sc.Scan() {
		watchdog.Reset(3 * PingInterval)
		var m Message
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			return true, got, fmt.Errorf("stream: bad message: %w", err)
		}
		got = true
		c.apply(m)
	}
	if err := sc.Err(); err != nil {
		return true, got, err
	}
	return true, got, errors.New("stream closed by control plane")
}

func (c *Client) apply(m Message) {
	switch m.Type {
	case TypePing:
		return
	case TypeSnapshot:
		c.state = make(State, len(m.Changes))
	case TypeUpdate:
	default:
		c.Log.Warn("stream: ignoring unknown message type", "type", m.Type)
		return
	}
	for _, ch := range m.Changes {
		if len(ch.Value) == 0 {
			delete(c.state, ch.Key)
		} else {
			c.state[ch.Key] = ch.Value
		}
	}
	c.rev.Store(m.Revision)
	c.synced.Store(true)
	if c.OnState != nil {
		c.OnState(c.state, m.Revision)
	}
}
