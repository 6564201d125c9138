package bridge

import (
	"encoding/binary"
	"errors"
	"io"
	"math/bits"
	"net"
	"os"
	"sync"
	"syscall"
	"time"
)

// parkAfter is how long a side of a session may be silent before its
// reader gives up its goroutine and waits in the parker (Linux). An
// interactive session pauses for less between bursts, and a wake-up
// costs a goroutine's start, once per burst.
const parkAfter = 100 * time.Millisecond

// errParked ends a target reader's goroutine: the parker runs the reader
// again once the target has something.
var errParked = errors.New("parked")

// Errors of binary messages taken out (see clientReads), which the library
// would have answered itself.
var (
	errTooBig   = errors.New("message over the limit")
	errFragment = errors.New("new data message inside a fragmented one")
)

// maxSegs is the most payloads of frames taken out that go to the target
// in one write.
const maxSegs = 8

// streamRead is a read from the client that makes the next one go to a
// held buffer too: the client is sending in bulk.
const streamRead = 64 << 10

// clientReads is the hijacked connection as the library reads it. It
// follows the client's frames (headers and lengths) through the bytes it
// reads, so it knows when the library waits for a new message. While it
// does, a read deadline parks the client reader after parkAfter, like the
// target's (rawReader), and the session is left with no goroutine at all
// while both sides are quiet. Inside a message a deadline never ends a
// read: the read is retried without one, as a client may take its time
// over a message.
//
// In a binary session it also takes the binary messages out of the stream
// (take): their frames are read into a buffer of the bulk pool, up to
// 512 KiB a read, unmasked where they lie and written to the target from
// there, the payloads of one read in one write (writev) as far as they go,
// and the library sees only the other frames (control frames, text
// messages). In a base64 session it takes every data message out, text and
// binary: reads take the first half of the buffer, and the characters are
// decoded into the second half, across frames (b64Decoder), and written
// from there. The library reads a frame's header and its payload in two
// reads, and its payload is one write: this costs one read and one write
// for as many frames as the socket holds. It is sequential: a frame the
// library reads goes to it before anything after it goes to the target.
// The limit, masking, reserved bits and fragmentation of the messages
// taken out are checked here as the library would; a frame whose header
// the library would refuse is handed to it, to refuse.
type clientReads struct {
	net.Conn // the hijacked connection
	parkState
	pong func() // takes a pong to the session's ping; nil: the library does

	frames frameCursor // through every byte read
	open   bool        // a data message the library reads has frames still to come

	// The take-out; data nil: the library reads every frame.
	data  func(v *net.Buffers) error // writes payloads to the target; may consume v
	limit int64                      // the most bytes in one message
	chunk int                        // the least of a frame worth a write
	pool  *sync.Pool                 // of the held buffers
	most  int                        // the most a read may hold: their size, or half in base64
	b64   bool                       // messages are base64, decoded to (*bp)[most:]
	dec   b64Decoder                 // the current message's, in base64
	o     int                        // (*bp)[most:][:o] is decoded and not yet written
	mine  bool                       // the current frame is taken out
	ours  bool                       // a message taken out has frames still to come
	size  int64                      // the bytes of that message so far
	key   uint32                     // the current frame's masking key, turned to its next byte
	segs  [maxSegs][]byte            // unmasked payloads not yet written
	ns    int
	vec   net.Buffers // segs[:ns], as data gets them

	bp     *[]byte // the held buffer, or nil
	r, w   int     // (*bp)[r:w] is read but not yet sifted
	give   []byte  // header bytes handed back to the library, in hdr
	hdr    [14]byte
	err    error // a read's error, for once the bytes before it are sifted
	stream bool  // the last read was bulk: read the next into the held buffer

	// pongParked's: what it read that was not a lone pong, which get
	// returns first (peek[pi:pn]); its read, made once.
	peek     [pongFrame + 1]byte
	pi, pn   int8
	peekRead func(fd uintptr)

	// get's raw reads (rawIO), once nothing above the socket holds bytes
	// (direct): the function RawConn.Read calls, made once, and its
	// buffer and results.
	direct bool
	readFn func(fd uintptr) bool
	rb     []byte
	rn     int
	rerr   error
}

// newClientReads wraps the hijacked conn; early is what the client sent
// after its request head, which the library reads before conn.
func newClientReads(conn net.Conn, early []byte) *clientReads {
	c := &clientReads{Conn: conn}
	c.parkState.conn = conn
	c.taken = c.pongParked
	if sc, ok := vectorConn(conn).(syscall.Conn); ok {
		c.rc, _ = sc.SyscallConn()
	}
	if c.rc != nil {
		if rawIO {
			c.readFn = func(fd uintptr) bool {
				c.rn, c.rerr = readFD(fd, c.rb)
				return c.rerr != syscall.EAGAIN
			}
		}
		// Made now, so that the first pong allocates nothing either.
		c.peekRead = func(fd uintptr) {
			if n, err := readFD(fd, c.peek[:]); err == nil {
				c.pn = int8(n)
			}
		}
	}
	c.track(early) // the library reads these as they are: nothing taken out
	return c
}

// take starts the take-out of data messages (see clientReads), before
// the first read: data gets their bytes (decoded, with b64), limit bounds
// a message on the wire, a frame is written once chunk bytes of it (or
// all) are in, and pool lends the buffers, of size bytes.
func (c *clientReads) take(data func(v *net.Buffers) error, limit int64, chunk int, pool *sync.Pool, size int, b64 bool) {
	c.data, c.limit, c.chunk, c.pool, c.most, c.b64 = data, limit, chunk, pool, size, b64
	if b64 {
		// The characters of chunk bytes, as the library's path reads them
		// (copyMessage); the second half takes what they decode to.
		c.most /= 2
		c.chunk = min((chunk+2)/3*4, c.most)
	}
}

func (c *clientReads) Read(p []byte) (int, error) {
	for {
		if len(c.give) > 0 {
			n := copy(p, c.give)
			c.give = c.give[n:]
			return n, nil
		}
		if c.r < c.w {
			n, err := c.sift(p)
			if err != nil {
				c.release()
				c.err = err
			}
			if n > 0 || err != nil {
				return n, err
			}
			if len(c.give) > 0 {
				continue
			}
		}
		// Everything held is sifted, or the frame taken out needs more.
		if c.err != nil {
			c.release()
			return 0, c.err
		}
		// After a bulk read the next goes to the held buffer too, which a
		// quiet client keeps until its reader parks (parkAfter); where it
		// cannot park, the buffer is not kept waiting.
		atRest := c.frames.between() && !c.open && !c.ours
		if c.r < c.w || c.mine && !c.frames.between() || atRest && c.stream && c.wake != nil {
			if err := c.readHeld(atRest); err != nil {
				return 0, err
			}
			continue
		}
		c.release()
		if c.data != nil && len(p) > c.most {
			p = p[:c.most] // what track holds must fit
		}
		n, err := c.get(p, atRest)
		n = c.track(p[:n])
		if c.r < c.w && err != nil {
			c.err, err = err, nil // after what track held
		}
		if n > 0 || err != nil {
			return n, err
		}
	}
}

// get reads into b. At rest (between messages) the read is under the park
// deadline, and ends with errParked when it passes; a deadline passed
// otherwise is retried without one, unless it is stop's.
func (c *clientReads) get(b []byte, atRest bool) (int, error) {
	if c.pi < c.pn {
		n := copy(b, c.peek[c.pi:c.pn])
		if c.pi += int8(n); c.pi == c.pn {
			c.pi, c.pn = 0, 0
		}
		return n, nil
	}
	for {
		if atRest {
			c.arm()
		}
		n, err := c.read(b)
		if n > 0 || err == nil || !errors.Is(err, os.ErrDeadlineExceeded) {
			return n, err
		}
		if atRest && c.mayPark() {
			return 0, errParked
		}
		if !c.disarm() {
			return n, err
		}
	}
}

// read is the socket's Read: a raw read (see rawio_linux.go) where it can
// be, which is once the layers above the socket hold none of its bytes.
func (c *clientReads) read(b []byte) (int, error) {
	if !c.direct {
		if c.readFn == nil || !unbuffered(c.Conn) {
			return c.Conn.Read(b)
		}
		c.direct = true
	}
	c.rb = b
	err := c.rc.Read(c.readFn)
	n, rerr := c.rn, c.rerr
	c.rb, c.rerr = nil, nil
	switch {
	case err != nil: // a deadline, or the socket was closed
		return 0, err
	case rerr != nil:
		return 0, os.NewSyscallError("read", rerr)
	case n == 0 && len(b) > 0:
		return 0, io.EOF
	}
	return n, nil
}

// unbuffered reports whether the layers of c above its socket hold none
// of its bytes, so that reading the socket reads c.
func unbuffered(c net.Conn) bool {
	for c != nil {
		switch c.(type) {
		case *net.TCPConn, *net.UnixConn:
			return true
		}
		var holds bool
		if c, holds = under(c); holds {
			return false
		}
	}
	return false
}

// readHeld reads into the held buffer, after what it holds. An error with
// nothing read is returned (the buffer is let go); with bytes, it waits in
// err until they are sifted.
func (c *clientReads) readHeld(atRest bool) error {
	if c.bp == nil {
		c.bp = c.pool.Get().(*[]byte)
	}
	if c.r == c.w {
		c.r, c.w = 0, 0
	}
	n, err := c.get((*c.bp)[c.w:c.most], atRest)
	c.w += n
	c.stream = n >= streamRead
	if err != nil {
		if n == 0 {
			c.release()
			return err
		}
		c.err = err
	}
	return nil
}

// release lets the held buffer go; what it held is dropped.
func (c *clientReads) release() {
	if c.bp != nil {
		c.pool.Put(c.bp)
		c.bp = nil
	}
	c.r, c.w, c.o = 0, 0, 0
	c.stream = false
}

// takes reports whether the frame whose first byte is h is taken out: a
// binary message's first frame (in base64, a text message's too) or,
// while one is open, any data frame (a new message inside one is refused
// in sift).
func (c *clientReads) takes(h byte) bool {
	if c.data == nil {
		return false
	}
	switch h & 0x0f {
	case 0x0:
		return c.ours
	case 0x1:
		return c.ours || c.b64 && !c.open
	case 0x2:
		return c.ours || !c.open
	}
	return false
}

// sift goes through the held bytes: the payloads of frames taken out go to
// data, together; the library's bytes, up to the end of their frame, are
// copied to p. It returns how many it copied, 0 when it needs more bytes.
func (c *clientReads) sift(p []byte) (int, error) {
	n, err := c.sortFrames(p)
	if werr := c.flush(); err == nil {
		err = werr
	}
	return n, err
}

// flush writes the payloads gathered.
func (c *clientReads) flush() error {
	c.o = 0
	if c.ns == 0 {
		return nil
	}
	c.vec = c.segs[:c.ns]
	err := c.data(&c.vec)
	clear(c.segs[:c.ns])
	c.ns, c.vec = 0, nil
	return err
}

// sortFrames is sift's loop; the payloads it gathers stay where they are
// in the held buffer until flushed.
func (c *clientReads) sortFrames(p []byte) (int, error) {
	b := (*c.bp)[:c.w]
	f := &c.frames
	for c.r < c.w {
		if f.left > 0 { // a payload
			avail := int64(c.w - c.r)
			if !c.mine {
				k := copy(p, b[c.r:c.r+int(min(f.left, avail))])
				c.r += k
				f.left -= int64(k)
				return k, nil
			}
			k := min(f.left, avail, int64(c.chunk))
			if k < f.left && k < int64(c.chunk) {
				// Wait for the rest of the frame, or a whole chunk of it,
				// as the library would; make room for it.
				if c.most-c.w < int(min(f.left, int64(c.chunk))-k) {
					if err := c.flush(); err != nil { // before the move
						return 0, err
					}
					c.w = copy(*c.bp, b[c.r:])
					c.r = 0
				}
				return 0, nil
			}
			seg := b[c.r : c.r+int(k)]
			c.key = unmask(seg, c.key)
			c.r += int(k)
			f.left -= k
			var err error
			if c.b64 {
				seg, err = c.decode(seg, f.left == 0 && !c.ours)
			}
			if len(seg) > 0 {
				c.segs[c.ns] = seg
				if c.ns++; c.ns == maxSegs {
					if ferr := c.flush(); ferr != nil {
						return 0, ferr
					}
				}
			}
			if err != nil {
				return 0, err
			}
			continue
		}
		if f.hn == 0 { // a frame starts
			if c.pong != nil && c.w-c.r >= pongFrame && isPong(b[c.r:c.r+pongFrame]) {
				c.r += pongFrame
				c.pong()
				continue
			}
			c.mine = c.takes(b[c.r])
			if c.mine && c.ours && b[c.r]&0x0f != 0 {
				return 0, errFragment
			}
		}
		if !c.mine {
			k := 0
			for c.r < c.w && k < len(p) {
				x := b[c.r]
				p[k] = x
				k++
				c.r++
				if f.header(x) {
					c.libraryHeader()
					break
				}
			}
			return k, nil
		}
		for c.r < c.w {
			x := b[c.r]
			c.r++
			if f.header(x) {
				if err := c.ownHeader(); err != nil {
					return 0, err
				}
				if !c.mine {
					return 0, nil // Read hands the header over first
				}
				break
			}
		}
	}
	return 0, nil
}

// libraryHeader notes a header the library reads: a data message opens
// or ends.
func (c *clientReads) libraryHeader() {
	if h := c.frames.hdr[0]; h&0x0f < 0x8 {
		c.open = h&0x80 == 0
	}
}

// ownHeader takes the header of a frame taken out, complete in
// frames.hdr. One the library would refuse (reserved bits, no mask, a
// length over 63 bits) goes back to it (give), and so does its payload.
func (c *clientReads) ownHeader() error {
	h := &c.frames.hdr
	n := 2
	switch h[1] & 0x7f {
	case 126:
		n = 4
	case 127:
		n = 10
	}
	if h[0]&0x70 != 0 || h[1]&0x80 == 0 || n == 10 && h[2]&0x80 != 0 {
		if h[1]&0x80 != 0 {
			n += 4
		}
		c.mine = false
		c.hdr = *h
		c.give = c.hdr[:n]
		c.libraryHeader()
		return nil
	}
	if h[0]&0x0f != 0 {
		c.size = 0
		c.dec.reset()
	}
	c.size += c.frames.left
	if c.size > c.limit {
		return errTooBig
	}
	c.ours = h[0]&0x80 == 0
	c.key = binary.LittleEndian.Uint32(h[n : n+4])
	if c.b64 && c.frames.left == 0 && !c.ours {
		return c.dec.finish() // an empty last frame
	}
	return nil
}

// decode decodes seg, base64 characters of the current message, into the
// second half of the held buffer and returns the bytes, which may be none
// (up to three characters wait for the next frame); last is the
// message's end. A message that ends inside a quad returns its whole
// quads' bytes with errBase64, which the library's path writes too.
func (c *clientReads) decode(seg []byte, last bool) ([]byte, error) {
	out := (*c.bp)[c.most:]
	if len(out)-c.o < decodedLen(len(seg)) {
		if err := c.flush(); err != nil {
			return nil, err
		}
	}
	n, err := c.dec.decode(out[c.o:], seg)
	if err != nil {
		return nil, err
	}
	d := out[c.o : c.o+n : c.o+n]
	c.o += n
	if last {
		err = c.dec.finish()
	}
	return d, err
}

// unmask XORs b with a masking key (RFC 6455 5.3) whose first byte is
// key's lowest, and returns the key turned for the byte after b. Its
// loops are internal/wsframe's Mask, which the load tool and the tests
// use: bridge may import only targets and ratelimit of this module
// (DESIGN.md section 3), and TestUnmask holds the two equal.
//
// Where the CPU has them, vector instructions do the bulk first
// (unmaskWide, 32 bytes an instruction): the loops below then do what is
// left, or else all of b.
func unmask(b []byte, key uint32) uint32 {
	k := uint64(key) | uint64(key)<<32
	i := unmaskWide(b, k)
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

// pongFrame is the length of a client's pong to the session's ping:
// header, masking key, payload.
const pongFrame = 2 + 4 + len(pingPayload)

// track follows frame boundaries through p, the next bytes read, and
// returns how many of them are left for the library. A pong to the
// session's ping that arrives whole in one read is taken out and reported
// (pong) here, so that the library does not spend a context and a timer
// on it; a pong split across reads goes through. From a frame taken out
// (takes) on, the bytes go to the held buffer, for sift.
func (c *clientReads) track(p []byte) int {
	n := len(p)
	for i := 0; i < n; {
		if k := c.frames.skip(n - i); k > 0 {
			i += k
			continue
		}
		if c.frames.hn == 0 {
			if c.pong != nil && n-i >= pongFrame && isPong(p[i:i+pongFrame]) {
				copy(p[i:], p[i+pongFrame:n])
				n -= pongFrame
				c.pong()
				continue
			}
			c.mine = false
			if c.takes(p[i]) {
				c.bp = c.pool.Get().(*[]byte)
				c.r, c.w = 0, copy((*c.bp)[:c.most], p[i:n])
				return i
			}
		}
		if c.frames.header(p[i]) {
			c.libraryHeader()
		}
		i++
	}
	return n
}

// pongParked is the parked client reader's taken (see parkState.quick):
// when what the socket holds is a pong to the session's ping and nothing
// else, it reads it there and reports it, and the reader stays parked. A
// reader parks only between messages, with nothing held, so the pong
// leaves the stream whole, as track would take it out. The ping of every
// idle session, every ping_interval, costs a read system call this way
// instead of a goroutine's start and its stack, and allocates nothing.
// Bytes that are not a lone pong wait in peek for the woken reader (get).
func (c *clientReads) pongParked() bool {
	if c.pong == nil || c.peekRead == nil {
		return false
	}
	if c.rc.Control(c.peekRead) != nil || c.pn == 0 {
		return false // nothing after all, the FIN, or an error: the reader's to see
	}
	if int(c.pn) == pongFrame && isPong(c.peek[:pongFrame]) {
		c.pn = 0
		c.pong()
		return true
	}
	return false
}

// isPong reports whether f is a client's final pong frame carrying
// pingPayload.
func isPong(f []byte) bool {
	if f[0] != 0x80|0xA || f[1] != 0x80|byte(len(pingPayload)) {
		return false
	}
	key := f[2:6]
	for i := range len(pingPayload) {
		if f[6+i]^key[i%4] != pingPayload[i] {
			return false
		}
	}
	return true
}
