package loadtest

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"math/rand/v2"
	"net"
	"sync"
	"time"

	"github.com/wsbridge/wsbridge/internal/wsframe"
)

// What a session asks of the target, in the first byte the client sends
// through the bridge: a bridge maps every session to the same target.
const (
	opEcho   = 'E' // echo every byte
	opSink   = 'S' // read N bytes, check them against the pattern, answer one status byte
	opSource = 'T' // send N bytes of the pattern
)

// Status bytes of a sink.
const (
	statusOK  = 'K'
	statusBad = 'X'
)

// headerLen is the op byte, N and the pattern's seed, both big-endian.
const headerLen = 1 + 8 + 8

func header(op byte, n int64, seed uint64) []byte {
	h := make([]byte, headerLen)
	h[0] = op
	binary.BigEndian.PutUint64(h[1:], uint64(n))
	binary.BigEndian.PutUint64(h[9:], seed)
	return h
}

// patternLen is the length of the pattern's period: a prime, so that a
// lost or repeated chunk of any power-of-two size shifts the stream out of
// step with it and is seen as corruption.
const patternLen = 1<<20 + 7

// pattern is a period of pseudo-random bytes for a seed, repeated twice so
// that any window of up to patternLen bytes is one slice.
type pattern struct {
	b []byte
	// masked is b masked as a client masks a payload, with maskKey's byte
	// i%4 on byte i, made on first use: a window of it is a window of b
	// masked with that key turned, so a client sends the pattern without
	// copying or masking it for every message.
	masked  []byte
	maskKey uint32
	once    sync.Once
}

var (
	patternMu    sync.Mutex
	patternCache = map[uint64]*pattern{}
)

func patternFor(seed uint64) *pattern {
	patternMu.Lock()
	defer patternMu.Unlock()
	if p := patternCache[seed]; p != nil {
		return p
	}
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, 2*patternLen)
	for i := 0; i < patternLen; i += 8 {
		binary.LittleEndian.PutUint64(b[i:], r.Uint64())
	}
	copy(b[patternLen:], b[:patternLen])
	p := &pattern{b: b}
	patternCache[seed] = p
	return p
}

// at returns the n pattern bytes from stream offset off (n <= patternLen).
func (p *pattern) at(off int64, n int) []byte {
	i := int(off % patternLen)
	return p.b[i : i+n]
}

// atMasked returns the bytes of at(off, n) masked, and the masking key
// that unmasks them.
func (p *pattern) atMasked(off int64, n int) ([]byte, uint32) {
	p.once.Do(func() {
		p.maskKey = rand.Uint32()
		p.masked = bytes.Clone(p.b)
		wsframe.Mask(p.masked, p.maskKey)
	})
	i := int(off % patternLen)
	return p.masked[i : i+n], bits.RotateLeft32(p.maskKey, -8*(i%4))
}

// check compares got with the pattern at off and returns the offset of the
// first wrong byte, or -1.
func (p *pattern) check(off int64, got []byte) int64 {
	for len(got) > 0 {
		n := min(len(got), patternLen)
		want := p.at(off, n)
		if !bytes.Equal(got[:n], want) {
			for i := range n {
				if got[i] != want[i] {
					return off + int64(i)
				}
			}
		}
		got, off = got[n:], off+int64(n)
	}
	return -1
}

// Target is the TCP server at the far end of every bridge under test. It
// runs until Close.
type Target struct {
	ln    net.Listener
	wg    sync.WaitGroup
	mu    sync.Mutex
	conns map[net.Conn]struct{}
	// Errors counts sessions whose header or bytes were wrong.
	errs []error
}

// NewTarget serves on ln.
func NewTarget(ln net.Listener) *Target {
	t := &Target{ln: ln, conns: map[net.Conn]struct{}{}}
	t.wg.Go(t.accept)
	return t
}

// Addr is where the target listens.
func (t *Target) Addr() string { return t.ln.Addr().String() }

func (t *Target) accept() {
	for {
		c, err := t.ln.Accept()
		if err != nil {
			return
		}
		t.mu.Lock()
		t.conns[c] = struct{}{}
		t.mu.Unlock()
		t.wg.Go(func() {
			defer func() {
				t.mu.Lock()
				delete(t.conns, c)
				t.mu.Unlock()
				c.Close()
			}()
			if err := serve(c); err != nil {
				t.mu.Lock()
				t.errs = append(t.errs, err)
				t.mu.Unlock()
			}
		})
	}
}

// Errors returns what went wrong in sessions so far.
func (t *Target) Errors() []error {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]error(nil), t.errs...)
}

// Close stops the target and every session it serves.
func (t *Target) Close() {
	t.ln.Close()
	t.mu.Lock()
	for c := range t.conns {
		c.Close()
	}
	t.mu.Unlock()
	t.wg.Wait()
}

var errHeader = errors.New("loadtest: bad session header")

func serve(c net.Conn) error {
	h := make([]byte, headerLen)
	if _, err := io.ReadFull(c, h); err != nil {
		if errors.Is(err, io.EOF) {
			return nil // a session that never started, such as a probe
		}
		return fmt.Errorf("read header: %w", err)
	}
	n := int64(binary.BigEndian.Uint64(h[1:]))
	seed := binary.BigEndian.Uint64(h[9:])
	switch h[0] {
	case opEcho:
		// A plain loop: io.Copy between TCP connections would splice
		// through a pipe, two more descriptors a session, and the memory
		// run holds thousands.
		buf := make([]byte, 16<<10)
		for {
			n, err := c.Read(buf)
			if n > 0 {
				if _, werr := c.Write(buf[:n]); werr != nil {
					return nil
				}
			}
			if err != nil {
				return nil
			}
		}
	case opSink:
		return sink(c, n, patternFor(seed))
	case opSource:
		p := patternFor(seed)
		for off := int64(0); off < n; {
			k := int(min(n-off, 64<<10))
			if _, err := c.Write(p.at(off, k)); err != nil {
				return nil // the client went away; it reports why
			}
			off += int64(k)
		}
		// Wait for the client to close, so that the bridge sees the client
		// end the session, not the target.
		io.Copy(io.Discard, c)
		return nil
	}
	return errHeader
}

func sink(c net.Conn, n int64, p *pattern) error {
	buf := make([]byte, 64<<10)
	for off := int64(0); off < n; {
		k, err := c.Read(buf[:min(int64(len(buf)), n-off)])
		if bad := p.check(off, buf[:k]); bad >= 0 {
			c.Write([]byte{statusBad})
			// The client is still sending: closing now, with its bytes
			// unread, would reset the connection, and a reset may overtake
			// the status byte on its way through the bridge. Half-close
			// and read on instead, until the client goes or a while passes.
			if tc, ok := c.(*net.TCPConn); ok {
				tc.CloseWrite()
			}
			c.SetReadDeadline(time.Now().Add(Stall))
			io.Copy(io.Discard, c)
			return fmt.Errorf("sink: wrong byte at offset %d", bad)
		}
		off += int64(k)
		if err != nil && off < n {
			return nil // the client went away; it reports why
		}
	}
	c.Write([]byte{statusOK})
	io.Copy(io.Discard, c)
	return nil
}
