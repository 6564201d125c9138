package loadtest

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/wsbridge/wsbridge/internal/wsframe"
)

// The setup run's WebSocket client is written by hand: the handshake, the
// one-byte echo and the close handshake, with the frames RFC 6455 asks of
// a client (masked, a fresh key each). The general client (dialWS) goes
// through net/http's client and the library, and cost this tool about
// twice the CPU of the bridge under test per session: on a shared machine
// that CPU is taken from the bridge, and a setup rate measures the bridge.
// The plain TCP runs have no such handicap either.

// wsGUID is RFC 6455's handshake constant.
const wsGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

var errHandshake = errors.New("loadtest: handshake refused")

// setupWS opens a session to the ws:// URL u, echoes one byte through it
// and closes it with 1000, waiting for the bridge's close frame.
func setupWS(ctx context.Context, u *url.URL, b64 bool) error {
	c, err := (&net.Dialer{}).DialContext(ctx, "tcp", hostPort(u))
	if err != nil {
		return fmt.Errorf("%w: dial: %v", ErrDropped, err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(Stall))
	br := bufio.NewReaderSize(c, 512)

	var nonce [16]byte
	binary.LittleEndian.PutUint64(nonce[:8], rand.Uint64())
	binary.LittleEndian.PutUint64(nonce[8:], rand.Uint64())
	key := base64.StdEncoding.EncodeToString(nonce[:])
	proto := "binary"
	if b64 {
		proto = "base64"
	}
	path := u.RequestURI()
	host := strings.ToLower(u.Host)
	req := "GET " + path + " HTTP/1.1\r\nHost: " + host +
		"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: " + key +
		"\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: " + proto +
		"\r\nOrigin: http://" + host + "\r\n\r\n"
	if _, err := io.WriteString(c, req); err != nil {
		return failure(err, "sending the handshake", 0)
	}
	if err := readUpgrade(br, key); err != nil {
		return err
	}

	payload := append(header(opEcho, 0, 0), 'x')
	op := byte(0x2)
	if b64 {
		payload = []byte(base64.StdEncoding.EncodeToString(payload))
		op = 0x1
	}
	if err := writeFrame(c, op, payload); err != nil {
		return failure(err, "sending", 0)
	}
	for {
		op, p, err := readFrame(br)
		if err != nil {
			return failure(err, "waiting for the echo", 0)
		}
		if op == 0x8 {
			return fmt.Errorf("%w: closed before the echo", ErrDropped)
		}
		if op > 0x7 { // a ping or pong
			continue
		}
		if b64 {
			if p, err = base64.StdEncoding.DecodeString(string(p)); err != nil {
				return fmt.Errorf("%w: the echo: %v", ErrCorrupt, err)
			}
		}
		if !bytes.Equal(p, []byte{'x'}) {
			return fmt.Errorf("%w: the echo", ErrCorrupt)
		}
		break
	}
	if err := writeFrame(c, 0x8, []byte{0x03, 0xe8}); err != nil {
		return failure(err, "closing", 1)
	}
	for {
		op, _, err := readFrame(br)
		if err != nil {
			return failure(err, "waiting for the close frame", 1)
		}
		if op == 0x8 {
			return nil
		}
	}
}

func hostPort(u *url.URL) string {
	if u.Port() != "" {
		return u.Host
	}
	return net.JoinHostPort(u.Hostname(), "80")
}

// readUpgrade reads the response head and checks that it is a 101 with
// the accept key for key.
func readUpgrade(br *bufio.Reader, key string) error {
	status, err := br.ReadString('\n')
	if err != nil {
		return failure(err, "waiting for the handshake", 0)
	}
	if !strings.HasPrefix(status, "HTTP/1.1 101 ") {
		return fmt.Errorf("%w: %s", errHandshake, strings.TrimSpace(status))
	}
	sum := sha1.Sum([]byte(key + wsGUID))
	want := base64.StdEncoding.EncodeToString(sum[:])
	accepted := false
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return failure(err, "reading the handshake", 0)
		}
		line = strings.TrimRight(line, "\r\n")
		if line == "" {
			break
		}
		name, value, _ := strings.Cut(line, ":")
		if strings.EqualFold(name, "Sec-WebSocket-Accept") && strings.TrimSpace(value) == want {
			accepted = true
		}
	}
	if !accepted {
		return fmt.Errorf("%w: no or a wrong Sec-WebSocket-Accept", errHandshake)
	}
	return nil
}

// writeFrame writes one final, masked frame in one write.
func writeFrame(w io.Writer, op byte, p []byte) error {
	_, err := w.Write(wsframe.AppendClient(make([]byte, 0, 14+len(p)), true, op, p, rand.Uint32()))
	return err
}

// errFrame is a frame a server may not send: masked, or over 1 MiB here.
var errFrame = errors.New("loadtest: bad frame from the bridge")

// readFrame reads one frame from the bridge (unmasked, as servers send).
func readFrame(br *bufio.Reader) (byte, []byte, error) {
	var h [2]byte
	if _, err := io.ReadFull(br, h[:]); err != nil {
		return 0, nil, err
	}
	if h[1]&0x80 != 0 {
		return 0, nil, errFrame
	}
	n := uint64(h[1] & 0x7f)
	switch n {
	case 126:
		var l [2]byte
		if _, err := io.ReadFull(br, l[:]); err != nil {
			return 0, nil, err
		}
		n = uint64(binary.BigEndian.Uint16(l[:]))
	case 127:
		var l [8]byte
		if _, err := io.ReadFull(br, l[:]); err != nil {
			return 0, nil, err
		}
		n = binary.BigEndian.Uint64(l[:])
	}
	if n > 1<<20 {
		return 0, nil, errFrame
	}
	p := make([]byte, n)
	if _, err := io.ReadFull(br, p); err != nil {
		return 0, nil, err
	}
	return h[0] & 0x0f, p, nil
}
