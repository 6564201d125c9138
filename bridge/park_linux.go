package bridge

import (
	"sync"
	"syscall"
)

// parker waits, for sessions whose target has been silent a while, on an
// epoll set of its own instead of a goroutine per session: a parked
// target reader costs an entry in a map, not a goroutine and its stack.
// When the target has bytes (or its FIN, or an error), the parker starts
// the session's reader again on a new goroutine. Go's own poller keeps
// the socket too; an epoll set may share a socket with another.
type parker struct {
	once sync.Once
	epfd int
	err  error

	mu    sync.Mutex
	next  uint64
	waits map[uint64]parked // parked readers by key

	// repark's epoll_ctl, made once: only the parker's goroutine reparks,
	// and a reader's pong costs no allocation.
	reEv  syscall.EpollEvent
	reErr error
	reCtl func(fd uintptr)
}

var idle parker

func (p *parker) init() error {
	p.once.Do(func() {
		p.epfd, p.err = syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
		if p.err != nil {
			return
		}
		p.waits = make(map[uint64]parked)
		p.reCtl = func(fd uintptr) { p.reErr = syscall.EpollCtl(p.epfd, syscall.EPOLL_CTL_MOD, int(fd), &p.reEv) }
		go p.loop()
	})
	return p.err
}

// loop runs wake-ups; an OS thread spends its life in epoll_wait.
func (p *parker) loop() {
	events := make([]syscall.EpollEvent, 256)
	for {
		n, err := syscall.EpollWait(p.epfd, events, -1)
		if err != nil {
			continue // EINTR; nothing else can fail on a valid set
		}
		for _, ev := range events[:n] {
			key := uint64(uint32(ev.Fd)) | uint64(uint32(ev.Pad))<<32
			p.mu.Lock()
			w := p.waits[key]
			delete(p.waits, key)
			p.mu.Unlock()
			if w.wake == nil || w.quick != nil && w.quick(key) {
				continue
			}
			go w.wake()
		}
	}
}

// park adds rc's socket to the set, once: w.wake runs (on a goroutine of
// its own) when the socket is readable, unless cancel takes the key back
// first, or w.quick takes what came. The socket stays in the set
// (disabled) until unpark.
func (p *parker) park(rc syscall.RawConn, w parked) (uint64, error) {
	if err := p.init(); err != nil {
		return 0, err
	}
	p.mu.Lock()
	p.next++
	key := p.next
	p.waits[key] = w
	p.mu.Unlock()
	ev := event(key)
	var cerr error
	err := rc.Control(func(fd uintptr) { cerr = syscall.EpollCtl(p.epfd, syscall.EPOLL_CTL_ADD, int(fd), &ev) })
	if err == nil {
		err = cerr
	}
	if err != nil {
		p.cancel(key)
		return 0, err
	}
	return key, nil
}

// repark parks again, under the same key, a reader whose quick took what
// came; only the parker's goroutine calls it (from quick).
func (p *parker) repark(rc syscall.RawConn, key uint64, w parked) error {
	p.mu.Lock()
	p.waits[key] = w
	p.mu.Unlock()
	p.reEv = event(key)
	err := rc.Control(p.reCtl)
	if err == nil {
		err = p.reErr
	}
	if err != nil {
		p.cancel(key)
	}
	return err
}

// event is the epoll event of a parked reader: once, for bytes, the FIN
// or an error.
func event(key uint64) syscall.EpollEvent {
	return syscall.EpollEvent{
		Events: syscall.EPOLLIN | syscall.EPOLLRDHUP | syscall.EPOLLONESHOT,
		Fd:     int32(uint32(key)),
		Pad:    int32(uint32(key >> 32)),
	}
}

// cancel takes key back; false means its wake has run or is on its way.
func (p *parker) cancel(key uint64) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	_, ok := p.waits[key]
	delete(p.waits, key)
	return ok
}

// unpark removes rc's socket from the set. Control keeps the descriptor
// from being closed (and its number reused) meanwhile.
func (p *parker) unpark(rc syscall.RawConn) {
	rc.Control(func(fd uintptr) { syscall.EpollCtl(p.epfd, syscall.EPOLL_CTL_DEL, int(fd), nil) })
}

// canPark says that this system has a parker.
const canPark = true
