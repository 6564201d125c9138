package ratelimit

import (
	"net/netip"
	"time"
)

// maxClients bounds the state of a table: past it, new addresses are not
// tracked until a sweep frees room, so a flood of addresses costs no
// memory.
const maxClients = 100_000

// key is the state's key for a: the address for IPv4, the /64 for IPv6,
// the block one host usually holds.
func key(a netip.Addr) netip.Prefix {
	a = a.Unmap()
	bits := 32
	if a.Is6() {
		bits = 64
	}
	p, _ := a.Prefix(bits)
	return p
}

// table is per-address state that forgets itself: a sweep drops every
// entry its idle function calls as good as new (a full token bucket, no
// session, no ban). Its owner holds a mutex around every call.
type table[V any] struct {
	m         map[netip.Prefix]*V
	every     time.Duration // the least time between sweeps when not full
	idle      func(v *V, now time.Time) bool
	lastSweep time.Time
}

func newTable[V any](every time.Duration, idle func(*V, time.Time) bool) table[V] {
	return table[V]{m: make(map[netip.Prefix]*V), every: every, idle: idle}
}

// get returns a's entry, or nil.
func (t *table[V]) get(a netip.Addr) *V { return t.m[key(a)] }

// entry sweeps when due and returns a's entry, made with fresh when a has
// none; it returns nil when the table is full.
func (t *table[V]) entry(a netip.Addr, now time.Time, fresh func() *V) *V {
	if now.Sub(t.lastSweep) >= t.every || len(t.m) >= maxClients {
		t.lastSweep = now
		for k, v := range t.m {
			if t.idle(v, now) {
				delete(t.m, k)
			}
		}
	}
	k := key(a)
	v, ok := t.m[k]
	if !ok {
		if len(t.m) >= maxClients {
			return nil
		}
		v = fresh()
		t.m[k] = v
	}
	return v
}
