//go:build !windows

package service

import "context"

// Run runs d as the service. On Unix the service manager starts wsbridge
// like any process and stops it with SIGTERM, which ends ctx; reloads come
// as SIGHUP, which the daemon watches itself.
func Run(ctx context.Context, d Daemon) error { return runKardianos(ctx, d) }

// Reload asks the running service to reload. On Unix that is a signal to
// its process, which the caller sends.
func Reload() error { return errNoControl }

func hasEventLog() bool { return false }
