package packaging

import (
	"os"
	"os/exec"
	"testing"
)

// TestCrossVet vets every package for the other operating systems of the
// release matrix: the Windows service code only compiles there.
func TestCrossVet(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	for _, goos := range []string{"windows", "darwin"} {
		cmd := exec.Command("go", "vet", "./...")
		cmd.Dir = ".."
		cmd.Env = append(os.Environ(), "GOOS="+goos, "GOARCH=arm64")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("GOOS=%s go vet ./...: %v\n%s", goos, err, out)
		}
	}
}
