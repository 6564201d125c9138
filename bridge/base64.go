package bridge

import (
	"bytes"
	"encoding/base64"
	"errors"
	"io"
)

// errBase64 means a client message in a base64 session was not valid
// standard base64 (RFC 4648 with padding). The session closes with 1007.
var errBase64 = errors.New("invalid base64 in message")

// b64Decoder decodes one WebSocket message of base64 as it arrives in chunks
// of any size, so a message never has to be held whole. It is strict: only
// the standard alphabet, padding only at the end of the message, and no line
// breaks (which encoding/base64 would skip only when they happen to fall
// inside one chunk).
type b64Decoder struct {
	carry  [4]byte
	n      int  // bytes in carry
	padded bool // a quad with padding ended the data
}

func (d *b64Decoder) reset() { d.n, d.padded = 0, false }

// decodedLen is the largest output decode writes for n input bytes.
func decodedLen(n int) int { return (n+3)/4*3 + 3 }

// decode appends nothing: it writes the bytes of src that complete quads into
// dst (at least decodedLen(len(src)) long) and keeps up to three bytes for the
// next call.
func (d *b64Decoder) decode(dst, src []byte) (int, error) {
	if len(src) == 0 {
		return 0, nil
	}
	if d.padded {
		return 0, errBase64
	}
	out := 0
	if d.n > 0 {
		k := copy(d.carry[d.n:], src)
		d.n += k
		src = src[k:]
		if d.n < 4 {
			return 0, nil
		}
		m, err := d.quads(dst, d.carry[:])
		if err != nil {
			return 0, err
		}
		out, d.n = m, 0
		if d.padded && len(src) > 0 {
			return 0, errBase64
		}
	}
	whole := len(src) &^ 3
	if whole > 0 {
		m, err := d.quads(dst[out:], src[:whole])
		if err != nil {
			return 0, err
		}
		out += m
	}
	d.n = copy(d.carry[:], src[whole:])
	if d.padded && d.n > 0 {
		return 0, errBase64
	}
	return out, nil
}

// quads decodes whole quads. len(src) is a multiple of four.
func (d *b64Decoder) quads(dst, src []byte) (int, error) {
	if bytes.IndexByte(src, '\n') >= 0 || bytes.IndexByte(src, '\r') >= 0 {
		return 0, errBase64
	}
	n, err := base64.StdEncoding.Decode(dst, src)
	if err != nil {
		return 0, errBase64
	}
	if src[len(src)-1] == '=' {
		d.padded = true
	}
	return n, nil
}

// finish reports whether the message ended on a quad boundary.
func (d *b64Decoder) finish() error {
	if d.n != 0 {
		return errBase64
	}
	return nil
}

// copyMessage copies one message from r to w through buf, in writes of at
// most chunk bytes. With dec it decodes base64 as the message streams in:
// the first half of buf takes base64, the second half the bytes it decodes
// to. w's errors come back as w returned them; a decoding error is
// errBase64.
func copyMessage(w io.Writer, r io.Reader, buf []byte, chunk int, dec *b64Decoder) error {
	src, dst := buf[:min(len(buf), chunk)], []byte(nil)
	if dec != nil {
		dec.reset()
		half := len(buf) / 2
		src, dst = buf[:half], buf[half:]
		src = src[:min(len(src), (len(dst)-3)/3*4, max(chunk/3*4, 4))]
	}
	for {
		n, err := r.Read(src)
		out := src[:n]
		if dec != nil && n > 0 {
			m, derr := dec.decode(dst, out)
			if derr != nil {
				return derr
			}
			out = dst[:m]
		}
		if len(out) > 0 {
			if _, werr := w.Write(out); werr != nil {
				return werr
			}
		}
		if err == io.EOF {
			if dec != nil {
				return dec.finish()
			}
			return nil
		}
		if err != nil {
			return err
		}
	}
}
