package bridge

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"io"
)

// errBase64 means a client message in a base64 session was not valid
// standard base64 (RFC 4648 with padding). The session closes with 1007.
var errBase64 = errors.New("invalid base64 in message")

// b64Decoder decodes one WebSocket message of base64 as it arrives in chunks
// of any size, so a message never has to be held whole. It is strict: only
// the standard alphabet, padding only at the end of the message, and no line
// breaks (which encoding/base64 would skip only when they happen to fall
// inside one chunk).
type b64Decoder struct {
	carry  [4]byte
	n      int  // bytes in carry
	padded bool // a quad with padding ended the data
}

func (d *b64Decoder) reset() { d.n, d.padded = 0, false }

// decodedLen is the largest output decode writes for n input bytes.
func decodedLen(n int) int { return (n+3)/4*3 + 3 }

// decode appends nothing: it writes the bytes of src that complete quads into
// dst (at least decodedLen(len(src)) long) and keeps up to three bytes for the
// next call.
func (d *b64Decoder) decode(dst, src []byte) (int, error) {
	if len(src) == 0 {
		return 0, nil
	}
	if d.padded {
		return 0, errBase64
	}
	out := 0
	if d.n > 0 {
		k := copy(d.carry[d.n:], src)
		d.n += k
		src = src[k:]
		if d.n < 4 {
			return 0, nil
		}
		m, err := d.quads(dst, d.carry[:])
		if err != nil {
			return 0, err
		}
		out, d.n = m, 0
		if d.padded && len(src) > 0 {
			return 0, errBase64
		}
	}
	whole := len(src) &^ 3
	if whole > 0 {
		m, err := d.quads(dst[out:], src[:whole])
		if err != nil {
			return 0, err
		}
		out += m
	}
	d.n = copy(d.carry[:], src[whole:])
	if d.padded && d.n > 0 {
		return 0, errBase64
	}
	return out, nil
}

// quads decodes whole quads. len(src) is a multiple of four.
func (d *b64Decoder) quads(dst, src []byte) (int, error) {
	n, err := b64Decode(dst, src)
	if err != nil {
		return 0, errBase64
	}
	if src[len(src)-1] == '=' {
		d.padded = true
	}
	return n, nil
}

// finish reports whether the message ended on a quad boundary.
func (d *b64Decoder) finish() error {
	if d.n != 0 {
		return errBase64
	}
	return nil
}

// copyMessage copies one message from r to w through buf, in writes of at
// most chunk bytes. With dec it decodes base64 as the message streams in:
// the first half of buf takes base64, the second half the bytes it decodes
// to, and a read takes the characters of up to chunk bytes rounded up to
// whole groups (two bytes over chunk at most), so that a message of chunk
// bytes is one read and one write. w's errors come back as w returned them; a decoding error is
// errBase64.
func copyMessage(w io.Writer, r io.Reader, buf []byte, chunk int, dec *b64Decoder) error {
	src, dst := buf[:min(len(buf), chunk)], []byte(nil)
	if dec != nil {
		dec.reset()
		half := len(buf) / 2
		src, dst = buf[:half], buf[half:]
		src = src[:min(len(src), (len(dst)-3)/3*4, max((chunk+2)/3*4, 4))]
	}
	for {
		n, err := r.Read(src)
		out := src[:n]
		if dec != nil && n > 0 {
			m, derr := dec.decode(dst, out)
			if derr != nil {
				return derr
			}
			out = dst[:m]
		}
		if len(out) > 0 {
			if _, werr := w.Write(out); werr != nil {
				return werr
			}
		}
		if err == io.EOF {
			if dec != nil {
				return dec.finish()
			}
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// The session's base64 codec: encoding/base64 costs about 0.85 CPU
// seconds per GB each way on the benchmark machine, more than the rest of
// a session's work. These loops take twelve bytes (sixteen characters) a
// step with table lookups (decoding looks characters up two at a time)
// and 64-bit loads and stores, encoding about 2.4 and decoding about 1.6
// times as fast (BenchmarkBase64Codec), and leave the tail, padding and
// any error to encoding/base64, so the output and what is accepted are
// exactly its own (the tests compare the two).
const b64Alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

var (
	// b64Pairs maps twelve bits to their two characters, the first in the
	// low byte.
	b64Pairs [1 << 12]uint16
	// b64Twelve maps two characters, the first in the low byte, to their
	// twelve bits; a pair with anything outside the alphabet (padding
	// included) maps to b64Bad. 128 KiB, of which the loop reads the 4,096
	// entries of pairs in the alphabet.
	b64Twelve [1 << 16]uint16
)

const b64Bad = 0xf000

func init() {
	for i := range b64Pairs {
		b64Pairs[i] = uint16(b64Alphabet[i>>6]) | uint16(b64Alphabet[i&63])<<8
	}
	for i := range b64Twelve {
		b64Twelve[i] = b64Bad
	}
	for i := range 1 << 12 {
		b64Twelve[b64Pairs[i]] = uint16(i)
	}
}

// b64Encode is base64.StdEncoding.Encode.
func b64Encode(dst, src []byte) {
	for len(src) >= 14 && len(dst) >= 16 {
		s, o := (*[14]byte)(src), (*[16]byte)(dst)
		// Each load's top 48 bits are six bytes: eight characters.
		x := binary.BigEndian.Uint64(s[:8])
		y := binary.BigEndian.Uint64(s[6:])
		binary.LittleEndian.PutUint64(o[:8], b64Chars(x))
		binary.LittleEndian.PutUint64(o[8:], b64Chars(y))
		src, dst = src[12:], dst[16:]
	}
	base64.StdEncoding.Encode(dst, src)
}

// b64Chars returns the eight characters of x's top 48 bits, the first in
// the low byte.
func b64Chars(x uint64) uint64 {
	return uint64(b64Pairs[x>>52]) | uint64(b64Pairs[x>>40&0xfff])<<16 |
		uint64(b64Pairs[x>>28&0xfff])<<32 | uint64(b64Pairs[x>>16&0xfff])<<48
}

// errLineBreak is b64Decode's error for a line break, which
// encoding/base64 would skip.
var errLineBreak = errors.New("line break in base64")

// b64Decode is base64.StdEncoding.Decode, except that a line break is an
// error.
func b64Decode(dst, src []byte) (int, error) {
	n := 0
	for len(src) >= 16 && len(dst)-n >= 14 {
		s := (*[16]byte)(src)
		x := binary.LittleEndian.Uint64(s[:8])
		y := binary.LittleEndian.Uint64(s[8:])
		a0, a1 := b64Twelve[uint16(x)], b64Twelve[uint16(x>>16)]
		a2, a3 := b64Twelve[uint16(x>>32)], b64Twelve[uint16(x>>48)]
		b0, b1 := b64Twelve[uint16(y)], b64Twelve[uint16(y>>16)]
		b2, b3 := b64Twelve[uint16(y>>32)], b64Twelve[uint16(y>>48)]
		if (a0|a1|a2|a3|b0|b1|b2|b3)&b64Bad != 0 {
			break // not the alphabet: encoding/base64 decides
		}
		o := (*[14]byte)(dst[n:])
		// Each store writes six bytes and two that the next overwrites.
		binary.BigEndian.PutUint64(o[:8], b64Bytes(a0, a1, a2, a3))
		binary.BigEndian.PutUint64(o[6:], b64Bytes(b0, b1, b2, b3))
		n += 12
		src = src[16:]
	}
	// The loop stops at a line break, so only the rest can hold one.
	if bytes.IndexByte(src, '\n') >= 0 || bytes.IndexByte(src, '\r') >= 0 {
		return n, errLineBreak
	}
	m, err := base64.StdEncoding.Decode(dst[n:], src)
	if err != nil {
		if ce, ok := err.(base64.CorruptInputError); ok {
			err = ce + base64.CorruptInputError(n/3*4)
		}
	}
	return n + m, err
}

// b64Bytes returns the six bytes of four twelve-bit values in its top 48
// bits.
func b64Bytes(v0, v1, v2, v3 uint16) uint64 {
	return (uint64(v0)<<36 | uint64(v1)<<24 | uint64(v2)<<12 | uint64(v3)) << 16
}
