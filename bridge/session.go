package bridge

import (
	"context"
	"encoding/base64"
	"errors"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/wsbridge/wsbridge/targets"
)

// Close reasons sent to clients.
const (
	reasonTargetClosed = "Target closed"
	reasonTargetError  = "Target error"
	reasonShutdown     = "Server shutting down"
	reasonPong         = "Pong timeout"
	reasonIdle         = "Idle timeout"
	reasonLifetime     = "Session lifetime exceeded"
	reasonText         = "Text frames are not supported"
	reasonBase64       = "Invalid base64"
	reasonRetired      = "Target removed"
)

var errTextFrame = errors.New("text message on a binary session")

// targetError marks a failed write to the target, so that the ending is
// blamed on the target and not on the client whose bytes were being written.
type targetError struct{ err error }

func (e *targetError) Error() string { return "write to target: " + e.err.Error() }
func (e *targetError) Unwrap() error { return e.err }

// ending is how a session ended: the close code sent to the client (or
// received from it), its reason, and which side ended it.
type ending struct {
	code   websocket.StatusCode
	reason string
	by     string // "client", "target" or "server"
	// send is set when wsbridge still has to send the close frame; it is
	// clear when the client closed first or the library already answered.
	send bool
	// unresponsive says the client has stopped answering: it gets its
	// close frame but is not waited for.
	unresponsive bool
	// err is the target's error when it ended the session with 1011, for
	// the log: the client only learns "Target error".
	err error
}

// session is one bridged client. Two pump goroutines relay its bytes; a
// running session has no other goroutine: its timers are callbacks, and
// whatever ends it first (a pump's end, a timer, Shutdown) claims the end
// and closes both sides (finish, on the pump that ended, or on a
// goroutine of its own) in an order that loses no byte:
//
//  1. the client gets its close frame (after every byte the target sent,
//     when the target ended it);
//  2. the client's last messages reach the target, for up to Linger;
//  3. the target gets a FIN after them, and what it still sends is drained
//     until its own FIN or the end of the Linger, so the socket closes
//     without a reset that would discard bytes still in the kernel buffer.
type session struct {
	srv    *Server
	cfg    *config // the configuration the session started with
	target targets.Target
	label  string    // the target's metric label
	rec    Recording // nil when not recording
	ws     *websocket.Conn
	cc     net.Conn     // the client's connection, to cut it, or nil
	fw     *frameWriter // where the library's writer flushes: deadlines, writev
	cr     *clientReads // what the library reads: frame boundaries, parking
	tc     net.Conn
	tw     *rawWriter // tc's, where writes are raw (Linux), or nil
	mode   Mode
	log    *slog.Logger
	ping   time.Duration // ping interval; <= 0 is off
	limit  int64         // the largest client message, in its bytes on the wire

	start  time.Time
	failed *ending // set when the session ends before it starts

	bytesIn    atomic.Int64 // client to target
	bytesOut   atomic.Int64 // target to client
	lastActive atomic.Int64 // unix nanoseconds of the last byte relayed
	targetWait atomic.Int64 // total nanoseconds the client reader spent blocked on target writes
	waitStart  atomic.Int64 // unix nanoseconds when the current target write began, or 0
	closing    atomic.Bool  // wsbridge sends the close frame: client bytes from now on are dropped
	inTimer    *time.Timer  // the client reader's bandwidth timer

	// The end: the first ending claims it (under mu) and is the one that
	// counts; the pumps' later results go to up and down for finish.
	mu      sync.Mutex
	end     *ending
	started bool // begin ran; before that, an ending waits for it
	tk      *ticket
	up      chan error // the client reader's result, once the session is ending
	down    chan error // the target reader's
	idleT   *time.Timer
	lifeT   *time.Timer
	pingOut bool  // a ping waits for its pong
	waited  int64 // targetWait when it was sent

	// The session's place in the pinger's schedule (the next ping, or the
	// pong deadline of the ping out), under pings.mu.
	pingAt  time.Duration // since the pinger's base
	pingIdx int           // in its queue; -1 when not scheduled

	in, out   direction     // byte limits, client to target and back
	outp      *outPump      // the target-to-client pump's state
	ended     chan struct{} // closed when the client reader's waits for bandwidth must stop
	endedOnce sync.Once
	outEnded  chan struct{} // closed when the target reader's waits must stop
	outOnce   sync.Once
}

// endWaits stops the pumps' waits for bandwidth: the session's linger is
// over, or Shutdown kills it.
func (s *session) endWaits() {
	s.endedOnce.Do(func() { close(s.ended) })
	s.endOutWaits()
}

// endOutWaits stops the target reader's waits: once the session ends, no
// more data goes to the client.
func (s *session) endOutWaits() { s.outOnce.Do(func() { close(s.outEnded) }) }

// errEnded ends a pump that was waiting for bandwidth when the session's
// linger ran out.
var errEnded = errors.New("session ended while waiting for bandwidth")

// throttle waits until d allows n more bytes, from now, and returns the
// time it is when done (now itself when there was nothing to wait for). t
// is the pump's timer, made on first use.
func (s *session) throttle(d *direction, n int, now time.Time, t **time.Timer, stop <-chan struct{}) (time.Time, error) {
	if len(d.lims) == 0 {
		return now, nil
	}
	w := d.wait(n, now)
	if w <= 0 {
		return now, nil
	}
	s.srv.obs.Waited(d.name, w)
	if *t == nil {
		*t = time.NewTimer(w)
	} else {
		(*t).Reset(w)
	}
	select {
	case <-(*t).C:
		return time.Now(), nil
	case <-stop:
		return now, errEnded
	}
}

func (s *session) shutdown() {
	s.trigger(ending{code: websocket.StatusGoingAway, reason: reasonShutdown, by: "server", send: true})
}

// kill cuts both connections at once. It is the last resort of Shutdown for
// a session that did not end within its Linger.
func (s *session) kill() {
	s.endWaits()
	closeConn(s.tc) // first: see cutClient
	s.cutClient()
}

// begin starts relaying; Server.ended is called once the session is
// over. tk is the session's admission, released then.
func (s *session) begin(tk *ticket) {
	s.tk = tk
	if s.failed != nil {
		go func() {
			s.ws.Close(s.failed.code, s.failed.reason)
			s.srv.ended(s, *s.failed)
		}()
		return
	}
	opts := &s.cfg.opts
	s.lastActive.Store(time.Now().UnixNano())
	s.up = make(chan error, 1)
	s.down = make(chan error, 1)
	s.outp = s.newOutPump()
	if r := s.outp.reads.raw; r != nil {
		s.tw = newRawWriter(r.rc) // the target reader's socket
	}
	s.mu.Lock()
	s.started = true
	if s.end != nil { // stopped before it began
		e := *s.end
		s.mu.Unlock()
		go s.conclude(e, true, true)
		return
	}
	if s.ping > 0 {
		pings.add(s, s.ping)
		s.cr.pong = s.ponged
	}
	if opts.IdleTimeout > 0 {
		s.idleT = time.AfterFunc(opts.IdleTimeout, s.idleCheck)
	}
	if opts.MaxLifetime > 0 {
		s.lifeT = time.AfterFunc(opts.MaxLifetime, func() {
			s.trigger(ending{code: websocket.StatusPolicyViolation, reason: reasonLifetime, by: "server", send: true})
		})
	}
	s.mu.Unlock()
	if canPark && s.cr.rc != nil {
		s.cr.wake = s.clientPump
	}
	s.cr.take(s.takeOut, s.limit, s.in.chunk, &s.srv.bulkBufs, s.srv.bulkSize, s.mode == Base64)
	go s.clientPump()
	go s.targetPump()
}

// trigger ends the session with e from outside the pumps, unless it is
// ending already.
func (s *session) trigger(e ending) {
	s.mu.Lock()
	if s.end != nil {
		s.mu.Unlock()
		return
	}
	s.end = &e
	started := s.started
	s.mu.Unlock()
	if started {
		go s.conclude(e, false, false)
	}
}

// pumpDone takes a pump's result: the session's ending, when it is the
// first, which this pump's goroutine then carries out; otherwise finish's.
func (s *session) pumpDone(up bool, err error) {
	e := targetEnding(err)
	if up {
		e = clientEnding(err)
	}
	s.mu.Lock()
	if s.end == nil {
		s.end = &e
		s.mu.Unlock()
		s.conclude(e, up, !up)
		return
	}
	s.mu.Unlock()
	if up {
		s.up <- err
	} else {
		s.down <- err
	}
}

// conclude closes the session's sides after its ending e; upDone and
// downDone say which pumps have returned already.
func (s *session) conclude(e ending, upDone, downDone bool) {
	if s.ping > 0 {
		pings.remove(s)
	}
	for _, t := range []*time.Timer{s.idleT, s.lifeT} {
		if t != nil {
			t.Stop()
		}
	}
	s.finish(e, upDone, downDone)
	s.cr.release()
	s.outp.reads.close()
	s.srv.ended(s, e)
}

// due runs on the pinger's goroutine when the session's time in its
// schedule comes: with no ping out, the next ping goes out
// (frameWriter.tryPing, or ping on a goroutine when it would have to wait)
// and the pong deadline is scheduled; with one out, its pong is late
// (pongLate). ponged schedules the next ping. A session rescheduled since
// the pinger took it off waits for its new time.
func (s *session) due() {
	s.mu.Lock()
	if s.end != nil || pings.queued(s) {
		s.mu.Unlock()
		return
	}
	if s.pingOut {
		s.pongLate() // unlocks mu
		return
	}
	s.pingOut = true
	s.waited = s.targetWait.Load()
	pings.add(s, s.cfg.opts.PongTimeout)
	s.mu.Unlock()
	if !s.fw.tryPing() {
		go s.fw.ping()
	}
}

// onPong is the library's report of a pong, on the client reader's
// goroutine. Only pongs to the session's own pings count.
func (s *session) onPong(_ context.Context, payload []byte) {
	if string(payload) == pingPayload {
		s.ponged()
	}
}

// ponged takes a pong to the session's ping, from the library or from
// clientReads, which takes most of them out before the library sees them.
func (s *session) ponged() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.pingOut {
		return
	}
	s.pingOut = false
	if s.end == nil {
		pings.add(s, s.ping)
	}
}

// pongLate judges a ping whose pong did not come by its deadline; due
// calls it with mu held, and it lets mu go. Pongs are only read between
// client messages: a client whose message was being written to the target
// meanwhile (or still is) was heard from anyway, and is pinged again.
func (s *session) pongLate() {
	s.pingOut = false
	excused := s.waitStart.Load() != 0 || s.targetWait.Load() != s.waited
	if excused {
		pings.add(s, s.ping)
	}
	s.mu.Unlock()
	if excused {
		s.log.Debug("pong late while the target was slow; not held against the client")
		return
	}
	s.trigger(ending{code: websocket.StatusGoingAway, reason: reasonPong, by: "client", send: true, unresponsive: true})
}

// idleCheck runs on the idle timer: the session ends if nothing moved for
// IdleTimeout, or the timer waits for the rest.
func (s *session) idleCheck() {
	if left := s.cfg.opts.IdleTimeout - time.Duration(time.Now().UnixNano()-s.lastActive.Load()); left > 0 {
		s.mu.Lock()
		if s.end == nil {
			s.idleT.Reset(left)
		}
		s.mu.Unlock()
		return
	}
	s.trigger(ending{code: websocket.StatusPolicyViolation, reason: reasonIdle, by: "server", send: true})
}

// finish closes both sides in the order the session doc describes.
func (s *session) finish(end ending, upDone, downDone bool) {
	// A parked client reader is woken: the close handshake and the last
	// messages need it.
	s.cr.stop(time.Time{})
	linger := s.cfg.opts.Linger
	if end.unresponsive {
		// Time for the close frame to leave, not for an answer.
		linger = min(linger, 100*time.Millisecond)
	}
	deadline := time.Now().Add(linger)
	// Nothing more goes to the client; its bytes waiting for bandwidth
	// still go to the target within the linger.
	s.endOutWaits()
	closed := make(chan struct{})
	if end.send {
		s.closing.Store(true)
		go func() {
			defer close(closed)
			s.ws.Close(end.code, end.reason)
		}()
	} else {
		// The client closed first (the library echoed its close frame), or
		// the library has sent its own, or the client is gone.
		close(closed)
	}

	if !upDone {
		if !end.send {
			// Nothing more to say to the client: stop reading it now, and
			// let the message being written reach the target. Only the
			// socket is closed: the library's CloseNow would wait for the
			// client reader, which may be in that write (clientReads).
			s.closeClientSocket()
		}
		t := time.NewTimer(time.Until(deadline))
		select {
		case <-s.up:
		case <-t.C:
			// Also free a wait for bandwidth, or a write stuck on a target
			// that stopped reading, so the linger bounds the end; then the
			// client reader lets the library go.
			s.endWaits()
			s.tc.SetWriteDeadline(time.Now())
			s.cutClient()
			<-s.up
		}
		t.Stop()
	}

	if cw, ok := s.tc.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	}
	if !downDone {
		if s.outp.reads.stop(deadline) {
			// A parked target reader makes its last reads here, not on a
			// goroutine of its own: when many sessions end at once (a
			// restart, a load balancer's drain), each costs one goroutine
			// and stack fewer. Its end comes back through s.down.
			s.targetPump()
		}
		<-s.down
	}
	s.tc.Close()
	// The library's close handshake waits up to 5 s for the client's
	// close frame; the linger is all it gets.
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	select {
	case <-closed:
	case <-t.C:
		s.cutClient()
		<-closed
	}
	s.ws.CloseNow()
}

// cutClient closes the client's connection under the library first: the
// library's CloseNow waits for a close handshake in progress, and a closed
// socket is what ends that handshake at once. CloseNow also waits for the
// client reader, which may be writing to the target what it took out of
// the client's stream (clientReads): callers first make sure that write
// cannot block (a target write deadline, or the target closed).
func (s *session) cutClient() {
	s.closeClientSocket()
	s.ws.CloseNow()
}

// closeClientSocket closes the client's connection under the library (and
// under TLS): reads and writes of it fail from now on.
func (s *session) closeClientSocket() {
	if s.cc != nil {
		s.cc.Close()
	} else {
		s.cr.Conn.Close()
	}
}

// clientEnding maps the error that ended the client-to-target pump.
func clientEnding(err error) ending {
	var ce websocket.CloseError
	var te *targetError
	switch {
	case errors.As(err, &ce):
		return ending{code: ce.Code, reason: ce.Reason, by: "client"}
	case errors.As(err, &te):
		return ending{code: websocket.StatusInternalError, reason: reasonTargetError, by: "target", send: true, err: te.err}
	case errors.Is(err, errTextFrame):
		return ending{code: websocket.StatusUnsupportedData, reason: reasonText, by: "client", send: true}
	case errors.Is(err, errBase64):
		return ending{code: websocket.StatusInvalidFramePayloadData, reason: reasonBase64, by: "client", send: true}
	case errors.Is(err, websocket.ErrMessageTooBig):
		return ending{code: websocket.StatusMessageTooBig, reason: "Message too big", by: "client"}
	case errors.Is(err, errTooBig):
		return ending{code: websocket.StatusMessageTooBig, reason: "Message too big", by: "client", send: true}
	case errors.Is(err, errFragment):
		return ending{code: websocket.StatusProtocolError, reason: "Protocol error", by: "client", send: true}
	case isNetError(err):
		return ending{code: websocket.StatusAbnormalClosure, by: "client"}
	}
	// What remains are the library's protocol errors; it has sent 1002.
	return ending{code: websocket.StatusProtocolError, reason: "Protocol error", by: "client"}
}

// targetEnding maps the error that ended the target-to-client pump.
func targetEnding(err error) ending {
	if err == nil {
		return ending{code: websocket.StatusNormalClosure, reason: reasonTargetClosed, by: "target", send: true}
	}
	return ending{code: websocket.StatusInternalError, reason: reasonTargetError, by: "target", send: true, err: err}
}

func isNetError(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, net.ErrClosed)
}

// clientToTarget relays the client messages the library reads to the target
// until the client's side ends: the text messages of a binary session, and
// the messages that began in the bytes read before the hijack (clientReads'
// early bytes: the client may send frames once the 101 is out, and the
// library reads these before the take-out starts). The rest are taken out
// of the stream before the library (clientReads.take). A buffer is taken
// from the pool only while a message is being copied, so an idle session
// holds none on this side.
func (s *session) clientToTarget() error {
	ctx := context.Background()
	strict := s.cfg.opts.StrictText && s.mode == Binary
	var dec b64Decoder
	// Base64 is decoded from one half of the buffer into the other: the
	// bulk pool's buffers take a whole message of the default limit in
	// one read and one write, as binary messages go with the small ones.
	pool := &s.srv.bufs
	if s.mode == Base64 {
		pool = &s.srv.bulkBufs
	}
	for {
		typ, r, err := s.ws.Reader(ctx)
		if err != nil {
			return err
		}
		if strict && typ == websocket.MessageText {
			return errTextFrame
		}
		var d *b64Decoder
		if s.mode == Base64 {
			d = &dec
		}
		bp := pool.Get().(*[]byte)
		err = copyMessage((*targetWriter)(s), r, *bp, s.in.chunk, d)
		pool.Put(bp)
		if err != nil {
			return err
		}
	}
}

// takeOut writes the payloads that clientReads took out of the client's
// stream: all in one write, or with bandwidth limits a chunk at a time.
func (s *session) takeOut(v *net.Buffers) error {
	if len(s.in.lims) == 0 {
		return s.toTarget(nil, v)
	}
	for _, p := range *v {
		for len(p) > 0 {
			k := min(len(p), s.in.chunk)
			if err := s.writeTarget(p[:k]); err != nil {
				return err
			}
			p = p[k:]
		}
	}
	return nil
}

// targetWriter is a session's writeTarget as an io.Writer.
type targetWriter session

func (w *targetWriter) Write(p []byte) (int, error) {
	if err := (*session)(w).writeTarget(p); err != nil {
		return 0, err
	}
	return len(p), nil
}

// writeTarget writes p to the target under the write deadline, once the
// bandwidth allows, and counts the time it blocks, which the ping deadline
// forgives: pongs are not read while the client reader waits.
func (s *session) writeTarget(p []byte) error { return s.toTarget(p, nil) }

// toTarget is writeTarget of p, or of v (consumed) when it is not nil.
// Once wsbridge's close frame is decided, what the client still sends is
// dropped, as the library's close handshake drops it (README, "Close
// codes"); a write under way finishes.
func (s *session) toTarget(p []byte, v *net.Buffers) error {
	if s.closing.Load() {
		return nil
	}
	size := len(p)
	if v != nil {
		for _, b := range *v {
			size += len(b)
		}
	}
	start := time.Now()
	s.waitStart.Store(start.UnixNano())
	now, err := s.throttle(&s.in, size, start, &s.inTimer, s.ended)
	if err != nil {
		s.waitStart.Store(0)
		return err
	}
	if wt := s.cfg.opts.WriteTimeout; wt > 0 {
		s.tc.SetWriteDeadline(now.Add(wt))
	}
	if s.rec != nil {
		if v != nil {
			for _, b := range *v {
				s.rec.Frame(true, now.Sub(s.start), b)
			}
		} else {
			s.rec.Frame(true, now.Sub(s.start), p)
		}
	}
	var n int64
	if v != nil {
		n, err = s.tw.writeTo(s.tc, v)
	} else {
		var k int
		k, err = s.tc.Write(p)
		n = int64(k)
	}
	end := time.Now().UnixNano()
	s.waitStart.Store(0)
	s.targetWait.Add(end - start.UnixNano())
	s.lastActive.Store(end)
	s.bytesIn.Add(n)
	if err != nil {
		return &targetError{err}
	}
	return nil
}

// clientPump and targetPump are the readers' goroutines (see pump); each
// is also its reader's wake, which the parker runs.
func (s *session) clientPump() { s.pump(true, s.clientToTarget, s.cr.park) }

func (s *session) targetPump() {
	s.pump(false, s.targetToClient, func() bool { return s.outp.reads.raw.park() })
}

// pump runs one side's loop until that side ends, or until its reader
// parks (run returns errParked; see parkState), which ends the goroutine:
// the parker runs it again once the socket has something. A reader that
// may not park any more (the session ends) reads on.
func (s *session) pump(up bool, run func() error, park func() bool) {
	for {
		err := run()
		if !errors.Is(err, errParked) {
			s.pumpDone(up, err)
			return
		}
		if park() {
			return
		}
	}
}

// outPump is the target-to-client pump's state, kept in the session
// across parking.
type outPump struct {
	typ    websocket.MessageType
	msg    int                // payload bytes of one message, at most
	raw    func(size int) int // of a buffer's size, the part reads fill
	reads  *targetReads
	timer  *time.Timer // the bandwidth wait's
	failed bool        // a write to the client failed: read and discard
}

// newOutPump prepares the target-to-client pump. A message is at most the
// configured read size; a bulk read from the target takes several (see
// targetReads). In base64 a buffer is split: raw bytes first, their
// encoding (four for every three) after, and a message carries the
// encoding of a whole number of three-byte groups.
func (s *session) newOutPump() *outPump {
	p := &outPump{typ: websocket.MessageBinary, msg: s.srv.bufSize, raw: func(size int) int { return size }}
	if s.mode == Base64 {
		p.typ = websocket.MessageText
		p.raw = func(size int) int { return size * 3 / 7 / 3 * 3 }
		p.msg = p.raw(p.msg) / 3 * 4
	}
	chunk := s.out.chunk
	window := func(buf []byte) []byte { return buf[:min(p.raw(len(buf)), chunk)] }
	bulk := &s.srv.bulkBufs
	if chunk <= p.raw(s.srv.bufSize) { // bandwidth limits cap every read
		bulk = &s.srv.bufs
	}
	p.reads = newTargetReads(s.tc, &s.srv.bufs, bulk, window)
	if p.reads.raw != nil && canPark {
		p.reads.raw.wake = s.targetPump
	}
	return p
}

// targetToClient relays target reads to the client until the target's
// side ends. Once a write to the client fails it keeps reading and
// discards, so the target socket can close cleanly; finish bounds that
// with a deadline. It returns nil when the target sent its FIN, and
// errParked when the target has been silent for parkAfter.
func (s *session) targetToClient() error {
	ctx := context.Background()
	p := s.outp
	for {
		bp, n, err := p.reads.read()
		if n > 0 && !p.failed {
			now, terr := s.throttle(&s.out, n, time.Now(), &p.timer, s.outEnded)
			if terr != nil {
				p.reads.done(bp)
				return terr
			}
			s.lastActive.Store(now.UnixNano())
			b := (*bp)[:n]
			if s.rec != nil {
				s.rec.Frame(false, now.Sub(s.start), b)
			}
			if s.mode == Base64 {
				enc := (*bp)[p.raw(len(*bp)):]
				b64Encode(enc, b)
				b = enc[:base64.StdEncoding.EncodedLen(n)]
			}
			if werr := s.writeClient(ctx, p.typ, b, p.msg); werr != nil {
				p.failed = true
				s.trigger(ending{code: websocket.StatusAbnormalClosure, by: "client"})
			} else {
				s.bytesOut.Add(int64(n))
			}
		}
		p.reads.done(bp)
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// writeClient writes p to the client in messages of at most msg bytes:
// by the frame writer, in one system call, on a plain socket, and through
// the library on TLS.
func (s *session) writeClient(ctx context.Context, typ websocket.MessageType, p []byte, msg int) error {
	if s.fw.vec != nil {
		op := byte(0x2)
		if typ == websocket.MessageText {
			op = 0x1
		}
		return s.fw.messages(op, p, msg)
	}
	for len(p) > 0 {
		k := min(len(p), msg)
		if err := s.ws.Write(ctx, typ, p[:k]); err != nil {
			return err
		}
		p = p[k:]
	}
	return nil
}
