package bridge

import (
	"time"

	"github.com/wsbridge/wsbridge/targets"
)

// Recorder makes the recordings of sessions (websockify's --record). It is
// asked once per session of a target whose Settings.Record is set, right
// after the upgrade, and may answer nil to record nothing (a cap reached, a
// disk that refuses): it logs why itself.
type Recorder interface {
	Record(info RecordingInfo) Recording
}

// RecordingInfo describes the session a recording is for.
type RecordingInfo struct {
	Target      targets.Target
	Format      string // "novnc" or "raw"
	Subprotocol string
	Mode        Mode
	Start       time.Time
}

// Recording receives the bytes of one session as they are relayed:
// fromClient says their direction, at is the time since the session
// started. Frame is called from both of the session's pumps, possibly at
// once, and must not keep p; Close is called once, after the last Frame.
type Recording interface {
	Frame(fromClient bool, at time.Duration, p []byte)
	Close() error
}
