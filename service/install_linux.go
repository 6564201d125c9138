//go:build linux

package service

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"strings"

	kservice "github.com/kardianos/service"
)

// CanInstall refuses where no init system would run the service. Without
// systemd as PID 1, kardianos/service falls back to SysV scripts, which in
// a container nothing ever runs: the install would "succeed" and do
// nothing. SysV is kept where PID 1 really is a SysV init.
func CanInstall() error {
	platform := kservice.ChosenSystem().String()
	if platform != "unix-systemv" {
		return nil
	}
	comm, _ := os.ReadFile("/proc/1/comm")
	pid1 := string(bytes.TrimSpace(comm))
	if pid1 == "init" {
		if _, err := os.Stat("/etc/init.d"); err == nil {
			return nil
		}
	}
	return fmt.Errorf("%w: PID 1 is %q, not systemd, OpenRC or a SysV init (a container?); run `wsbridge run -config FILE` as the container's command instead, or install on the host", ErrNoInitSystem, pid1)
}

// prepareAccount creates the wsbridge system user when the service runs as
// it and it does not exist yet; any other account must exist already.
func prepareAccount(spec Spec) error {
	name := spec.Account()
	if _, err := user.Lookup(name); err == nil {
		return nil
	}
	if name != Name {
		return fmt.Errorf("user %q does not exist: create it, or leave -user out to use the wsbridge system user", name)
	}
	out, err := exec.Command("useradd", "--system", "--user-group", "--no-create-home",
		"--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin",
		"--comment", "wsbridge WebSocket bridge", name).CombinedOutput()
	if err != nil {
		return fmt.Errorf("create the %s system user: %v: %s", name, err, strings.TrimSpace(string(out)))
	}
	return nil
}

func afterInstall(Spec) error { return nil }

// configure is for services the Windows MSI installed.
func configure(Spec) error { return errConfigureWindows }
