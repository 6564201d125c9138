// Package systemd speaks the two small protocols a service needs with
// systemd: sockets passed at start (sd_listen_fds(3)) and state
// notifications (sd_notify(3)). Both are plain environment variables and
// a datagram socket; outside systemd every function does nothing.
package systemd

import "net"

// Socket is one passed listening socket.
type Socket struct {
	Name     string // its FileDescriptorName=, "" when not named
	Listener net.Listener
}
