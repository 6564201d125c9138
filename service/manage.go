package service

import (
	"errors"
	"fmt"

	kservice "github.com/kardianos/service"
)

// Manager installs and controls the wsbridge service through the
// platform's service manager.
type Manager struct {
	spec Spec
	svc  kservice.Service
}

// NewManager returns a manager for spec. Only Install reads the spec's
// paths; the other commands need nothing but the service's name, so a zero
// Spec will do for them.
func NewManager(spec Spec) (*Manager, error) {
	cfg := &kservice.Config{Name: Name}
	if spec.Executable != "" {
		var err error
		if cfg, err = spec.kardianos(); err != nil {
			return nil, err
		}
	} else if spec.UserLevel {
		cfg.Option = kservice.KeyValue{"UserService": true}
	}
	s, err := kservice.New(nil, cfg)
	if err != nil {
		return nil, fmt.Errorf("service manager: %w", err)
	}
	return &Manager{spec: spec, svc: s}, nil
}

// Platform names the service manager in use, such as "linux-systemd",
// "darwin-launchd" or "windows-service".
func (m *Manager) Platform() string { return m.svc.Platform() }

// Install writes and registers the service (and, on Linux, creates the
// wsbridge system user when the service runs as it and it is missing).
// It refuses where no init system would run the service, and when the
// service is installed already.
func (m *Manager) Install() error {
	if err := CanInstall(); err != nil {
		return err
	}
	if err := m.spec.Check(); err != nil {
		return err
	}
	if err := prepareAccount(m.spec); err != nil {
		return err
	}
	if err := m.svc.Install(); err != nil {
		return fmt.Errorf("install: %w", err)
	}
	if err := afterInstall(m.spec); err != nil {
		// Half a service is worse than none.
		m.svc.Uninstall()
		return fmt.Errorf("install: %w", err)
	}
	return nil
}

// Configure sets the Windows service's recovery actions (restart on
// failure) and delayed automatic start, which an MSI cannot: the MSI runs
// "wsbridge service configure" after it registers the service.
func (m *Manager) Configure() error { return configure(m.spec) }

// Uninstall stops the service if it runs and removes it. The account, the
// configuration and the state directory stay: they are the operator's.
func (m *Manager) Uninstall() error {
	if err := CanInstall(); err != nil {
		return err
	}
	if st, err := m.svc.Status(); err == nil && st == kservice.StatusRunning {
		if err := m.svc.Stop(); err != nil {
			return fmt.Errorf("stop before uninstall: %w", err)
		}
	}
	if err := m.svc.Uninstall(); err != nil {
		return fmt.Errorf("uninstall: %w", err)
	}
	return nil
}

// Start starts the installed service.
func (m *Manager) Start() error { return m.control("start", m.svc.Start) }

// Stop stops the service; it drains its sessions first.
func (m *Manager) Stop() error { return m.control("stop", m.svc.Stop) }

// Restart stops and starts the service.
func (m *Manager) Restart() error { return m.control("restart", m.svc.Restart) }

// control runs a command of the service manager, where there is one.
func (m *Manager) control(op string, fn func() error) error {
	if err := CanInstall(); err != nil {
		return err
	}
	if err := fn(); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	return nil
}

// Status says whether the service runs: "running", "stopped", or an error
// that says it is not installed.
func (m *Manager) Status() (string, error) {
	if err := CanInstall(); err != nil {
		return "", err
	}
	st, err := m.svc.Status()
	switch {
	case errors.Is(err, kservice.ErrNotInstalled):
		return "", ErrNotInstalled
	case err != nil:
		return "", fmt.Errorf("status: %w", err)
	case st == kservice.StatusRunning:
		return "running", nil
	case st == kservice.StatusStopped:
		return "stopped", nil
	}
	return "unknown", nil
}

// ErrNotInstalled is returned by Status when there is no wsbridge service.
var ErrNotInstalled = errors.New("service: wsbridge is not installed as a service")
