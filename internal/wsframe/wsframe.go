// Package wsframe holds the WebSocket framing that wsbridge and its load
// tool do by hand (RFC 6455 section 5): masking, and client frames.
package wsframe

import (
	"encoding/binary"
	"math/bits"
)

// Mask XORs b with a masking key whose first byte is key's lowest, and
// returns the key turned for the byte after b, so that a payload can be
// masked (or unmasked) in pieces. Whole words go 32 bytes a step.
func Mask(b []byte, key uint32) uint32 {
	k := uint64(key) | uint64(key)<<32
	i := 0
	for ; len(b)-i >= 32; i += 32 {
		s := b[i : i+32 : i+32]
		binary.LittleEndian.PutUint64(s[0:], binary.LittleEndian.Uint64(s[0:])^k)
		binary.LittleEndian.PutUint64(s[8:], binary.LittleEndian.Uint64(s[8:])^k)
		binary.LittleEndian.PutUint64(s[16:], binary.LittleEndian.Uint64(s[16:])^k)
		binary.LittleEndian.PutUint64(s[24:], binary.LittleEndian.Uint64(s[24:])^k)
	}
	for ; len(b)-i >= 8; i += 8 {
		binary.LittleEndian.PutUint64(b[i:], binary.LittleEndian.Uint64(b[i:])^k)
	}
	for ; i < len(b); i++ {
		b[i] ^= byte(key)
		key = bits.RotateLeft32(key, -8)
	}
	return key
}

// AppendClient appends a frame of p as a client sends it, masked with key:
// opcode op, final when fin.
func AppendClient(f []byte, fin bool, op byte, p []byte, key uint32) []byte {
	f = AppendClientHeader(f, fin, op, len(p), key)
	start := len(f)
	f = append(f, p...)
	Mask(f[start:], key)
	return f
}

// AppendClientHeader appends the header of a client's frame of n bytes
// masked with key, for a payload masked already.
func AppendClientHeader(f []byte, fin bool, op byte, n int, key uint32) []byte {
	if fin {
		op |= 0x80
	}
	f = append(f, op)
	switch {
	case n < 126:
		f = append(f, 0x80|byte(n))
	case n <= 0xffff:
		f = append(f, 0x80|126)
		f = binary.BigEndian.AppendUint16(f, uint16(n))
	default:
		f = append(f, 0x80|127)
		f = binary.BigEndian.AppendUint64(f, uint64(n))
	}
	return binary.LittleEndian.AppendUint32(f, key)
}
