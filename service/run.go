package service

import (
	"context"

	kservice "github.com/kardianos/service"
)

// Daemon is the program a service runs: it serves until ctx ends, then
// drains and returns; a value on reload asks it to re-read its
// configuration. A non-nil error makes the service fail, so that the
// manager restarts it.
type Daemon func(ctx context.Context, reload <-chan struct{}) error

// program adapts a Daemon to kardianos/service's Start/Stop.
type program struct {
	parent context.Context
	daemon Daemon
	reload chan struct{}

	cancel context.CancelFunc
	done   chan struct{}
	err    error
}

func newProgram(parent context.Context, d Daemon) *program {
	return &program{parent: parent, daemon: d, reload: make(chan struct{}, 1), done: make(chan struct{})}
}

func (p *program) Start(kservice.Service) error {
	ctx, cancel := context.WithCancel(p.parent)
	p.cancel = cancel
	go func() {
		defer close(p.done)
		p.err = p.daemon(ctx, p.reload)
	}()
	return nil
}

// Stop ends the daemon's context and waits for its drain; the manager's
// own stop timeout bounds the wait.
func (p *program) Stop(kservice.Service) error {
	p.cancel()
	<-p.done
	return p.err
}

// wait returns when the parent context ends (SIGTERM, SIGINT) or the
// daemon stops by itself.
func (p *program) wait() {
	select {
	case <-p.parent.Done():
	case <-p.done:
	}
}

// runKardianos runs d through kardianos/service's Run, which on Unix calls
// Start, waits, then calls Stop. wsbridge handles its own signals, so the
// wait is for ctx (ended by SIGTERM in main) or the daemon's own end.
func runKardianos(ctx context.Context, d Daemon) error {
	p := newProgram(ctx, d)
	s, err := kservice.New(p, &kservice.Config{Name: Name, Option: kservice.KeyValue{"RunWait": p.wait}})
	if err != nil {
		return err
	}
	return s.Run()
}
