package authfile_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/wsbridge/wsbridge/internal/authfile"
)

func TestParseHtpasswd(t *testing.T) {
	h, _ := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
	for _, tt := range []struct {
		name, file, wantErr string
	}{
		{"bcrypt", "# users\nalice:" + string(h) + "\n\n", ""},
		{"2y prefix", "alice:$2y$" + string(h)[4:] + "\n", ""},
		{"md5", "alice:$apr1$abc$def\n", "not a bcrypt hash"},
		{"sha1", "alice:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\n", "not a bcrypt hash"},
		{"no colon", "alice\n", "want user:bcrypt-hash"},
		{"twice", "a:" + string(h) + "\na:" + string(h) + "\n", "listed twice"},
	} {
		_, err := authfile.ParseHtpasswd([]byte(tt.file))
		if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
			t.Errorf("%s: err = %v, want %q", tt.name, err, tt.wantErr)
		}
	}
}

func TestHtpasswdCheckAndReload(t *testing.T) {
	p := filepath.Join(t.TempDir(), "htpasswd")
	h1, _ := bcrypt.GenerateFromPassword([]byte("old"), bcrypt.MinCost)
	os.WriteFile(p, []byte("alice:"+string(h1)+"\n"), 0o600)
	hp, err := authfile.NewHtpasswd(p, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Twice: the second answer comes from what was remembered.
	for range 2 {
		if !hp.CheckPassword("alice", "old") || hp.CheckPassword("alice", "new") || hp.CheckPassword("bob", "old") {
			t.Fatal("wrong answers before the change")
		}
	}
	h2, _ := bcrypt.GenerateFromPassword([]byte("new"), bcrypt.MinCost)
	os.WriteFile(p, []byte("alice:"+string(h2)+"\n"), 0o600)
	time.Sleep(1100 * time.Millisecond) // the file is checked at most once a second
	if hp.CheckPassword("alice", "old") || !hp.CheckPassword("alice", "new") {
		t.Fatal("the changed file is not in use (a remembered password outlived it)")
	}
	os.WriteFile(p, []byte("garbage\n"), 0o600)
	time.Sleep(1100 * time.Millisecond)
	if !hp.CheckPassword("alice", "new") {
		t.Fatal("a file that does not parse replaced the good one")
	}
}

func TestBearer(t *testing.T) {
	tok := strings.Repeat("k", 40)
	p := filepath.Join(t.TempDir(), "bearer")
	os.WriteFile(p, []byte("ci "+tok+"\nops sha256:"+"2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae"+"\n"), 0o600)
	b, err := authfile.NewBearer(p, nil)
	if err != nil {
		t.Fatal(err)
	}
	if name, ok := b.CheckBearer(tok); !ok || name != "ci" {
		t.Errorf("CheckBearer(token) = %q, %v", name, ok)
	}
	if name, ok := b.CheckBearer("foo"); !ok || name != "ops" { // sha256("foo")
		t.Errorf("CheckBearer by hash = %q, %v", name, ok)
	}
	if _, ok := b.CheckBearer(""); ok {
		t.Error("empty token accepted")
	}
	for _, bad := range []string{"ci short\n", "ci\n", "a " + tok + "\nb " + tok + "\n", "a " + tok + "\na " + tok + "x\n", "a sha256:zz\n"} {
		if _, err := authfile.ParseBearer([]byte(bad)); err == nil {
			t.Errorf("ParseBearer(%q) accepted", bad)
		}
	}
}
