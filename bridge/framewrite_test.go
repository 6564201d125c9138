package bridge

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"io"
	"math/rand/v2"
	"net"
	"syscall"
	"testing"
	"time"
)

// TestFrameWriterPings writes frames the way the library does (a header
// and payload in pieces of any size, plain socket and not) and, on a plain
// socket, the session's way (messages, split at a message size), with
// pings asked for at every point in between, the pinger's way (tryPing,
// then ping when it cannot) or ping's, then a close frame, more pings and
// a message. On the wire every frame must be whole, the data in order, a
// ping after every request (asked while another waits, they are one), and
// nothing after the close.
func TestFrameWriterPings(t *testing.T) {
	for _, plain := range []bool{true, false} {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		got := make(chan []byte, 1)
		go func() {
			c, err := ln.Accept()
			if err != nil {
				got <- nil
				return
			}
			b, _ := io.ReadAll(c)
			got <- b
		}()
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		var rc syscall.RawConn
		if plain {
			rc, _ = c.(*net.TCPConn).SyscallConn()
		}
		w := newFrameWriter(c, time.Second, rc)
		if !plain {
			w.vec = nil // as on TLS: no messages
		}
		quick := 0 // pings tryPing took
		rng := rand.New(rand.NewPCG(1, 2))
		asked := 0
		maybePing := func() { // a third of the time, the pinger's way or ping's
			if rng.IntN(3) != 0 {
				return
			}
			if rng.IntN(2) == 0 && w.tryPing() {
				quick++
			} else {
				w.ping()
			}
			asked++
		}
		var want [][]byte // data payloads in order
		for i := range 300 {
			size := []int{0, 5, 125, 126, 200, 300, 65535, 65536, 70000}[rng.IntN(9)]
			payload := make([]byte, size)
			for j := range payload {
				payload[j] = byte(i + j*7)
			}
			if plain && rng.IntN(2) == 0 { // the session's messages
				msg := []int{100, 125, 126, 1000, 65536}[rng.IntN(5)]
				for rest := payload; len(rest) > 0; rest = rest[min(len(rest), msg):] {
					want = append(want, rest[:min(len(rest), msg)])
				}
				maybePing()
				if err := w.messages(0x2, payload, msg); err != nil {
					t.Fatal(err)
				}
				continue
			}
			want = append(want, payload)
			frame := appendHeader(nil, 0x2, size)
			frame = append(frame, payload...)
			for len(frame) > 0 {
				maybePing()
				k := min(len(frame), 1+rng.IntN(400))
				if rng.IntN(4) == 0 {
					k = len(frame)
				}
				if _, err := w.Write(frame[:k]); err != nil {
					t.Fatal(err)
				}
				frame = frame[k:]
			}
		}
		w.Write(appendHeader(nil, 0x8, 2))
		w.ping() // the header alone went out: this one waits...
		w.Write([]byte{0x03, 0xe8})
		w.ping() // ...and neither may follow the close
		if plain {
			if err := w.messages(0x2, []byte("late"), 100); err != net.ErrClosed {
				t.Fatalf("a message after the close: %v, want net.ErrClosed", err)
			}
		}
		c.Close()

		r := bufio.NewReader(bytes.NewReader(<-got))
		var data [][]byte
		pings, closed := 0, false
		for {
			op, p, err := readServerFrame(r)
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("plain=%v: frame %d: %v", plain, len(data)+pings, err)
			}
			if closed {
				t.Fatalf("plain=%v: opcode %#x after the close", plain, op)
			}
			switch op {
			case 0x2:
				data = append(data, p)
			case 0x9:
				if string(p) != pingPayload {
					t.Fatalf("plain=%v: ping payload %q", plain, p)
				}
				pings++
			case 0x8:
				closed = true
			}
		}
		if len(data) != len(want) {
			t.Fatalf("plain=%v: %d data frames, want %d", plain, len(data), len(want))
		}
		for i := range want {
			if !bytes.Equal(data[i], want[i]) {
				t.Fatalf("plain=%v: data frame %d changed", plain, i)
			}
		}
		if !closed || pings == 0 || pings > asked {
			t.Fatalf("plain=%v: closed %v, %d pings for %d asked", plain, closed, pings, asked)
		}
		if plain && canPark && quick == 0 || !plain && quick > 0 {
			t.Fatalf("plain=%v: tryPing took %d pings", plain, quick)
		}
		t.Logf("plain=%v: %d pings for %d asked, %d by tryPing", plain, pings, asked, quick)
	}
}

func appendHeader(b []byte, op byte, n int) []byte {
	b = append(b, 0x80|op)
	switch {
	case n < 126:
		return append(b, byte(n))
	case n <= 0xffff:
		return binary.BigEndian.AppendUint16(append(b, 126), uint16(n))
	}
	return binary.BigEndian.AppendUint64(append(b, 127), uint64(n))
}

func readServerFrame(r *bufio.Reader) (byte, []byte, error) {
	var h [2]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return 0, nil, err
	}
	if h[0]&0x80 == 0 || h[1]&0x80 != 0 {
		return 0, nil, io.ErrUnexpectedEOF
	}
	n := uint64(h[1] & 0x7f)
	switch n {
	case 126:
		var l [2]byte
		if _, err := io.ReadFull(r, l[:]); err != nil {
			return 0, nil, err
		}
		n = uint64(binary.BigEndian.Uint16(l[:]))
	case 127:
		var l [8]byte
		if _, err := io.ReadFull(r, l[:]); err != nil {
			return 0, nil, err
		}
		n = binary.BigEndian.Uint64(l[:])
	}
	p := make([]byte, n)
	if _, err := io.ReadFull(r, p); err != nil {
		return 0, nil, err
	}
	return h[0] & 0x0f, p, nil
}
