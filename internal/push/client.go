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
	for attempt := 1; ; attempt++ {
		got, err := c.follow(ctx)
		c.connected.Store(false)
		if ctx.Err() != nil {
			return nil
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

// follow runs one stream; got reports whether any message arrived.
func (c *Client) follow(ctx context.Context) (got bool, err error) {
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	url := c.Base + "/v1/stream?since=" + strconv.FormatInt(c.rev.Load(), 10)
	req, err := http.NewRequestWithContext(sctx, http.MethodGet, url, nil)
	if err != nil {
		return false, err
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return false, fmt.Errorf("stream: %s", resp.Status)
	}
	c.connected.Store(true)
	// A stream that misses three pings is dead even if TCP has not noticed.
	watchdog := time.AfterFunc(3*PingInterval, cancel)
	defer watchdog.Stop()

	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 256<<20)
	for sc.Scan() {
		watchdog.Reset(3 * PingInterval)
		var m Message
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			return got, fmt.Errorf("stream: bad message: %w", err)
		}
		got = true
		c.apply(m)
	}
	if err := sc.Err(); err != nil {
		return got, err
	}
	return got, errors.New("stream closed by control plane")
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
