//go:build !unix

package bridge

// openFiles returns 0: Windows has no per-process descriptor limit of the
// Unix kind, and sessionCeiling falls back to a fixed number.
func openFiles() int { return 0 }
