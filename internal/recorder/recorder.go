// Package recorder writes session recordings to a directory: websockify's
// --record format, which noVNC's player replays for VNC sessions, or a raw
// timestamped format for any protocol. Every recording is bounded, and so
// is the directory.
//
// The raw format ("raw", files ending in .wsrec) is:
//
//	"WSBRIDGE-RECORDING 1\n"
//	one line of JSON: {"target": NAME, "start": RFC 3339 time, "subprotocol": NAME}
//	records, each: direction byte ('>' client to target, '<' target to
//	client, '!' the recording was cut here by a cap), 8 bytes big-endian
//	microseconds since the start, 4 bytes big-endian payload length, payload
//
// The novnc format (files ending in .js) is a script that sets
// VNC_frame_encoding = 'binary' and VNC_frame_data to a list of strings:
// "{MS{DATA" for bytes from the target, "}MS}DATA" for bytes from the
// client, where MS is milliseconds since the start and DATA holds one
// character per byte, and the last entry is "EOF". A cut recording ends
// there too.
package recorder

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wsbridge/wsbridge/bridge"
)

// Options configure a Recorder.
type Options struct {
	// Dir holds the recordings; it is made (mode 0700) when missing.
	Dir string
	// MaxFileSize cuts a recording at this many bytes. Default 100 MiB.
	MaxFileSize int64
	// MaxTotalSize is what the directory may hold; past it recordings are
	// cut and new ones are not started, until files are removed. Default
	// 1 GiB.
	MaxTotalSize int64
	// Prefix, when set, names the files websockify's way: Prefix.1,
	// Prefix.2, ... in Dir (--record FILE). By default they are named
	// TARGET-TIME-N.js or .wsrec.
	Prefix string
	// Logger receives a line per recording and per cut. Default
	// slog.Default().
	Logger *slog.Logger
}

// Recorder makes recordings. Its methods may be called from several
// goroutines.
type Recorder struct {
	opts Options
	log  *slog.Logger
	used atomic.Int64 // bytes in Dir
	seq  atomic.Uint64

	mu      sync.Mutex
	scanned time.Time
}

var _ bridge.Recorder = (*Recorder)(nil)

// New makes the directory if needed and counts what it holds.
func New(o *Options) (*Recorder, error) {
	r := &Recorder{opts: *o, log: o.Logger}
	if r.log == nil {
		r.log = slog.Default()
	}
	if r.opts.MaxFileSize <= 0 {
		r.opts.MaxFileSize = 100 << 20
	}
	if r.opts.MaxTotalSize <= 0 {
		r.opts.MaxTotalSize = 1 << 30
	}
	if err := os.MkdirAll(r.opts.Dir, 0o700); err != nil {
		return nil, err
	}
	n, err := dirSize(r.opts.Dir)
	if err != nil {
		return nil, err
	}
	r.used.Store(n)
	return r, nil
}

func dirSize(dir string) (int64, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return 0, err
	}
	var n int64
	for _, e := range entries {
		if info, err := e.Info(); err == nil && info.Mode().IsRegular() {
			n += info.Size()
		}
	}
	return n, nil
}

// full reports whether the directory lacks room for need more bytes. Once
// it does, the directory is counted again (at most every 10 s) so that
// removing files makes room.
func (r *Recorder) full(need int64) bool {
	if r.used.Load()+need <= r.opts.MaxTotalSize {
		return false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if time.Since(r.scanned) >= 10*time.Second {
		r.scanned = time.Now()
		if n, err := dirSize(r.opts.Dir); err == nil {
			r.used.Store(n)
		}
	}
	return r.used.Load()+need > r.opts.MaxTotalSize
}

// Record starts a recording in the format the target's settings name.
func (r *Recorder) Record(info bridge.RecordingInfo) bridge.Recording {
	format := info.Format
	name := bridge.MetricLabel(info.Target)
	ext := ".js"
	var head []byte
	if format == "raw" {
		ext = ".wsrec"
		meta, _ := json.Marshal(map[string]string{"target": name, "start": info.Start.UTC().Format(time.RFC3339Nano), "subprotocol": info.Subprotocol})
		head = append(append([]byte("WSBRIDGE-RECORDING 1\n"), meta...), '\n')
	} else {
		head = []byte("var VNC_frame_encoding = 'binary';\nvar VNC_frame_data = [\n")
	}
	// The header and the trailer must fit, so the directory never holds
	// more than max_total_size.
	if r.full(int64(len(head)) + trailer) {
		r.log.Warn("not recording: the recording directory is at its cap", "dir", r.opts.Dir, "max_total_size", r.opts.MaxTotalSize, "target", name)
		return nil
	}
	n := r.seq.Add(1)
	base := fmt.Sprintf("%s-%s-%d%s", safeName(name), info.Start.UTC().Format("20060102T150405Z"), n, ext)
	if r.opts.Prefix != "" {
		base = r.opts.Prefix + "." + strconv.FormatUint(n, 10)
	}
	path := filepath.Join(r.opts.Dir, base)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		r.log.Error("not recording", "err", err, "target", name)
		return nil
	}
	rec := &recording{r: r, f: f, w: bufio.NewWriterSize(f, 32<<10), path: path, raw: format == "raw"}
	rec.write(head)
	r.log.Info("recording", "file", path, "target", name, "format", format)
	return rec
}

// safeName keeps a target name usable as a file name.
func safeName(s string) string {
	b := []byte(s)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			b[i] = '_'
		}
	}
	return string(b)
}

type recording struct {
	r    *Recorder
	path string
	raw  bool

	mu      sync.Mutex
	f       *os.File
	w       *bufio.Writer
	size    int64
	stopped bool // cut by a cap or an error; nothing more is written
	scratch []byte
}

// write adds p to the file and counts it, or reports false.
func (c *recording) write(p []byte) bool {
	if _, err := c.w.Write(p); err != nil {
		c.r.log.Error("recording stopped", "file", c.path, "err", err)
		c.stopped = true
		return false
	}
	c.size += int64(len(p))
	c.r.used.Add(int64(len(p)))
	return true
}

// trailer is what every recording ends with; frames leave room for it.
const trailer = 16

func (c *recording) Frame(fromClient bool, at time.Duration, p []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped {
		return
	}
	c.scratch = c.encode(c.scratch[:0], fromClient, at, p)
	if c.size+int64(len(c.scratch))+trailer > c.r.opts.MaxFileSize || c.r.used.Load()+int64(len(c.scratch))+trailer > c.r.opts.MaxTotalSize {
		c.r.log.Warn("recording cut: size cap reached", "file", c.path, "max_file_size", c.r.opts.MaxFileSize, "max_total_size", c.r.opts.MaxTotalSize)
		c.cut(at)
		return
	}
	c.write(c.scratch)
}

func (c *recording) encode(b []byte, fromClient bool, at time.Duration, p []byte) []byte {
	if c.raw {
		dir := byte('<')
		if fromClient {
			dir = '>'
		}
		b = append(b, dir)
		b = binary.BigEndian.AppendUint64(b, uint64(at.Microseconds()))
		b = binary.BigEndian.AppendUint32(b, uint32(len(p)))
		return append(b, p...)
	}
	mark := byte('{')
	if fromClient {
		mark = '}'
	}
	b = append(b, '\'', mark)
	b = strconv.AppendInt(b, at.Milliseconds(), 10)
	b = append(b, mark)
	for _, x := range p {
		switch {
		case x == '\'' || x == '\\':
			b = append(b, '\\', x)
		case x >= 0x20 && x < 0x7f:
			b = append(b, x)
		default:
			b = append(b, '\\', 'x', hex[x>>4], hex[x&15])
		}
	}
	return append(b, '\'', ',', '\n')
}

const hex = "0123456789abcdef"

// cut ends the recording early, marked so a reader knows.
func (c *recording) cut(at time.Duration) {
	if c.raw {
		b := []byte{'!'}
		b = binary.BigEndian.AppendUint64(b, uint64(at.Microseconds()))
		c.write(binary.BigEndian.AppendUint32(b, 0))
	}
	c.stopped = true
}

func (c *recording) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.raw {
		c.w.WriteString("'EOF'];\n")
		c.size += 8
		c.r.used.Add(8)
	}
	err := c.w.Flush()
	if cerr := c.f.Close(); err == nil {
		err = cerr
	}
	return err
}
