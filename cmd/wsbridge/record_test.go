package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/wsbridge/wsbridge/internal/testenv"
)

// TestRecordWebsockifyFormat records a session with websockify's --record
// and loads the file in node the way noVNC's player does: a script that
// defines VNC_frame_data, one character per byte after "{MS{" or "}MS}".
func TestRecordWebsockifyFormat(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("node is missing: apt-get install nodejs")
		}
		t.Skip("node is missing: apt-get install nodejs")
	}
	echo := testenv.Listen(t, "tcp", "127.0.0.1:0", testenv.Echo)
	file := filepath.Join(t.TempDir(), "rec")
	d := startDaemon(t, "--record", file, "127.0.0.1:"+freePort(t), echo)
	ws, _, err := websocket.Dial(t.Context(), "ws://"+d.addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	payload := []byte("it's a \\ test \x00\x01\xff\n")
	ws.Write(t.Context(), websocket.MessageBinary, payload)
	if _, p, err := ws.Read(t.Context()); err != nil || string(p) != string(payload) {
		t.Fatalf("echo: %q %v", p, err)
	}
	ws.Close(websocket.StatusNormalClosure, "")
	if !d.waitLog(t, "msg=session") {
		t.Fatal("session did not end")
	}
	time.Sleep(100 * time.Millisecond)
	script := `const fs = require("fs"); eval(fs.readFileSync(process.argv[1], "latin1") +
"; console.log(JSON.stringify({enc: VNC_frame_encoding, frames: VNC_frame_data.map(f => f === 'EOF' ? f : [f[0], Array.from(f.slice(f.indexOf(f[0], 1) + 1), c => c.charCodeAt(0))])}))");`
	out, err := exec.Command(node, "-e", script, file+".1").CombinedOutput()
	if err != nil {
		t.Fatalf("node could not load the recording: %v\n%s", err, out)
	}
	var got struct {
		Enc    string
		Frames []any
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if got.Enc != "binary" || len(got.Frames) != 3 || got.Frames[2] != "EOF" {
		t.Fatalf("recording = %s", out)
	}
	for i, mark := range []string{"}", "{"} {
		f := got.Frames[i].([]any)
		var b []byte
		for _, c := range f[1].([]any) {
			b = append(b, byte(c.(float64)))
		}
		if f[0] != mark || string(b) != string(payload) {
			t.Errorf("frame %d = %s %q, want %s %q", i, f[0], b, mark, payload)
		}
	}
	if !strings.Contains(d.log(), "msg=recording") {
		t.Errorf("the recording is not logged:\n%s", d.log())
	}
}
