// Package loadtest measures WebSocket-to-TCP bridges, wsbridge and others,
// and plain TCP for baselines: throughput each way with the bridge's CPU
// time per GB, round-trip latency, PSS per idle session, and session setup
// rate. It brings its own TCP target (Target), which checks every byte
// against a seeded pattern, and a plain Go TCP relay (Relay) to compare
// with. Every measurement fails with ErrCorrupt, ErrStalled or ErrDropped
// when the bridge changes a byte, stops moving them, or drops a session.
//
// cmd/wsbridge-bench is its command line; `make bench-compare` runs it.
package loadtest
