//go:build !purego

package bridge

import (
	"os"
	"runtime"
	"slices"
	"strings"
	"testing"
)

// TestAVX2Detection holds hasAVX2 to what Linux says of this machine's
// CPU (its flags in /proc/cpuinfo, which the kernel shows only when it
// saves the AVX state too).
func TestAVX2Detection(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("reads /proc/cpuinfo")
	}
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(b)) {
		name, flags, ok := strings.Cut(line, ":")
		if !ok || strings.TrimSpace(name) != "flags" {
			continue
		}
		want := slices.Contains(strings.Fields(flags), "avx2")
		if got := hasAVX2(); got != want {
			t.Fatalf("hasAVX2() = %v; /proc/cpuinfo has avx2: %v", got, want)
		}
		return
	}
	t.Fatal("no flags line in /proc/cpuinfo")
}
