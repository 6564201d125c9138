//go:build !unix

package targets

import "io/fs"

func statSig(name string, fi fs.FileInfo) fileSig {
	return fileSig{name: name, size: fi.Size(), mtime: fi.ModTime()}
}
