//go:build linux

package systemd

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// firstFD is SD_LISTEN_FDS_START: passed sockets start at descriptor 3.
const firstFD = 3

// Listeners returns the sockets systemd passed to this process, in order,
// and unsets the variables so that children do not take them too. It
// returns nothing when the variables are absent or meant for another
// process.
func Listeners() ([]Socket, error) {
	defer func() {
		os.Unsetenv("LISTEN_PID")
		os.Unsetenv("LISTEN_FDS")
		os.Unsetenv("LISTEN_FDNAMES")
	}()
	pid, err := strconv.Atoi(os.Getenv("LISTEN_PID"))
	if err != nil || pid != os.Getpid() {
		return nil, nil
	}
	n, err := strconv.Atoi(os.Getenv("LISTEN_FDS"))
	if err != nil || n <= 0 {
		return nil, nil
	}
	names := strings.Split(os.Getenv("LISTEN_FDNAMES"), ":")
	var out []Socket
	for i := range n {
		fd := firstFD + i
		syscall.CloseOnExec(fd)
		f := os.NewFile(uintptr(fd), "systemd-socket-"+strconv.Itoa(fd))
		ln, err := net.FileListener(f)
		f.Close()
		if err != nil {
			for _, s := range out {
				s.Listener.Close()
			}
			return nil, fmt.Errorf("passed descriptor %d is not a listening stream socket: %w", fd, err)
		}
		s := Socket{Listener: ln}
		if i < len(names) && names[i] != "unknown" {
			s.Name = names[i]
		}
		out = append(out, s)
	}
	return out, nil
}

// Notify sends state ("READY=1", "STOPPING=1", ...) to the service
// manager. Without NOTIFY_SOCKET it does nothing and returns nil.
func Notify(state string) error {
	addr := os.Getenv("NOTIFY_SOCKET")
	if addr == "" {
		return nil
	}
	if addr[0] == '@' {
		addr = "\x00" + addr[1:] // an abstract socket
	} else if addr[0] != '/' {
		return errors.New("systemd: NOTIFY_SOCKET is neither a path nor an abstract socket")
	}
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: addr, Net: "unixgram"})
	if err != nil {
		return fmt.Errorf("systemd notify: %w", err)
	}
	defer c.Close()
	if _, err := c.Write([]byte(state)); err != nil {
		return fmt.Errorf("systemd notify: %w", err)
	}
	return nil
}

// Reloading is the notification a reload starts with: systemd wants the
// monotonic clock with it (Type=notify-reload), and READY=1 when done.
func Reloading() string {
	return "RELOADING=1\nMONOTONIC_USEC=" + strconv.FormatInt(monotonicMicros(), 10)
}

// JournalStream reports whether standard error is connected to the
// journal, as JOURNAL_STREAM says (systemd.exec(5)): then log lines should
// carry their priority as a "<N>" prefix and no time stamp of their own.
func JournalStream() bool {
	dev, ino, ok := strings.Cut(os.Getenv("JOURNAL_STREAM"), ":")
	if !ok {
		return false
	}
	var st syscall.Stat_t
	if err := syscall.Fstat(2, &st); err != nil {
		return false
	}
	return strconv.FormatUint(uint64(st.Dev), 10) == dev && strconv.FormatUint(st.Ino, 10) == ino
}
