//go:build !amd64 || purego

package bridge

// wideAVX2 is false where there is no vector loop.
var wideAVX2 = false

// unmaskWide has no vector loop on this architecture: unmask's portable
// loop does all of b.
func unmaskWide([]byte, uint64) int { return 0 }
