//go:build !linux && !windows

package service

// CanInstall allows launchd (macOS) and the BSDs' rc: they always run.
func CanInstall() error { return nil }

// prepareAccount creates nothing: the default macOS account is nobody,
// which always exists.
func prepareAccount(Spec) error { return nil }

func afterInstall(Spec) error { return nil }

// configure is for services the Windows MSI installed.
func configure(Spec) error { return errConfigureWindows }
