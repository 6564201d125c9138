//go:build !purego

package bridge

import "golang.org/x/sys/cpu"

// wideAVX2 says whether unmaskWide may use AVX2; tests turn it off to
// cover the portable loop on the same machine.
var wideAVX2 = cpu.X86.HasAVX2

// unmaskWide XORs the longest prefix of b whose length is a multiple of
// 128 with k, the masking key repeated to eight bytes, 32 bytes an
// instruction, and returns that length; unmask does the rest. Without
// AVX2 it does nothing and returns 0.
func unmaskWide(b []byte, k uint64) int {
	n := len(b) &^ 127
	if n == 0 || !wideAVX2 {
		return 0
	}
	xorAVX2(&b[0], n, k)
	return n
}

// xorAVX2 XORs the n bytes at p, n a positive multiple of 128, with k
// repeated (unmask_amd64.s).
//
//go:noescape
func xorAVX2(p *byte, n int, k uint64)
