package resilience

import (
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// KeyedLimiterOptions configure a KeyedLimiter: one token bucket of Rate
// and Burst per key (a calling service, say), for at most MaxKeys keys.
type KeyedLimiterOptions struct {
	// Rate is each key's sustained requests per second.
	Rate float64
	// Burst is each key's bucket size.
	Burst int
	// MaxKeys bounds the keys held (default 10000; at least 1).
	MaxKeys int
}

// DefaultKeyedLimiterOptions holds the default MaxKeys; Rate and Burst
// are always given.
func DefaultKeyedLimiterOptions() KeyedLimiterOptions {
	return KeyedLimiterOptions{MaxKeys: 10000}
}

// Validate names the first field that is out of range.
func (o KeyedLimiterOptions) Validate() error {
	if err := (LimiterOptions{Rate: o.Rate, Burst: o.Burst}).Validate(); err != nil {
		return err
	}
	if o.MaxKeys < 1 {
		return optErr("rateLimit.maxKeys", "%d must be at least 1", o.MaxKeys)
	}
	return nil
}

// evictSample is how many keys an eviction looks at.
const evictSample = 16

// KeyedLimiter limits each key to its own token bucket, with bounded
// memory: when a new key comes and MaxKeys are held, it forgets the least
// recently used of evictSample keys (every key when MaxKeys ≤
// evictSample, so exact LRU there; Redis's approximated LRU above). A
// forgotten key starts again with a full bucket; as a bucket idle for
// Burst/Rate seconds is full anyway, forgetting idle keys loses nothing.
//
// Allow for a key already held takes a read lock and allocates nothing; a
// new key takes the write lock and allocates its bucket (and a copy of the
// key). Safe for concurrent use.
type KeyedLimiter struct {
	o         LimiterOptions
	maxKeys   int
	mu        sync.RWMutex
	keys      map[string]*keyBucket
	evictions atomic.Uint64
}

// keyBucket is one key's bucket and when it was last used.
type keyBucket struct {
	Limiter
	used atomic.Int64
}

// usedGrain is how stale a bucket's last use may be recorded, to spare a
// write per request on a busy key.
const usedGrain = int64(time.Millisecond)

// NewKeyedLimiter returns a limiter with no key yet, or the options'
// error.
func NewKeyedLimiter(o KeyedLimiterOptions) (*KeyedLimiter, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	return &KeyedLimiter{
		o:       LimiterOptions{Rate: o.Rate, Burst: o.Burst},
		maxKeys: o.MaxKeys,
		keys:    make(map[string]*keyBucket, min(o.MaxKeys, 1024)),
	}, nil
}

// Allow takes a token from key's bucket at now (nanoseconds), as
// Limiter.Allow. key may be a string made without a copy (from a request
// buffer): it is copied if kept.
func (k *KeyedLimiter) Allow(key string, now int64) (ok bool, retryAfter time.Duration) {
	k.mu.RLock()
	b := k.keys[key]
	k.mu.RUnlock()
	if b == nil {
		b = k.add(key, now)
	} else if now-b.used.Load() >= usedGrain {
		b.used.Store(now)
	}
	return b.Allow(now)
}

// add returns key's bucket, making it (and making room) if it is still
// missing.
func (k *KeyedLimiter) add(key string, now int64) *keyBucket {
	k.mu.Lock()
	defer k.mu.Unlock()
	if b := k.keys[key]; b != nil {
		return b
	}
	if len(k.keys) >= k.maxKeys {
		k.evict()
	}
	b := &keyBucket{}
	b.init(k.o)
	b.used.Store(now)
	k.keys[strings.Clone(key)] = b
	return b
}

// evict forgets the least recently used of up to evictSample keys (map
// iteration starts at a random place). k.mu is held.
func (k *KeyedLimiter) evict() {
	var oldest string
	var at int64
	n := 0
	for key, b := range k.keys {
		if u := b.used.Load(); n == 0 || u < at {
			oldest, at = key, u
		}
		if n++; n == evictSample {
			break
		}
	}
	if n > 0 {
		delete(k.keys, oldest)
		k.evictions.Add(1)
	}
}

// Len is the number of keys held.
func (k *KeyedLimiter) Len() int {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return len(k.keys)
}

// Evictions is the number of keys forgotten to make room, ever.
func (k *KeyedLimiter) Evictions() uint64 { return k.evictions.Load() }
