package resilience

import (
	"strconv"
	"testing"
)

func newKeyed(t testing.TB, rate float64, burst, maxKeys int) *KeyedLimiter {
	t.Helper()
	k, err := NewKeyedLimiter(KeyedLimiterOptions{Rate: rate, Burst: burst, MaxKeys: maxKeys})
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestKeyedLimiterKeysAreIndependent(t *testing.T) {
	k := newKeyed(t, 1, 2, 10)
	for _, key := range []string{"billing", "catalog"} {
		for i := range 2 {
			if ok, _ := k.Allow(key, t0); !ok {
				t.Errorf("%s request %d: denied, want allowed", key, i+1)
			}
		}
		if ok, after := k.Allow(key, t0); ok || after != 1e9 {
			t.Errorf("%s past its burst: got %v, retry after %v; want false, 1s", key, ok, after)
		}
	}
	if got := k.Len(); got != 2 {
		t.Errorf("keys: got %d, want 2", got)
	}
}

// With MaxKeys at most the sample, eviction is exact LRU.
func TestKeyedLimiterEvictsLeastRecentlyUsed(t *testing.T) {
	k := newKeyed(t, 1e-3, 1, 3) // a token every 1000 s: a key's state shows
	k.Allow("a", t0)
	k.Allow("b", t0+10*ms)
	k.Allow("c", t0+20*ms)
	k.Allow("a", t0+30*ms) // a is now the most recent
	k.Allow("d", t0+40*ms) // evicts b
	if got := k.Len(); got != 3 {
		t.Errorf("keys: got %d, want 3", got)
	}
	if got := k.Evictions(); got != 1 {
		t.Errorf("evictions: got %d, want 1", got)
	}
	for _, key := range []string{"a", "c", "d"} {
		if ok, _ := k.Allow(key, t0+50*ms); ok {
			t.Errorf("%s: allowed, want denied (kept, its token spent)", key)
		}
	}
	if ok, _ := k.Allow("b", t0+50*ms); !ok {
		t.Error("b: denied, want allowed (forgotten, so a full bucket)")
	}
}

// A flood of new keys keeps memory bounded and does not reset a key in
// steady use.
func TestKeyedLimiterFlood(t *testing.T) {
	k := newKeyed(t, 1e-3, 1, 100)
	now := t0
	if ok, _ := k.Allow("hot", now); !ok {
		t.Fatal("hot: first request denied")
	}
	for i := range 10000 {
		now += ms
		if ok, _ := k.Allow("hot", now); ok {
			t.Fatalf("hot after %d new keys: allowed, want denied (its bucket was reset)", i)
		}
		k.Allow("flood-"+strconv.Itoa(i), now)
		if got := k.Len(); got > 100 {
			t.Fatalf("keys: got %d, want at most 100", got)
		}
	}
	if got := k.Evictions(); got != 10000+1-100 {
		t.Errorf("evictions: got %d, want %d", got, 10000+1-100)
	}
}

func TestKeyedLimiterConcurrent(t *testing.T) {
	k := newKeyed(t, 100, 10, 50)
	hammer(4, func(g int) {
		now := t0
		for i := range 5000 {
			now += 10_000
			k.Allow("svc-"+strconv.Itoa((i*7+g)%80), now)
		}
	})
	if got := k.Len(); got > 50 {
		t.Errorf("keys: got %d, want at most 50", got)
	}
}

func TestKeyedLimiterNoAllocs(t *testing.T) {
	k := newKeyed(t, 1000, 10, 10)
	buf := []byte("billing")
	now := t0
	k.Allow("billing", now)
	noAllocs(t, "Allow of a known key", func() {
		now += ms
		k.Allow(string(buf), now)
	})
}

func BenchmarkKeyedLimiterAllow(b *testing.B) {
	k := newKeyed(b, 1e6, 1000, 10000)
	keys := make([]string, 64)
	for i := range keys {
		keys[i] = "service-" + strconv.Itoa(i)
	}
	b.Run("serial", func(b *testing.B) {
		now := t0
		i := 0
		for b.Loop() {
			now += 500
			i++
			k.Allow(keys[i&63], now)
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			now := t0
			i := 0
			for pb.Next() {
				now += 500
				i++
				k.Allow(keys[i&63], now)
			}
		})
	})
}
