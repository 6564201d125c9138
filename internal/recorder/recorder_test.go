package recorder

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wsbridge/wsbridge/bridge"
	"github.com/wsbridge/wsbridge/targets"
)

type record struct {
	dir  byte
	at   time.Duration
	data []byte
}

// parseRaw reads a .wsrec file as the package doc describes it.
func parseRaw(t *testing.T, b []byte) (map[string]string, []record) {
	t.Helper()
	magic := "WSBRIDGE-RECORDING 1\n"
	if !bytes.HasPrefix(b, []byte(magic)) {
		t.Fatalf("no magic line: %q", b[:min(len(b), 40)])
	}
	b = b[len(magic):]
	nl := bytes.IndexByte(b, '\n')
	var head map[string]string
	if err := json.Unmarshal(b[:nl], &head); err != nil {
		t.Fatalf("header line %q: %v", b[:nl], err)
	}
	b = b[nl+1:]
	var recs []record
	for len(b) > 0 {
		if len(b) < 13 {
			t.Fatalf("truncated record: %d bytes left", len(b))
		}
		n := binary.BigEndian.Uint32(b[9:13])
		if uint32(len(b)-13) < n {
			t.Fatalf("record claims %d bytes, %d left", n, len(b)-13)
		}
		recs = append(recs, record{b[0], time.Duration(binary.BigEndian.Uint64(b[1:9])) * time.Microsecond, b[13 : 13+n]})
		b = b[13+n:]
	}
	return head, recs
}

func newRecorder(t *testing.T, o Options) (*Recorder, *bytes.Buffer) {
	t.Helper()
	logs := &bytes.Buffer{}
	o.Logger = slog.New(slog.NewTextHandler(logs, nil))
	if o.Dir == "" {
		o.Dir = filepath.Join(t.TempDir(), "rec")
	}
	r, err := New(&o)
	if err != nil {
		t.Fatal(err)
	}
	return r, logs
}

func onlyFile(t *testing.T, dir string) []byte {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(dir, "*"))
	if len(files) != 1 {
		t.Fatalf("want one recording in %s, got %v", dir, files)
	}
	b, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestRawFormat(t *testing.T) {
	r, _ := newRecorder(t, Options{})
	start := time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)
	rec := r.Record(bridge.RecordingInfo{Target: targets.Target{Name: "ssh box"}, Format: "raw", Subprotocol: "binary", Start: start})
	all := make([]byte, 256)
	for i := range all {
		all[i] = byte(i)
	}
	rec.Frame(true, 1500*time.Microsecond, []byte("SSH-2.0-client\r\n"))
	rec.Frame(false, 2*time.Second, all)
	rec.Frame(true, 3*time.Second, nil)
	if err := rec.Close(); err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(r.opts.Dir, "ssh_box-20261121T100000Z-*.wsrec"))
	if len(files) != 1 {
		t.Fatalf("recording file: %v", files)
	}
	b, _ := os.ReadFile(files[0])
	head, recs := parseRaw(t, b)
	if head["target"] != "ssh box" || head["subprotocol"] != "binary" || head["start"] != "2026-11-21T10:00:00Z" {
		t.Errorf("header %v", head)
	}
	want := []record{{'>', 1500 * time.Microsecond, []byte("SSH-2.0-client\r\n")}, {'<', 2 * time.Second, all}, {'>', 3 * time.Second, nil}}
	if len(recs) != len(want) {
		t.Fatalf("%d records, want %d", len(recs), len(want))
	}
	for i, w := range want {
		if recs[i].dir != w.dir || recs[i].at != w.at || !bytes.Equal(recs[i].data, w.data) {
			t.Errorf("record %d = %c %v %q, want %c %v %q", i, recs[i].dir, recs[i].at, recs[i].data, w.dir, w.at, w.data)
		}
	}
	if fi, _ := os.Stat(files[0]); fi.Mode().Perm() != 0o600 {
		t.Errorf("recording mode %v, want 0600", fi.Mode().Perm())
	}
}

// TestFileCap: a recording stops at max_file_size, marked as cut, and
// later frames are dropped from it (the session itself goes on).
func TestFileCap(t *testing.T) {
	for _, format := range []string{"raw", "novnc"} {
		t.Run(format, func(t *testing.T) {
			const limit = 1000
			r, logs := newRecorder(t, Options{MaxFileSize: limit})
			rec := r.Record(bridge.RecordingInfo{Target: targets.Target{Name: "vnc"}, Format: format, Start: time.Now()})
			chunk := bytes.Repeat([]byte("x"), 90)
			for i := range 50 {
				rec.Frame(i%2 == 0, time.Duration(i)*time.Millisecond, chunk)
			}
			rec.Close()
			b := onlyFile(t, r.opts.Dir)
			if len(b) > limit {
				t.Errorf("file is %d bytes, cap %d", len(b), limit)
			}
			if len(b) < limit/2 {
				t.Errorf("file is %d bytes: cut far before the cap %d", len(b), limit)
			}
			if !strings.Contains(logs.String(), "recording cut") {
				t.Errorf("no log line for the cut:\n%s", logs)
			}
			if format == "raw" {
				_, recs := parseRaw(t, b)
				last := recs[len(recs)-1]
				if last.dir != '!' || len(last.data) != 0 {
					t.Errorf("last record %c %q, want the cut mark", last.dir, last.data)
				}
				if n := len(recs) - 1; n < 5 || n >= 50 {
					t.Errorf("%d frames kept of 50", n)
				}
			} else if !strings.HasSuffix(string(b), "'EOF'];\n") {
				t.Errorf("a cut novnc recording must still end the list: %q", b[max(0, len(b)-40):])
			}
		})
	}
}

// TestDirectoryCap: the directory never holds more than max_total_size;
// at the cap new recordings are not started, and removing files makes room
// again.
func TestDirectoryCap(t *testing.T) {
	for _, format := range []string{"raw", "novnc"} {
		for _, n := range []int{100, 37, 250, 999} {
			t.Run(format+"/"+strconv.Itoa(n), func(t *testing.T) { directoryCap(t, format, n) })
		}
	}
}

func directoryCap(t *testing.T, format string, n int) {
	const total = 3000
	r, logs := newRecorder(t, Options{MaxTotalSize: total, MaxFileSize: 100 << 20})
	chunk := bytes.Repeat([]byte("y"), n)
	started := 0
	for i := range 20 {
		rec := r.Record(bridge.RecordingInfo{Target: targets.Target{Name: "vnc"}, Format: format, Start: time.Now()})
		if rec == nil {
			continue
		}
		started++
		for j := range 4 {
			rec.Frame(j%2 == 0, time.Duration(i*10+j)*time.Millisecond, chunk)
		}
		rec.Close()
		size, err := dirSize(r.opts.Dir)
		if err != nil {
			t.Fatal(err)
		}
		if size > total {
			t.Fatalf("after %d recordings the directory holds %d bytes, cap %d", started, size, total)
		}
	}
	if started == 20 || started < 1 {
		t.Errorf("%d of 20 recordings started under a %d-byte cap", started, total)
	}
	if !strings.Contains(logs.String(), "not recording: the recording directory is at its cap") {
		t.Errorf("no log line for the refused recording:\n%s", logs)
	}

	files, _ := filepath.Glob(filepath.Join(r.opts.Dir, "*"))
	for _, f := range files {
		os.Remove(f)
	}
	r.mu.Lock()
	r.scanned = time.Time{} // the rescan waits 10 s; this test does not
	r.mu.Unlock()
	if rec := r.Record(bridge.RecordingInfo{Target: targets.Target{Name: "vnc"}, Format: format, Start: time.Now()}); rec == nil {
		t.Error("no recording after the directory was emptied")
	} else {
		rec.Close()
	}
}
