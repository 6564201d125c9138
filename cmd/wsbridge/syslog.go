package main

import (
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"time"
)

// facilityDaemon is syslog's facility for system daemons.
const facilityDaemon = 3

// dialSyslog connects to a syslog daemon: a Unix datagram socket path
// ("/dev/log") or "udp:host:port". Each log line is one datagram.
func dialSyslog(addr string) (net.Conn, error) {
	if hp, ok := strings.CutPrefix(addr, "udp:"); ok {
		return net.Dial("udp", hp)
	}
	c, err := net.Dial("unixgram", addr)
	if err != nil {
		// Some daemons listen on a stream socket.
		if sc, serr := net.Dial("unix", addr); serr == nil {
			return sc, nil
		}
	}
	return c, err
}

// newSyslogHandler writes records with an RFC 5424 header, or with the
// older RFC 3164 "<PRI>tag[pid]: " when legacy is set (websockify's
// --legacy-syslog).
func newSyslogHandler(c net.Conn, level slog.Leveler, legacy bool) slog.Handler {
	host, _ := os.Hostname()
	if host == "" {
		host = "-"
	}
	pid := os.Getpid()
	return newLineHandler(level, true, func(l slog.Level, line string) error {
		pri := facilityDaemon*8 + priority(l)
		var err error
		if legacy {
			_, err = fmt.Fprintf(c, "<%d>wsbridge[%d]: %s", pri, pid, line)
		} else {
			_, err = fmt.Fprintf(c, "<%d>1 %s %s wsbridge %d - - %s", pri, time.Now().UTC().Format(time.RFC3339Nano), host, pid, line)
		}
		return err
	})
}
