package targets

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

// CheckTargetForm says what the fuzzers of this package and of targets_test
// hold every parsed target to: a tcp address that parses back unchanged,
// or an absolute socket path.
func CheckTargetForm(tg Target) error {
	switch tg.Network {
	case "tcp":
		back, err := ParseAddress(tg.Address)
		if err != nil || back.Address != tg.Address {
			return fmt.Errorf("address %q does not parse back: %v", tg.Address, err)
		}
	case "unix":
		if !strings.HasPrefix(tg.Address, "/") {
			return fmt.Errorf("relative socket %q", tg.Address)
		}
	default:
		return fmt.Errorf("network %q", tg.Network)
	}
	return nil
}

// FuzzJWTClaims feeds claim sets to the code that turns websockify's
// "host" and "port" claims into a target: it must never panic, and what it
// accepts must be a target the bridge can dial and print back.
func FuzzJWTClaims(f *testing.F) {
	for _, s := range []string{
		`{"host":"10.0.0.5","port":5901}`, `{"host":"h","port":"22"}`, `{"host":"unix_socket","port":"/run/a"}`,
		`{"host":"[::1]","port":1}`, `{"host":"::1","port":1}`, `{"host":"h","port":-1}`, `{"host":"h","port":1.5}`,
		`{"host":"h","port":null}`, `{"host":"a/b","port":1}`, `{"host":"h","port":"1:2"}`, `{"exp":"x"}`, `[]`,
		`{"host":"h","port":99999999999999999999}`, `{"host":"unix_socket","port":"rel"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var c jwtClaims
		if json.Unmarshal(data, &c) != nil {
			return
		}
		tg, err := c.target()
		if err != nil {
			return
		}
		if err := CheckTargetForm(tg); err != nil {
			t.Fatalf("claims %s: %v", data, err)
		}
	})
}
