package testenv

import "math/rand/v2"

// RandomBytes returns n bytes drawn from rng.
func RandomBytes(rng *rand.Rand, n int) []byte {
	p := make([]byte, n)
	for i := range p {
		p[i] = byte(rng.Uint32())
	}
	return p
}

// FragmentSize draws how many of a message's n remaining bytes its next
// frame carries, for tests that cut messages into fragments: all of them
// half the time, else any number down to none, or at most three (a
// base64 quad cut across frames).
func FragmentSize(rng *rand.Rand, n int) int {
	switch rng.IntN(6) {
	case 0, 1:
		return rng.IntN(n + 1)
	case 2:
		return min(n, rng.IntN(4))
	}
	return n
}
