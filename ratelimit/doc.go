// Package ratelimit holds wsbridge's admission limits, built on
// golang.org/x/time/rate. Everything here keys clients by address and keeps
// bounded state: idle entries are evicted, since a full token bucket is the
// same as a new one.
//
// Start with [FailureBudget]: after a few failed token lookups an address
// is refused for a while, without any token source being asked.
package ratelimit
