package bridge_test

import (
	"context"
	"encoding/base64"
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
)

const benchMessage = 64 << 10

// BenchmarkShuttle measures one session relaying 64 KiB client messages
// (client-to-target) or a target streaming as fast as it can
// (target-to-client), over loopback TCP, in both framings. Bytes are payload
// bytes; allocations count the whole process, client and target included.
func BenchmarkShuttle(b *testing.B) {
	for _, proto := range []string{"binary", "base64"} {
		b.Run("client-to-target/"+proto, func(b *testing.B) { benchClientToTarget(b, proto) })
		b.Run("target-to-client/"+proto, func(b *testing.B) { benchTargetToClient(b, proto) })
	}
}

func benchClientToTarget(b *testing.B, proto string) {
	var got atomic.Int64
	addr := target(b, func(c net.Conn) { countReads(c, &got) })
	br := startBridge(b, static(addr), nil, nil)
	c := dial(b, br.url, proto)
	ctx := context.Background()
	msg, typ := make([]byte, benchMessage), websocket.MessageBinary
	if proto == "base64" {
		msg, typ = []byte(base64.StdEncoding.EncodeToString(msg)), websocket.MessageText
	}
	b.SetBytes(benchMessage)
	b.ReportAllocs()
	// b.N, not b.Loop: the time until the target has every byte counts,
	// not only the client's writes, which the sockets' buffers absorb.
	b.ResetTimer()
	for range b.N {
		if err := c.Write(ctx, typ, msg); err != nil {
			b.Fatal(err)
		}
	}
	sent := int64(b.N) * benchMessage
	for deadline := time.Now().Add(10 * time.Second); got.Load() < sent; {
		if time.Now().After(deadline) {
			b.Fatalf("target got %d of %d bytes", got.Load(), sent)
		}
		time.Sleep(50 * time.Microsecond)
	}
	b.StopTimer()
	c.Close(websocket.StatusNormalClosure, "")
}

func benchTargetToClient(b *testing.B, proto string) {
	addr := target(b, func(c net.Conn) {
		buf := make([]byte, benchMessage)
		for {
			if _, err := c.Write(buf); err != nil {
				return
			}
		}
	})
	br := startBridge(b, static(addr), nil, nil)
	c := dial(b, br.url, proto)
	ctx := context.Background()
	buf := make([]byte, 128<<10)
	b.SetBytes(benchMessage)
	b.ReportAllocs()
	var pending int64
	for b.Loop() {
		for pending < benchMessage {
			_, r, err := c.Reader(ctx)
			if err != nil {
				b.Fatal(err)
			}
			n, err := io.ReadFull(r, buf)
			if err != io.ErrUnexpectedEOF && err != io.EOF {
				b.Fatalf("message of %d bytes or more: %v", n, err)
			}
			if proto == "base64" {
				n = len(buf[:n]) / 4 * 3
			}
			pending += int64(n)
		}
		pending -= benchMessage
	}
	c.CloseNow()
}
