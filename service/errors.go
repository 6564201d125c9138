package service

import "errors"

var errNoControl = errors.New("service: reload through the service manager is for Windows; send SIGHUP (systemctl reload wsbridge)")

// ErrNoInitSystem is returned by Install where no service manager runs.
var ErrNoInitSystem = errors.New("service: no init system to install into")

var errConfigureWindows = errors.New("service: configure sets a Windows service's recovery actions (the MSI runs it); elsewhere install writes everything")
