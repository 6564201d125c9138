package bridge

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/wsbridge/wsbridge/internal/testenv"
	"github.com/wsbridge/wsbridge/internal/wsframe"
)

// TestClientReadsSift drives clientReads' take-out on a loopback socket
// with small held buffers (so that reads fill them, and partial frames
// move to the front behind gathered payloads): the library's bytes come
// out of Read exactly as sent, frame for frame, and every byte taken out
// goes to data unmasked, at its place in the stream: after the library's
// bytes before it have been read and before any after it.
func TestClientReadsSift(t *testing.T) {
	for run := range 8 {
		chunk := []int{1000, 4096}[run%2]
		rng := rand.New(rand.NewPCG(uint64(run), 3))
		largest := int64(0)
		var stream, lib, want []byte
		var at []int // for each byte of want, the library bytes before it
		pongs := 0
		add := func(f []byte, payload []byte, taken bool) {
			stream = append(stream, f...)
			if !taken {
				lib = append(lib, f...)
				return
			}
			want = append(want, payload...)
			for range payload {
				at = append(at, len(lib))
			}
		}
		data := func(n int) []byte {
			p := make([]byte, n)
			for i := range p {
				p[i] = byte(rng.Uint32())
			}
			return p
		}
		for range 400 {
			size := rng.IntN(300)
			if rng.IntN(5) == 0 {
				size = rng.IntN(20000)
			}
			msg := data(size)
			text := rng.IntN(8) == 0 // the library's
			if !text {
				largest = max(largest, int64(size))
			}
			op := byte(0x2)
			if text {
				op = 0x1
			}
			for first := true; ; first = false {
				k := len(msg)
				if rng.IntN(3) == 0 {
					k = rng.IntN(len(msg) + 1)
				}
				fop := op
				if !first {
					fop = 0
				}
				last := k == len(msg)
				add(wsframe.AppendClient(nil, last, fop, msg[:k], rng.Uint32()), msg[:k], !text)
				msg = msg[k:]
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
		pool := &sync.Pool{New: func() any { p := make([]byte, 4096); return &p }}
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
		}, largest, chunk, pool) // a limit that the largest message meets
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
	a, b := testenv.TCPPair(t)
	pool := &sync.Pool{New: func() any { p := make([]byte, 4096); return &p }}
	c := newClientReads(b, nil)
	var got []byte
	c.take(func(v *net.Buffers) error {
		for _, p := range *v {
			got = append(got, p...)
		}
		return nil
	}, 100, 1000, pool)
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
	if string(got) != "beforeafter" || pongs != 1 {
		t.Fatalf("data %q and %d pongs; want \"beforeafter\" and 1", got, pongs)
	}
}

// TestClientReadsSplitHeader: after a frame taken out, a library's frame
// whose header comes in two reads goes to the library whole.
func TestClientReadsSplitHeader(t *testing.T) {
	a, b := testenv.TCPPair(t)
	pool := &sync.Pool{New: func() any { p := make([]byte, 4096); return &p }}
	c := newClientReads(b, nil)
	got := make(chan string, 1)
	c.take(func(v *net.Buffers) error {
		got <- string(bytes.Join(*v, nil))
		return nil
	}, 100, 1000, pool)
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
			a, b := testenv.TCPPair(t)
			pool := &sync.Pool{New: func() any { p := make([]byte, 4096); return &p }}
			c := newClientReads(b, nil)
			c.take(func(v *net.Buffers) error { return nil }, 100, 1000, pool)
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
	for n := range 100 {
		p := make([]byte, n)
		for i := range p {
			p[i] = byte(i*13 + 5)
		}
		want := bytes.Clone(p)
		wantKey := wsframe.Mask(want, 0xdeadbeef)
		for cut := range n + 1 {
			got := bytes.Clone(p)
			key := unmask(got[cut:], unmask(got[:cut], 0xdeadbeef))
			if !bytes.Equal(got, want) || key != wantKey {
				t.Fatalf("length %d cut at %d: %x key %#x, want %x key %#x", n, cut, got, key, want, wantKey)
			}
		}
	}
}
