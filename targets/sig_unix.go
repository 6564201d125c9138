//go:build unix

package targets

import (
	"io/fs"
	"syscall"
)

func statSig(name string, fi fs.FileInfo) fileSig {
	s := fileSig{name: name, size: fi.Size(), mtime: fi.ModTime()}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		s.ino = uint64(st.Ino)
	}
	return s
}
