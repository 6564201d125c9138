//go:build !purego

package bridge

// wideAVX2 says whether unmaskWide may use AVX2; tests turn it off to
// cover the portable loop on the same machine.
var wideAVX2 = hasAVX2()

// hasAVX2 asks the CPU (CPUID) whether it has AVX2, and whether the
// operating system saves the YMM registers across switches (OSXSAVE, then
// XCR0's SSE and AVX bits). bridge asks itself: DESIGN.md section 3 keeps
// golang.org/x/sys out of it.
func hasAVX2() bool {
	if maxLeaf, _, _, _ := cpuid(0, 0); maxLeaf < 7 {
		return false
	}
	const osxsave, avx = 1 << 27, 1 << 28
	if _, _, c, _ := cpuid(1, 0); c&osxsave == 0 || c&avx == 0 {
		return false
	}
	if xgetbv0()&6 != 6 {
		return false
	}
	_, b, _, _ := cpuid(7, 0)
	return b&(1<<5) != 0
}

// cpuid and xgetbv0 are the instructions (unmask_amd64.s).
func cpuid(leaf, sub uint32) (a, b, c, d uint32)
func xgetbv0() uint32

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
