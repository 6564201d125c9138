package wsframe

import (
	"bytes"
	"encoding/binary"
	"testing"
)

// TestMask: every length up to 100 and every split point give the bytes
// of the plain definition, byte i XOR key byte i mod 4, and the key
// returned carries on where b ended.
func TestMask(t *testing.T) {
	key := [4]byte{0x37, 0xfa, 0x21, 0x3d}
	k := binary.LittleEndian.Uint32(key[:])
	for n := range 100 {
		p := make([]byte, n)
		for i := range p {
			p[i] = byte(i*7 + 3)
		}
		want := bytes.Clone(p)
		for i := range want {
			want[i] ^= key[i%4]
		}
		for cut := range n + 1 {
			got := bytes.Clone(p)
			Mask(got[cut:], Mask(got[:cut], k))
			if !bytes.Equal(got, want) {
				t.Fatalf("length %d cut at %d: %x, want %x", n, cut, got, want)
			}
		}
	}
}

// TestAppendClient: headers at each length encoding, and a payload that
// masks back to itself.
func TestAppendClient(t *testing.T) {
	for _, tt := range []struct {
		fin  bool
		op   byte
		n    int
		head []byte
	}{
		{true, 0x2, 0, []byte{0x82, 0x80}},
		{false, 0x1, 125, []byte{0x01, 0x80 | 125}},
		{true, 0x0, 126, []byte{0x80, 0x80 | 126, 0, 126}},
		{true, 0x2, 65535, []byte{0x82, 0x80 | 126, 0xff, 0xff}},
		{true, 0x2, 65536, []byte{0x82, 0x80 | 127, 0, 0, 0, 0, 0, 1, 0, 0}},
	} {
		p := bytes.Repeat([]byte{'a'}, tt.n)
		f := AppendClient([]byte("x"), tt.fin, tt.op, p, 0x01020304)
		head := append([]byte("x"), tt.head...)
		head = append(head, 4, 3, 2, 1)
		if !bytes.Equal(f[:len(head)], head) {
			t.Fatalf("%d bytes: header %x, want %x", tt.n, f[:len(head)], head)
		}
		body := f[len(head):]
		Mask(body, 0x01020304)
		if !bytes.Equal(body, p) {
			t.Fatalf("%d bytes: payload does not unmask", tt.n)
		}
	}
}
