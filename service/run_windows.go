//go:build windows

package service

import (
	"context"
	"fmt"
	"time"

	"golang.org/x/sys/windows/svc"
	"golang.org/x/sys/windows/svc/mgr"
)

// Run runs d as the Windows service, or as a console program when the
// service control manager did not start this process.
//
// The SCM conversation is wsbridge's own (x/sys/windows/svc) rather than
// kardianos/service's, which accepts only stop and shutdown: wsbridge also
// accepts "parameters changed" (the reload that `wsbridge reload` sends),
// reports a drain's length as its stop wait hint, and stops the service
// with an exit code when the daemon fails by itself, so that the recovery
// actions restart it.
func Run(ctx context.Context, d Daemon) error {
	in, err := svc.IsWindowsService()
	if err != nil {
		return fmt.Errorf("service: %w", err)
	}
	if !in {
		return runKardianos(ctx, d)
	}
	h := &handler{p: newProgram(ctx, d)}
	if err := svc.Run(Name, h); err != nil {
		return fmt.Errorf("service: %w", err)
	}
	return h.p.err
}

type handler struct {
	p *program
}

func (h *handler) Execute(_ []string, r <-chan svc.ChangeRequest, changes chan<- svc.Status) (bool, uint32) {
	changes <- svc.Status{State: svc.StartPending}
	h.p.Start(nil)
	changes <- svc.Status{State: svc.Running, Accepts: svc.AcceptStop | svc.AcceptShutdown | svc.AcceptParamChange}
	for {
		select {
		case <-h.p.done:
			if h.p.err != nil {
				return true, 1
			}
			return false, 0
		case c := <-r:
			switch c.Cmd {
			case svc.Interrogate:
				changes <- c.CurrentStatus
			case svc.ParamChange:
				h.p.askReload()
				changes <- c.CurrentStatus
			case svc.Stop, svc.Shutdown:
				changes <- svc.Status{State: svc.StopPending, WaitHint: uint32(stopHint / time.Millisecond)}
				if err := h.p.Stop(nil); err != nil {
					return true, 1
				}
				return false, 0
			}
		}
	}
}

// askReload passes a reload request on without blocking: one pending
// request is as good as several.
func (p *program) askReload() {
	select {
	case p.reload <- struct{}{}:
	default:
	}
}

// stopHint is the wait hint given while draining: the default drain
// timeout plus the closing handshakes. The SCM asks again after it.
const stopHint = defaultStopTimeout

// Reload sends "parameters changed" to the running wsbridge service, which
// reloads bridge.hcl as SIGHUP does on Unix.
func Reload() error {
	m, err := mgr.Connect()
	if err != nil {
		return fmt.Errorf("service manager: %w", err)
	}
	defer m.Disconnect()
	s, err := m.OpenService(Name)
	if err != nil {
		return fmt.Errorf("wsbridge service: %w", err)
	}
	defer s.Close()
	if _, err := s.Control(svc.ParamChange); err != nil {
		return fmt.Errorf("reload: %w", err)
	}
	return nil
}

// configure applies the recovery actions and delayed start to a service
// that something else installed (the MSI).
func configure(spec Spec) error { return afterInstall(spec) }

// CanInstall always allows Windows: the SCM is always there.
func CanInstall() error { return nil }

// prepareAccount has nothing to create: the default account is built in.
func prepareAccount(Spec) error { return nil }

// afterInstall sets what kardianos/service cannot: a list of restarts,
// restarts after a failure the service reported itself, and (for a
// service the MSI created) the delayed automatic start.
func afterInstall(spec Spec) error {
	w := spec.Windows()
	m, err := mgr.Connect()
	if err != nil {
		return err
	}
	defer m.Disconnect()
	s, err := m.OpenService(Name)
	if err != nil {
		return err
	}
	defer s.Close()
	cfg, err := s.Config()
	if err != nil {
		return err
	}
	if cfg.StartType == mgr.StartAutomatic && !cfg.DelayedAutoStart {
		cfg.DelayedAutoStart = w.DelayedAutoStart
		if err := s.UpdateConfig(cfg); err != nil {
			return fmt.Errorf("delayed start: %w", err)
		}
	}
	var acts []mgr.RecoveryAction
	for _, d := range w.Recovery {
		acts = append(acts, mgr.RecoveryAction{Type: mgr.ServiceRestart, Delay: d})
	}
	if err := s.SetRecoveryActions(acts, uint32(w.ResetPeriod/time.Second)); err != nil {
		return fmt.Errorf("recovery actions: %w", err)
	}
	if err := s.SetRecoveryActionsOnNonCrashFailures(w.RecoveryOnExitCode); err != nil {
		return fmt.Errorf("recovery on exit code: %w", err)
	}
	return nil
}

// hasEventLog reports whether the SCM started this process: its logs then
// go to the event log, since its standard error goes nowhere.
func hasEventLog() bool {
	in, err := svc.IsWindowsService()
	return err == nil && in
}
