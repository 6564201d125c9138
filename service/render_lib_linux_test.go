package service

import (
	"testing"
	_ "unsafe" // go:linkname
)

// libraryFuncs is the library's pipeline function map on Linux (cmd,
// cmdEscape), reached for the same reason as libraryRender.
//
//go:linkname libraryFuncs github.com/kardianos/service.tfs
var libraryFuncs map[string]func(string) (string, error)

func TestSystemdFuncsMatchLibrary(t *testing.T) {
	for name, fn := range systemdFuncs {
		lib, ok := libraryFuncs[name]
		if !ok {
			t.Errorf("the library has no %q function", name)
			continue
		}
		for _, in := range []string{"", "/usr/bin/wsbridge", "/opt/ws bridge/x", `a"b`, `C:\x y\"z"`} {
			want, _ := lib(in)
			if got, _ := fn(in); got != want {
				t.Errorf("%s(%q) = %q, the library says %q", name, in, got, want)
			}
		}
	}
}
