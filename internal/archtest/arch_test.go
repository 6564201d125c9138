package archtest

import (
	"encoding/json"
	"errors"
	"io"
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/wsbridge/wsbridge"

// rules lists, for each library package, the packages of this module and
// the outside modules it may import. The standard library is always
// allowed; cmd/wsbridge and internal test helpers may import anything.
var rules = map[string]struct {
	internal []string
	external []string
}{
	"bridge":    {internal: []string{"targets", "ratelimit"}, external: []string{"github.com/coder/websocket", "github.com/pires/go-proxyproto"}},
	"targets":   {external: []string{"github.com/redis/go-redis/v9", "github.com/golang-jwt/jwt/v5"}},
	"ratelimit": {external: []string{"golang.org/x/time"}},
	"service":   {external: []string{"github.com/kardianos/service", "golang.org/x/sys"}},

	"internal/tlsfiles": {},
	"internal/authfile": {external: []string{"golang.org/x/crypto"}},
	"internal/systemd":  {external: []string{"golang.org/x/sys"}},
	"internal/recorder": {internal: []string{"bridge"}},
	"internal/metrics":  {internal: []string{"bridge"}, external: []string{"github.com/prometheus/client_golang"}},
	"internal/loadtest": {internal: []string{"internal/wsframe"}, external: []string{"github.com/coder/websocket"}},
	"internal/wsframe":  {},
}

type pkg struct {
	ImportPath string
	Imports    []string
	Standard   bool
}

func TestImportDirection(t *testing.T) {
	out, err := exec.Command("go", "list", "-json", module+"/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	seen := map[string]bool{}
	for {
		var p pkg
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		rel := strings.TrimPrefix(strings.TrimPrefix(p.ImportPath, module), "/")
		rule, ok := rules[rel]
		if !ok {
			continue
		}
		seen[rel] = true
		for _, imp := range p.Imports {
			if !strings.Contains(strings.Split(imp, "/")[0], ".") {
				continue // standard library
			}
			if r, ok := strings.CutPrefix(imp, module+"/"); ok {
				if !contains(rule.internal, r) {
					t.Errorf("%s imports %s: DESIGN.md section 3 allows it %v", rel, r, rule.internal)
				}
				continue
			}
			if !hasPrefixIn(imp, rule.external) {
				t.Errorf("%s imports %s: DESIGN.md section 3 allows it only %v", rel, imp, rule.external)
			}
		}
	}
	for _, must := range []string{"bridge", "targets"} {
		if !seen[must] {
			t.Errorf("package %s was not listed; the check did not run on it", must)
		}
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func hasPrefixIn(s string, prefixes []string) bool {
	for _, p := range prefixes {
		if s == p || strings.HasPrefix(s, p+"/") {
			return true
		}
	}
	return false
}
