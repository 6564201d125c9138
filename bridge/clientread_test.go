package bridge

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pires/go-proxyproto"

	"github.com/wsbridge/wsbridge/internal/testenv"
	"github.com/wsbridge/wsbridge/internal/wsframe"
)

// TestClientReadsSift drives clientReads' take-out on a loopback socket
// with small held buffers (so that reads fill them, and partial frames
// move to the front behind gathered payloads): the library's bytes come
// out of Read exactly as sent, frame for frame, and every byte taken out
// goes to data unmasked, at its place in the stream: after the library's
// bytes before it have been read and before any after it. In base64 (runs
// 8 on) every data message is taken out and decoded across its frames,
// which are cut anywhere, down to one character or none; a decoded byte's
// place is that of the frame with its quad's last character.
func TestClientReadsSift(t *testing.T) {
	for run := range 16 {
		chunk := []int{1000, 4096}[run%2]
		b64 := run >= 8
		rng := rand.New(rand.NewPCG(uint64(run), 3))
		largest := int64(0)
		var stream, lib, want []byte
		var at []int // for each byte of want, the library bytes before it
		pongs := 0
		var charAt []int // base64: for each character of the message, the library bytes before it
		add := func(f []byte, payload []byte, taken bool) {
			stream = append(stream, f...)
			if !taken {
				lib = append(lib, f...)
				return
			}
			if b64 {
				for range payload {
					charAt = append(charAt, len(lib))
				}
				return
			}
			want = append(want, payload...)
			for range payload {
				at = append(at, len(lib))
			}
		}
		data := func(n int) []byte { return testenv.RandomBytes(rng, n) }
		for range 400 {
			size := rng.IntN(300)
			if rng.IntN(5) == 0 {
				size = rng.IntN(20000)
			}
			msg := data(size)
			text := rng.IntN(8) == 0 // the library's, in binary
			raw := msg
			if b64 {
				msg = []byte(base64.StdEncoding.EncodeToString(raw))
				charAt = charAt[:0]
			}
			if !text || b64 {
				largest = max(largest, int64(len(msg)))
			}
			op := byte(0x2)
			if text {
				op = 0x1
			}
			for first := true; ; first = false {
				k := testenv.FragmentSize(rng, len(msg))
				fop := op
				if !first {
					fop = 0
				}
				last := k == len(msg)
				add(wsframe.AppendClient(nil, last, fop, msg[:k], rng.Uint32()), msg[:k], !text || b64)
				msg = msg[k:]
				if last && b64 {
					want = append(want, raw...)
					for i := range raw {
						at = append(at, charAt[i/3*4+3])
					}
				}
				switch rng.IntN(8) {
				case 0:
					add(wsframe.AppendClient(nil, true, 0x9, data(rng.IntN(30)), rng.Uint32()), nil, false)
				case 1:
					// Taken out when whole in a read, else the library's.
					add(wsframe.AppendClient(nil, true, 0xA, []byte(pingPayload), rng.Uint32()), nil, true)
					pongs++
				}
				if last {
					break
				}
			}
		}

		a, b := testenv.TCPPair(t)
		pool := heldPool()
		c := newClientReads(b, nil)
		var got []byte
		var gotAt []int
		// Library bytes Read returned, less the pongs among them: when a
		// payload is taken out, those are whole frames.
		read := 0
		c.take(func(v *net.Buffers) error {
			for _, p := range *v {
				got = append(got, p...)
				for range p {
					gotAt = append(gotAt, read)
				}
			}
			return nil
		}, largest, chunk, pool, heldSize, b64) // a limit that the largest message meets
		taken := 0
		c.pong = func() { taken++ }

		wr := rand.New(rand.NewPCG(uint64(run), 4))
		go func() {
			rng := wr
			for rest := stream; len(rest) > 0; {
				k := min(len(rest), []int{1, rng.IntN(10) + 1, rng.IntN(3000) + 1, rng.IntN(40000) + 1}[rng.IntN(4)])
				if _, err := a.Write(rest[:k]); err != nil {
					return
				}
				rest = rest[k:]
			}
			a.Close()
		}()
		var libGot []byte
		split := 0 // pongs the library read
		buf := make([]byte, 20000)
		for {
			n, err := c.Read(buf[:1+rng.IntN(len(buf))])
			libGot = append(libGot, buf[:n]...)
			for read < len(libGot) {
				var f frameCursor
				i := read
				for i < len(libGot) && !f.header(libGot[i]) {
					i++
				}
				end := i + 1 + int(f.left)
				if i == len(libGot) || end > len(libGot) {
					break
				}
				if end-read == pongFrame && isPong(libGot[read:end]) {
					libGot = append(libGot[:read], libGot[end:]...)
					split++
					continue
				}
				read = end
			}
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		if !bytes.Equal(libGot, lib) {
			t.Fatalf("run %d: the library read %d bytes, want %d (first difference at %d)", run, len(libGot), len(lib), firstDiff(libGot, lib))
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("run %d: data got %d bytes, want %d (first difference at %d)", run, len(got), len(want), firstDiff(got, want))
		}
		for i := range at {
			if gotAt[i] != at[i] {
				t.Fatalf("run %d: byte %d taken out after %d library bytes were read, want %d", run, i, gotAt[i], at[i])
			}
		}
		if taken+split != pongs || taken == 0 {
			t.Fatalf("run %d: %d pongs taken out and %d read by the library, want %d in all", run, taken, split, pongs)
		}
		if c.bp != nil {
			t.Fatalf("run %d: a held buffer after the end", chunk)
		}
	}
}

// TestClientReadsPongHeld: a pong to the session's ping between frames
// taken out, in the held buffer, is taken out too.
func TestClientReadsPongHeld(t *testing.T) {
	a, c, got := taking(t, false)
	pongs := 0
	c.pong = func() { pongs++ }
	a.Write(bytes.Join([][]byte{
		wsframe.AppendClient(nil, true, 0x2, []byte("before"), 1),
		wsframe.AppendClient(nil, true, 0xA, []byte(pingPayload), 2),
		wsframe.AppendClient(nil, true, 0x2, []byte("after"), 3),
	}, nil))
	a.Close()
	if n, err := c.Read(make([]byte, 512)); n != 0 || err != io.EOF {
		t.Fatalf("Read: %d, %v; want 0, EOF", n, err)
	}
	if string(*got) != "beforeafter" || pongs != 1 {
		t.Fatalf("data %q and %d pongs; want \"beforeafter\" and 1", *got, pongs)
	}
}

// TestClientReadsSplitHeader: after a frame taken out, a library's frame
// whose header comes in two reads goes to the library whole.
func TestClientReadsSplitHeader(t *testing.T) {
	a, b := testenv.TCPPair(t)
	pool := heldPool()
	c := newClientReads(b, nil)
	got := make(chan string, 1)
	c.take(func(v *net.Buffers) error {
		got <- string(bytes.Join(*v, nil))
		return nil
	}, 100, 1000, pool, heldSize, false)
	ping := wsframe.AppendClient(nil, true, 0x9, []byte("hi"), 7)
	buf := make([]byte, 512)
	stuck := time.AfterFunc(10*time.Second, func() { b.Close() })
	defer stuck.Stop()
	// The frame taken out in one read, the header's first byte in the next.
	read := make(chan int)
	go func() {
		n, _ := c.Read(buf)
		read <- n
	}()
	a.Write(wsframe.AppendClient(nil, true, 0x2, []byte("data"), 1))
	if d := <-got; d != "data" {
		t.Fatalf("data %q", d)
	}
	a.Write(ping[:1])
	if n := <-read; n != 1 || buf[0] != ping[0] {
		t.Fatalf("Read: %x; want %x", buf[:n], ping[:1])
	}
	a.Write(ping[1:])
	var lib []byte
	for len(lib) < len(ping)-1 {
		n, err := c.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		lib = append(lib, buf[:n]...)
	}
	if !bytes.Equal(lib, ping[1:]) {
		t.Fatalf("the library read %x, want %x", lib, ping[1:])
	}
}

// TestClientReadsRefuse: what the library would refuse in a message taken
// out is refused here, or handed to the library.
func TestClientReadsRefuse(t *testing.T) {
	for _, tt := range []struct {
		name   string
		frames [][]byte
		err    error  // from Read, or nil
		lib    []byte // what the library reads first, when no err
	}{
		{"over the limit", [][]byte{wsframe.AppendClient(nil, false, 0x2, make([]byte, 60), 1), wsframe.AppendClient(nil, true, 0, make([]byte, 41), 2)}, errTooBig, nil},
		{"binary inside binary", [][]byte{wsframe.AppendClient(nil, false, 0x2, []byte("a"), 1), wsframe.AppendClient(nil, true, 0x2, []byte("b"), 2)}, errFragment, nil},
		{"text inside binary", [][]byte{wsframe.AppendClient(nil, false, 0x2, []byte("a"), 1), wsframe.AppendClient(nil, true, 0x1, []byte("b"), 2)}, errFragment, nil},
		{"reserved bits", [][]byte{{0x80 | 0x40 | 0x2, 0x80 | 1, 0, 0, 0, 0, 'x'}}, nil, []byte{0x80 | 0x40 | 0x2, 0x80 | 1, 0, 0, 0, 0, 'x'}},
		{"unmasked", [][]byte{{0x82, 1, 'x'}}, nil, []byte{0x82, 1, 'x'}},
		{"length over 63 bits", [][]byte{{0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4}}, nil, []byte{0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			a, c, _ := taking(t, false)
			a.Write(bytes.Join(tt.frames, nil))
			buf := make([]byte, 512)
			n, err := c.Read(buf)
			if tt.err != nil {
				if !errors.Is(err, tt.err) {
					t.Fatalf("Read: %d, %v; want %v", n, err, tt.err)
				}
				if c.bp != nil {
					t.Fatal("a held buffer after the error")
				}
				return
			}
			got := append([]byte(nil), buf[:n]...)
			for err == nil && len(got) < len(tt.lib) {
				n, err = c.Read(buf)
				got = append(got, buf[:n]...)
			}
			if !bytes.Equal(got, tt.lib) {
				t.Fatalf("the library read %x, %v; want %x", got, err, tt.lib)
			}
		})
	}
}

// TestClientReadsBase64: in base64 what the library's path would refuse
// with 1007 (errBase64) or 1009 is refused here, after the bytes decoded
// before the fault (the whole quads, the frames within the limit) are
// written, as that path writes them; a quad cut
// across frames, one character a frame, decodes.
func TestClientReadsBase64(t *testing.T) {
	frame := func(fin bool, op byte, chars string) []byte {
		return wsframe.AppendClient(nil, fin, op, []byte(chars), 5)
	}
	for _, tt := range []struct {
		name   string
		frames [][]byte
		want   string
		err    error
	}{
		{"a quad a character a frame", [][]byte{frame(false, 0x1, "Q"), frame(false, 0, "U"), frame(false, 0, ""), frame(false, 0, "J"), frame(true, 0, "D")}, "ABC", io.EOF},
		{"binary and text", [][]byte{frame(true, 0x2, "QUJD"), frame(true, 0x1, "REVG")}, "ABCDEF", io.EOF},
		{"not the alphabet", [][]byte{frame(false, 0x1, "QUJD"), frame(true, 0, "Q!==")}, "ABC", errBase64},
		{"padding inside", [][]byte{frame(false, 0x1, "QQ=="), frame(true, 0, "QUJD")}, "A", errBase64},
		{"a quad cut short", [][]byte{frame(true, 0x1, "QUJDR")}, "ABC", errBase64},
		{"a quad cut short by an empty frame", [][]byte{frame(false, 0x1, "QUJDR"), frame(true, 0, "")}, "ABC", errBase64},
		{"an empty message", [][]byte{frame(true, 0x1, ""), frame(true, 0x2, "QUJD")}, "ABC", io.EOF},
		{"characters at the limit", [][]byte{frame(true, 0x1, strings.Repeat("QUJD", 25))}, strings.Repeat("ABC", 25), io.EOF},
		{"characters over the limit", [][]byte{frame(false, 0x1, strings.Repeat("QUJD", 25)), frame(true, 0, "QUJD")}, strings.Repeat("ABC", 25), errTooBig},
		{"text inside text", [][]byte{frame(false, 0x1, "QUJD"), frame(true, 0x1, "QUJD")}, "ABC", errFragment},
	} {
		t.Run(tt.name, func(t *testing.T) {
			a, c, got := taking(t, true)
			a.Write(bytes.Join(tt.frames, nil))
			a.Close()
			n, err := c.Read(make([]byte, 512))
			if n != 0 || !errors.Is(err, tt.err) || string(*got) != tt.want {
				t.Fatalf("Read: %d, %v, and the target got %q; want 0, %v, %q", n, err, *got, tt.err, tt.want)
			}
			if c.bp != nil {
				t.Fatal("a held buffer after the end")
			}
		})
	}
}

// heldSize is the size of the tests' held buffers, small enough that
// reads fill them and partial frames move.
const heldSize = 4096

func heldPool() *sync.Pool {
	return &sync.Pool{New: func() any { p := make([]byte, heldSize); return &p }}
}

// taking returns a clientReads on one end of a loopback pair, taking
// messages out (base64 with b64) with a limit of 100 bytes, a chunk of
// 1000 and held buffers of 4 KiB, the other end, and what it writes.
func taking(t *testing.T, b64 bool) (net.Conn, *clientReads, *[]byte) {
	a, b := testenv.TCPPair(t)
	pool := heldPool()
	c := newClientReads(b, nil)
	got := new([]byte)
	c.take(func(v *net.Buffers) error {
		for _, p := range *v {
			*got = append(*got, p...)
		}
		return nil
	}, 100, 1000, pool, heldSize, b64)
	return a, c, got
}

func firstDiff(a, b []byte) int {
	i := 0
	for i < min(len(a), len(b)) && a[i] == b[i] {
		i++
	}
	return i
}

// TestUnmask: bridge's copy of wsframe.Mask (see unmask) gives the same
// bytes and key for every length up to 100, cut at every place.
func TestUnmask(t *testing.T) {
	paths := []bool{false}
	if wideAVX2 {
		paths = append(paths, true)
	}
	defer func(v bool) { wideAVX2 = v }(wideAVX2)
	for _, wide := range paths {
		wideAVX2 = wide
		lengths := []int{1000, 4096 + 37, 64<<10 + 5}
		for n := range 300 {
			lengths = append(lengths, n)
		}
		for _, n := range lengths {
			p := make([]byte, n)
			for i := range p {
				p[i] = byte(i*13 + 5)
			}
			want := bytes.Clone(p)
			wantKey := wsframe.Mask(want, 0xdeadbeef)
			cuts := []int{0, 1, n / 3, n}
			if n < 300 {
				cuts = cuts[:0]
				for cut := range n + 1 {
					cuts = append(cuts, cut)
				}
			}
			for _, cut := range cuts {
				// Guard bytes either side catch a vector loop that strays.
				buf := make([]byte, n+64)
				got := buf[32 : 32+n]
				copy(got, p)
				key := unmask(got[cut:], unmask(got[:cut], 0xdeadbeef))
				if !bytes.Equal(got, want) || key != wantKey {
					t.Fatalf("wide %v, length %d cut at %d: key %#x, want %#x; bytes differ: %v", wide, n, cut, key, wantKey, !bytes.Equal(got, want))
				}
				if zero := make([]byte, 32); !bytes.Equal(buf[:32], zero) || !bytes.Equal(buf[32+n:], zero) {
					t.Fatalf("wide %v, length %d cut at %d: bytes outside the slice changed", wide, n, cut)
				}
			}
		}
	}
}

// BenchmarkUnmask sets the vector loop beside the portable one, on a 64
// KiB message and on a 256 KiB read (the take-out's largest).
func BenchmarkUnmask(b *testing.B) {
	defer func(v bool) { wideAVX2 = v }(wideAVX2)
	avx2 := wideAVX2
	for _, size := range []int{64 << 10, 256 << 10} {
		p := make([]byte, size)
		for _, wide := range []bool{false, true} {
			name := fmt.Sprintf("%dKiB/portable", size>>10)
			if wide {
				if !avx2 {
					continue
				}
				name = fmt.Sprintf("%dKiB/avx2", size>>10)
			}
			b.Run(name, func(b *testing.B) {
				wideAVX2 = wide
				b.SetBytes(int64(size))
				for b.Loop() {
					unmask(p, 0xdeadbeef)
				}
			})
		}
	}
}

// TestUnbuffered follows a PROXY connection's bytes through the library's
// buffer: while it holds some, reading the socket would skip them, and
// unbuffered must say no; once a Read has come back short, the buffer is
// empty and the socket is the connection. A raw read (Linux) then gets
// what the client sends next.
func TestUnbuffered(t *testing.T) {
	client, server := testenv.TCPPair(t)
	src := net.TCPAddrFromAddrPort(netip.MustParseAddrPort("192.0.2.7:4000"))
	if _, err := proxyproto.HeaderProxyFromAddrs(1, src, client.RemoteAddr()).WriteTo(client); err != nil {
		t.Fatal(err)
	}
	client.Write([]byte(strings.Repeat("x", 100)))
	pc := &proxyConn{Conn: proxyproto.NewConn(server)}
	conn := &clientConn{Conn: &peekedConn{Conn: pc}}
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	b := make([]byte, 200)
	if n, err := io.ReadFull(conn, b[:60]); n != 60 || err != nil {
		t.Fatalf("read %d: %v", n, err)
	}
	if unbuffered(conn) {
		t.Fatal("unbuffered with 40 bytes in the PROXY buffer")
	}
	if n, err := conn.Read(b); n != 40 || err != nil {
		t.Fatalf("read %d: %v, want the buffer's 40", n, err)
	}
	if !unbuffered(conn) {
		t.Fatal("not unbuffered after a short read")
	}
	if unbuffered(&clientConn{Conn: &peekedConn{Conn: pc, has: true}}) {
		t.Fatal("unbuffered with a peeked byte")
	}
	client.Write([]byte("next"))
	cr := newClientReads(conn, nil)
	if n, err := cr.read(b); string(b[:n]) != "next" || err != nil || cr.direct != rawIO {
		t.Fatalf("read %q: %v, direct %v", b[:n], err, cr.direct)
	}
	client.Close()
	if n, err := cr.read(b); n != 0 || err != io.EOF {
		t.Fatalf("read %d: %v at the end, want io.EOF", n, err)
	}
}
