package ratelimit_test

import (
	"net/netip"
	"testing"
	"time"

	"github.com/wsbridge/wsbridge/ratelimit"
)

func TestClientsSessionCap(t *testing.T) {
	c := ratelimit.NewClients(2, 0, 0)
	t0 := time.Unix(1_700_000_000, 0)
	a := netip.MustParseAddr("2001:db8::1")
	same := netip.MustParseAddr("2001:db8::2") // the same /64
	other := netip.MustParseAddr("2001:db8:1::1")
	for i, ip := range []netip.Addr{a, same} {
		if why, _ := c.Admit(ip, t0); why != ratelimit.Admitted {
			t.Fatalf("session %d refused: %v", i+1, why)
		}
	}
	if why, _ := c.Admit(a, t0); why != ratelimit.TooMany {
		t.Fatalf("third session in one /64 = %v, want TooMany", why)
	}
	if why, _ := c.Admit(other, t0); why != ratelimit.Admitted {
		t.Fatalf("another /64 = %v", why)
	}
	c.Release(same)
	if why, _ := c.Admit(a, t0); why != ratelimit.Admitted {
		t.Fatalf("after a release = %v", why)
	}
}

func TestClientsRate(t *testing.T) {
	c := ratelimit.NewClients(0, 2, 3) // 2 per second, burst 3
	t0 := time.Unix(1_700_000_000, 0)
	ip := netip.MustParseAddr("192.0.2.7")
	for i := range 3 {
		if why, _ := c.Admit(ip, t0); why != ratelimit.Admitted {
			t.Fatalf("handshake %d of the burst refused", i+1)
		}
		c.Release(ip)
	}
	why, wait := c.Admit(ip, t0)
	if why != ratelimit.TooFast || wait != 500*time.Millisecond {
		t.Fatalf("fourth handshake = %v, wait %v; want TooFast, 500ms", why, wait)
	}
	// The refused handshake did not spend a token.
	if why, _ := c.Admit(ip, t0.Add(500*time.Millisecond)); why != ratelimit.Admitted {
		t.Fatalf("after the wait = %v", why)
	}
}

func TestClientsEviction(t *testing.T) {
	c := ratelimit.NewClients(4, 10, 20)
	t0 := time.Unix(1_700_000_000, 0)
	held := netip.MustParseAddr("198.51.100.1")
	c.Admit(held, t0)
	for i := range 1000 {
		ip := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		c.Admit(ip, t0)
		c.Release(ip)
	}
	if n := c.Len(); n != 1001 {
		t.Fatalf("Len = %d, want 1001", n)
	}
	// Two seconds refill a burst of 20 at 10/s: every idle address is
	// forgotten at the next sweep; the one with a live session stays.
	c.Admit(netip.MustParseAddr("203.0.113.9"), t0.Add(2*time.Second))
	if n := c.Len(); n != 2 {
		t.Fatalf("after the sweep Len = %d, want 2 (the live one and the newcomer)", n)
	}
	if why, _ := c.Admit(held, t0.Add(2*time.Second)); why != ratelimit.Admitted {
		t.Fatalf("the live address lost its state: %v", why)
	}
}

func TestClientsOff(t *testing.T) {
	if c := ratelimit.NewClients(0, 0, 0); c != nil {
		t.Fatal("no limits should be nil")
	}
	var c *ratelimit.Clients
	if why, _ := c.Admit(netip.MustParseAddr("192.0.2.1"), time.Now()); why != ratelimit.Admitted {
		t.Fatal("a nil Clients refused")
	}
}

func TestCounter(t *testing.T) {
	var c ratelimit.Counter
	for i, want := range []bool{true, true, false} {
		if got := c.Acquire("t", 2); got != want {
			t.Fatalf("Acquire %d under a cap of 2 = %v", i+1, got)
		}
	}
	if !c.Acquire("u", 0) {
		t.Fatal("no cap refused")
	}
	c.Release("t")
	if !c.Acquire("t", 2) {
		t.Fatal("released slot not reusable")
	}
	c.Release("t")
	c.Release("t")
	c.Release("u")
	if c.Len() != 0 {
		t.Fatalf("Len = %d after every release, want 0", c.Len())
	}
}

func TestBandwidth(t *testing.T) {
	if ratelimit.NewBandwidth(0) != nil {
		t.Fatal("0 should be unlimited (nil)")
	}
	t0 := time.Unix(1_700_000_000, 0)
	for _, bps := range []int64{1000, 1 << 20, 1 << 30} {
		b := ratelimit.NewBandwidth(bps)
		chunk := b.Chunk()
		if chunk < 1<<10 || chunk > ratelimit.MaxChunk {
			t.Fatalf("%d B/s: chunk %d", bps, chunk)
		}
		// Ten seconds' worth, in chunks: the waits add up to 10 s less
		// the first burst.
		var wait time.Duration
		sent := int64(0)
		for sent < 10*bps {
			wait = b.Reserve(chunk, t0)
			sent += int64(chunk)
		}
		want := time.Duration(float64(sent-int64(chunk)) / float64(bps) * float64(time.Second))
		if d := wait - want; d < -50*time.Millisecond || d > 50*time.Millisecond {
			t.Errorf("%d B/s: last wait %v, want about %v", bps, wait, want)
		}
	}
	// Lifting the limit lets waiting senders through.
	b := ratelimit.NewBandwidth(1000)
	for range 10 {
		b.Reserve(b.Chunk(), t0)
	}
	b.Set(0, t0)
	if w := b.Reserve(b.Chunk(), t0); w != 0 {
		t.Errorf("after Set(0) a reserve waits %v", w)
	}
}
