package ratelimit_test

import (
	"net/netip"
	"testing"
	"time"

	"github.com/wsbridge/wsbridge/ratelimit"
)

func TestFailureBudget(t *testing.T) {
	b := ratelimit.NewFailureBudget(5, time.Minute, time.Minute)
	t0 := time.Unix(1_700_000_000, 0)
	ip := netip.MustParseAddr("192.0.2.1")
	for i := range 4 {
		if b.Fail(ip, t0.Add(time.Duration(i)*time.Second)) {
			t.Fatalf("failure %d started a ban", i+1)
		}
		if _, banned := b.Banned(ip, t0.Add(time.Duration(i)*time.Second)); banned {
			t.Fatalf("banned after %d failures", i+1)
		}
	}
	if !b.Fail(ip, t0.Add(4*time.Second)) {
		t.Fatal("the fifth failure within a minute did not start a ban")
	}
	if left, banned := b.Banned(ip, t0.Add(5*time.Second)); !banned || left != 59*time.Second {
		t.Errorf("Banned one second later = %v, %v; want 59s, true", left, banned)
	}
	if _, banned := b.Banned(netip.MustParseAddr("192.0.2.2"), t0.Add(5*time.Second)); banned {
		t.Error("another address was banned")
	}
	if _, banned := b.Banned(ip, t0.Add(64*time.Second)); banned {
		t.Error("still banned after the minute")
	}

	// Failures spread out refill: one every 12s never bans.
	slow := netip.MustParseAddr("192.0.2.3")
	for i := range 20 {
		if b.Fail(slow, t0.Add(time.Duration(i)*13*time.Second)) {
			t.Fatalf("a failure every 13s was banned at failure %d", i+1)
		}
	}
}

func TestFailureBudgetKeysIPv6By64(t *testing.T) {
	b := ratelimit.NewFailureBudget(2, time.Minute, time.Minute)
	now := time.Unix(1_700_000_000, 0)
	b.Fail(netip.MustParseAddr("2001:db8:1:2::1"), now)
	b.Fail(netip.MustParseAddr("2001:db8:1:2::ffff"), now)
	if _, banned := b.Banned(netip.MustParseAddr("2001:db8:1:2:abcd::1"), now); !banned {
		t.Error("a ban on one address did not cover its /64")
	}
	if _, banned := b.Banned(netip.MustParseAddr("2001:db8:1:3::1"), now); banned {
		t.Error("the ban spread to another /64")
	}
	// IPv4-mapped IPv6 is the IPv4 address.
	b.Fail(netip.MustParseAddr("::ffff:192.0.2.9"), now)
	b.Fail(netip.MustParseAddr("192.0.2.9"), now)
	if _, banned := b.Banned(netip.MustParseAddr("192.0.2.9"), now); !banned {
		t.Error("IPv4-mapped and plain IPv4 were counted apart")
	}
}

func TestFailureBudgetForgets(t *testing.T) {
	b := ratelimit.NewFailureBudget(5, time.Minute, time.Minute)
	now := time.Unix(1_700_000_000, 0)
	for i := range 1000 {
		b.Fail(netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}), now)
	}
	if b.Len() != 1000 {
		t.Fatalf("Len = %d, want 1000", b.Len())
	}
	// A minute later every bucket is full again: the next failure sweeps
	// them all away but its own.
	b.Fail(netip.MustParseAddr("10.9.9.9"), now.Add(2*time.Minute))
	if b.Len() != 1 {
		t.Errorf("Len after the window = %d, want 1", b.Len())
	}
	var nilBudget *ratelimit.FailureBudget
	if nilBudget.Fail(netip.MustParseAddr("10.0.0.1"), now) {
		t.Error("a nil budget banned")
	}
}
