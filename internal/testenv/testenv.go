// Package testenv holds helpers shared by tests that need real programs.
package testenv

import (
	"os"
	"os/exec"
	"testing"
)

// InCI reports whether the tests run under CI (CI=true), where a missing
// program is a failure, not a reason to skip.
func InCI() bool { return os.Getenv("CI") == "true" }

// Program returns the path of the named program. When it is missing the test
// skips with the name of the Debian package that provides it, or fails
// under CI.
func Program(t testing.TB, name, debianPackage string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	if InCI() {
		t.Fatalf("%s not found: install the Debian package %s (CI=true, so this is a failure)", name, debianPackage)
	}
	t.Skipf("%s not found: apt-get install %s", name, debianPackage)
	return ""
}
