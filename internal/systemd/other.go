//go:build !linux

package systemd

// Listeners returns nothing: only systemd passes sockets.
func Listeners() ([]Socket, error) { return nil, nil }

// Notify does nothing outside Linux.
func Notify(string) error { return nil }

// Reloading is the reload notification; nobody reads it here.
func Reloading() string { return "RELOADING=1" }

// JournalStream is false outside Linux.
func JournalStream() bool { return false }
