package bridge_test

import (
	"bytes"
	"encoding/base64"
	"io"
	"math/rand/v2"
	"net"
	"testing"
	"time"

	"github.com/wsbridge/wsbridge/bridge"
	"github.com/wsbridge/wsbridge/internal/testenv"
	"github.com/wsbridge/wsbridge/internal/wsframe"
)

// TestTakeOut: binary messages taken out of the client's stream reach the
// target exactly, in order with the text messages the library relays,
// whatever the frames' sizes, their fragmentation, the control frames
// between fragments and the way the stream is cut into writes: one byte
// at a time, pieces that end inside headers and payloads, or a whole
// megabyte at once. Pings are answered, and the close is echoed. In
// base64 every message is taken out and decoded, its characters cut into
// frames anywhere.
func TestTakeOut(t *testing.T) {
	for _, proto := range []string{"binary", "base64"} {
		for _, readSize := range []int{1000, 64 << 10} {
			t.Run(proto+"/"+map[int]string{1000: "read size 1000", 64 << 10: "default read size"}[readSize], func(t *testing.T) {
				takeOut(t, proto, readSize)
			})
		}
	}
}

func takeOut(t *testing.T, proto string, readSize int) {
	got := make(chan []byte, 1)
	addr := target(t, func(c net.Conn) {
		b, _ := io.ReadAll(c)
		got <- b
	})
	b := startBridge(t, static(addr), nil, &bridge.Options{ReadSize: readSize, MessageLimit: 1 << 20})
	var header []string
	if proto == "base64" {
		header = append(header, "Sec-WebSocket-Protocol: base64")
	}
	fc := rawWS(t, b.url, nil, header...)

	rng := rand.New(rand.NewPCG(uint64(readSize), uint64(len(proto))))
	var stream, want []byte
	pings := 0
	data := func(n int) []byte { return testenv.RandomBytes(rng, n) }
	for range 300 {
		size := rng.IntN(3000)
		if rng.IntN(8) == 0 {
			size = rng.IntN(200 << 10)
		}
		msg := data(size)
		want = append(want, msg...)
		if proto == "base64" {
			msg = []byte(base64.StdEncoding.EncodeToString(msg))
		}
		op := byte(opBinary)
		if rng.IntN(10) == 0 {
			op = opText // relayed by the library, in its place
		}
		for first := true; ; first = false {
			k := testenv.FragmentSize(rng, len(msg))
			fop := op
			if !first {
				fop = opCont
			}
			last := k == len(msg)
			stream = append(stream, wsframe.AppendClient(nil, last, fop, msg[:k], rng.Uint32())...)
			msg = msg[k:]
			if rng.IntN(6) == 0 {
				stream = append(stream, wsframe.AppendClient(nil, true, opPing, data(rng.IntN(20)), rng.Uint32())...)
				pings++
			}
			if rng.IntN(10) == 0 {
				stream = append(stream, wsframe.AppendClient(nil, true, opPong, data(8), rng.Uint32())...)
			}
			if last {
				break
			}
		}
	}
	stream = append(stream, wsframe.AppendClient(nil, true, opClose, closePayload(1000, ""), rng.Uint32())...)

	go func() {
		for rest := stream; len(rest) > 0; {
			var k int
			switch rng.IntN(4) {
			case 0:
				k = 1
			case 1:
				k = rng.IntN(20) + 1
			case 2:
				k = rng.IntN(100<<10) + 1
			default:
				k = rng.IntN(1<<20) + 1
			}
			k = min(k, len(rest))
			if _, err := fc.c.Write(rest[:k]); err != nil {
				return
			}
			rest = rest[k:]
			if rng.IntN(20) == 0 {
				time.Sleep(time.Millisecond)
			}
		}
	}()

	pongs := 0
	for {
		_, op, _ := fc.readFrame(t)
		if op == opPong {
			pongs++
			continue
		}
		if op == opClose {
			break
		}
	}
	if pongs != pings {
		t.Errorf("%d pongs for %d pings", pongs, pings)
	}
	select {
	case b := <-got:
		if !bytes.Equal(b, want) {
			i := 0
			for i < min(len(b), len(want)) && b[i] == want[i] {
				i++
			}
			t.Fatalf("the target got %d bytes, want %d; the first difference at %d", len(b), len(want), i)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the target's side did not end")
	}
}
