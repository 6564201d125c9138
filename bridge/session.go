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

// session is one bridged client. Its owner goroutine (started at the
// upgrade) runs two pumps, waits for the first event that ends the
// session, then closes both sides in an order that loses no byte:
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
	tc     net.Conn
	mode   Mode
	log    *slog.Logger
	ping   time.Duration // ping interval; <= 0 is off

	start  time.Time
	failed *ending // set when the session ends before it starts

	bytesIn    atomic.Int64 // client to target
	bytesOut   atomic.Int64 // target to client
	lastActive atomic.Int64 // unix nanoseconds of the last byte relayed
	targetWait atomic.Int64 // total nanoseconds the client reader spent blocked on target writes
	waitStart  atomic.Int64 // unix nanoseconds when the current target write began, or 0
	inTimer    *time.Timer  // the client reader's bandwidth timer

	wsFailed chan error // the target-to-client pump could not write to the client

	in, out   direction     // byte limits, client to target and back
	ended     chan struct{} // closed when the client reader's waits for bandwidth must stop
	endedOnce sync.Once
	outEnded  chan struct{} // closed when the target reader's waits must stop
	outOnce   sync.Once

	stop     chan struct{} // closed by Server.Shutdown or Retire
	stopOnce sync.Once
	stopEnd  *ending // how the session ends once stop is closed
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
	s.stopWith(&ending{code: websocket.StatusGoingAway, reason: reasonShutdown, by: "server", send: true})
}

// stopWith ends the session from outside with end, unless something else
// ended or stopped it first.
func (s *session) stopWith(end *ending) {
	s.stopOnce.Do(func() {
		s.stopEnd = end
		close(s.stop)
	})
}

// kill cuts both connections at once. It is the last resort of Shutdown for
// a session that did not end within its Linger.
func (s *session) kill() {
	s.endWaits()
	s.cutClient()
	closeConn(s.tc)
}

// run relays until one side ends, then closes both. It returns the ending.
func (s *session) run() ending {
	if s.failed != nil {
		s.ws.Close(s.failed.code, s.failed.reason)
		return *s.failed
	}
	opts := &s.cfg.opts
	s.lastActive.Store(time.Now().UnixNano())
	s.wsFailed = make(chan error, 1)
	up := make(chan error, 1)
	down := make(chan error, 1)
	go func() { up <- s.clientToTarget() }()
	go func() { down <- s.targetToClient() }()

	var pingC, idleC, lifeC <-chan time.Time
	var ping *time.Timer
	if s.ping > 0 {
		ping = time.NewTimer(s.ping)
		defer ping.Stop()
		pingC = ping.C
	}
	pinger := &pinger{s: s}
	var idle *time.Timer
	if opts.IdleTimeout > 0 {
		idle = time.NewTimer(opts.IdleTimeout)
		defer idle.Stop()
		idleC = idle.C
	}
	if opts.MaxLifetime > 0 {
		t := time.NewTimer(opts.MaxLifetime)
		defer t.Stop()
		lifeC = t.C
	}

	var end ending
	upDone, downDone := false, false
	for end.code == 0 {
		select {
		case err := <-up:
			upDone = true
			end = clientEnding(err)
		case err := <-down:
			downDone = true
			end = targetEnding(err)
		case <-s.wsFailed:
			end = ending{code: websocket.StatusAbnormalClosure, by: "client"}
		case <-s.stop:
			end = *s.stopEnd
		case <-pingC:
			pinger.start(opts.PongTimeout)
		case err := <-pinger.done:
			pinger.running = false
			switch {
			case !errors.Is(err, context.DeadlineExceeded):
				// A pong, or a connection that closed: the pumps report that.
			case pinger.excused():
				s.log.Debug("pong late while the target was slow; not held against the client")
			default:
				end = ending{code: websocket.StatusGoingAway, reason: reasonPong, by: "client", send: true, unresponsive: true}
			}
			if end.code == 0 {
				ping.Reset(s.ping)
			}
		case <-idleC:
			if left := opts.IdleTimeout - time.Duration(time.Now().UnixNano()-s.lastActive.Load()); left > 0 {
				idle.Reset(left)
				continue
			}
			end = ending{code: websocket.StatusPolicyViolation, reason: reasonIdle, by: "server", send: true}
		case <-lifeC:
			end = ending{code: websocket.StatusPolicyViolation, reason: reasonLifetime, by: "server", send: true}
		}
	}
	s.finish(end, upDone, downDone, up, down)
	pinger.wait()
	return end
}

// finish closes both sides in the order the session doc describes.
func (s *session) finish(end ending, upDone, downDone bool, up, down <-chan error) {
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
			// let the message being written reach the target.
			s.ws.CloseNow()
		}
		t := time.NewTimer(time.Until(deadline))
		select {
		case <-up:
		case <-t.C:
			// Also free a wait for bandwidth, or a write stuck on a target
			// that stopped reading, so the linger bounds the end.
			s.endWaits()
			s.cutClient()
			s.tc.SetWriteDeadline(time.Now())
			<-up
		}
		t.Stop()
	}

	if cw, ok := s.tc.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	}
	if !downDone {
		s.tc.SetReadDeadline(deadline)
		<-down
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
// socket is what ends that handshake at once.
func (s *session) cutClient() {
	if s.cc != nil {
		s.cc.Close()
	}
	s.ws.CloseNow()
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

// clientToTarget relays client messages to the target until the client's
// side ends. A buffer is taken from the pool only while a message is being
// copied, so an idle session holds none on this side.
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
func (s *session) writeTarget(p []byte) error {
	start := time.Now()
	s.waitStart.Store(start.UnixNano())
	now, err := s.throttle(&s.in, len(p), start, &s.inTimer, s.ended)
	if err != nil {
		s.waitStart.Store(0)
		return err
	}
	if wt := s.cfg.opts.WriteTimeout; wt > 0 {
		s.tc.SetWriteDeadline(now.Add(wt))
	}
	if s.rec != nil {
		s.rec.Frame(true, now.Sub(s.start), p)
	}
	n, err := s.tc.Write(p)
	end := time.Now().UnixNano()
	s.waitStart.Store(0)
	s.targetWait.Add(end - start.UnixNano())
	s.lastActive.Store(end)
	s.bytesIn.Add(int64(n))
	if err != nil {
		return &targetError{err}
	}
	return nil
}

// targetToClient relays target reads to the client until the target's side
// ends. Once a write to the client fails it keeps reading and discards, so
// the target socket can close cleanly; finish bounds that with a deadline.
// It returns nil when the target sent its FIN.
func (s *session) targetToClient() error {
	ctx := context.Background()
	typ := websocket.MessageBinary
	// A message is at most the configured read size; a bulk read from the
	// target takes several (see targetReads). In base64 a buffer is
	// split: raw bytes first, their encoding (four for every three) after,
	// and a message carries the encoding of a whole number of three-byte
	// groups.
	msg := s.srv.bufSize
	raw := func(size int) int { return size }
	if s.mode == Base64 {
		typ = websocket.MessageText
		raw = func(size int) int { return size * 3 / 7 / 3 * 3 }
		msg = raw(msg) / 3 * 4
	}
	chunk := s.out.chunk
	window := func(buf []byte) []byte { return buf[:min(raw(len(buf)), chunk)] }
	bulk := &s.srv.bulkBufs
	if chunk <= raw(s.srv.bufSize) { // bandwidth limits cap every read
		bulk = &s.srv.bufs
	}
	reads := newTargetReads(s.tc, &s.srv.bufs, bulk, window)
	defer reads.close()
	var timer *time.Timer
	failed := false
	for {
		bp, n, err := reads.read()
		if n > 0 && !failed {
			now, terr := s.throttle(&s.out, n, time.Now(), &timer, s.outEnded)
			if terr != nil {
				reads.done(bp)
				return terr
			}
			s.lastActive.Store(now.UnixNano())
			p := (*bp)[:n]
			if s.rec != nil {
				s.rec.Frame(false, now.Sub(s.start), p)
			}
			if s.mode == Base64 {
				enc := (*bp)[raw(len(*bp)):]
				b64Encode(enc, p)
				p = enc[:base64.StdEncoding.EncodedLen(n)]
			}
			if werr := s.writeClient(ctx, typ, p, msg); werr != nil {
				failed = true
				s.wsFailed <- werr
			} else {
				s.bytesOut.Add(int64(n))
			}
		}
		reads.done(bp)
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// writeClient writes p to the client in messages of at most msg bytes,
// gathered into one system call where the connection allows.
func (s *session) writeClient(ctx context.Context, typ websocket.MessageType, p []byte, msg int) error {
	gathered := s.fw.start(len(p))
	var err error
	for len(p) > 0 && err == nil {
		k := min(len(p), msg)
		err = s.ws.Write(ctx, typ, p[:k])
		p = p[k:]
	}
	if gathered {
		if rerr := s.fw.release(); err == nil {
			err = rerr
		}
	}
	return err
}

// pinger runs at most one ping at a time beside the session's owner.
type pinger struct {
	s       *session
	done    chan error
	running bool
	waited  int64 // s.targetWait when the ping started
}

func (p *pinger) start(timeout time.Duration) {
	if p.running {
		return
	}
	if p.done == nil {
		p.done = make(chan error, 1)
	}
	p.running = true
	p.waited = p.s.targetWait.Load()
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		p.done <- p.s.ws.Ping(ctx)
	}()
}

// excused reports whether the client reader wrote to the target during the
// last ping, or is blocked writing to it now. Then a late pong proves
// nothing: pongs are only read between client messages, and the client was
// heard from anyway.
func (p *pinger) excused() bool {
	return p.s.waitStart.Load() != 0 || p.s.targetWait.Load() != p.waited
}

func (p *pinger) wait() {
	if p.running {
		<-p.done
	}
}
