package service

import (
	"strings"
	"testing"
	_ "unsafe" // go:linkname

	_ "github.com/kardianos/service"
)

// libraryRender is kardianos/service's own template engine, which Install
// runs on the SystemdScript and LaunchdConfig templates. It is not
// exported; reaching it from a test is the only way to check that Render
// (which prints and packages the unit) agrees with what Install writes.
//
//go:linkname libraryRender github.com/kardianos/service.renderTemplate
func libraryRender(text string, data map[string]any, funcs map[string]func(string) (string, error)) (string, error)

func TestRenderMatchesLibrary(t *testing.T) {
	data := func(s Spec) map[string]any {
		return map[string]any{
			"Description": "d", "Path": s.Executable, "Name": Name, "Dependencies": []string(nil),
			"Arguments": s.Arguments(), "ChRoot": "", "WorkingDirectory": s.workDir(), "UserName": s.Account(),
			"ReloadSignal": "", "PIDFile": "", "LogDirectory": "/var/log", "OutputFileSupport": "", "LimitNOFILE": "",
			"Restart": "always", "SuccessExitStatus": "", "EnvVars": []string{"Environment=A=1", "Environment=B=2"},
			"KeepAlive": "true", "RunAtLoad": "true", "SessionCreate": "false", "StandardOutPath": "", "StandardErrorPath": "",
		}
	}
	for _, c := range specs {
		s := c.spec
		s.OS = "linux"
		unit, err := s.unitTemplate()
		if err != nil {
			t.Fatal(err)
		}
		s.OS = "darwin"
		for _, tc := range []struct {
			name, tmpl string
			funcs      map[string]func(string) (string, error)
		}{
			{"systemd", unit, systemdFuncs},
			{"launchd", s.plistTemplate(), launchdFuncs},
			{"text", `{{if UserName}}u={{UserName | cmd}}{{else}}none{{end}} "{{range Arguments}}<{{. | cmdEscape}}>{{end}}"`, systemdFuncs},
		} {
			want, err := libraryRender(tc.tmpl, data(s), tc.funcs)
			if err != nil {
				t.Fatalf("%s/%s: the library refuses the template: %v", c.name, tc.name, err)
			}
			got, err := Render(tc.tmpl, data(s), tc.funcs)
			if err != nil || got != want {
				t.Errorf("%s/%s: Render differs from the library (%v):\n%s\nlibrary:\n%s", c.name, tc.name, err, got, want)
			}
			if strings.Contains(want, "{{") {
				t.Errorf("%s/%s: unexpanded action in %s", c.name, tc.name, want)
			}
		}
	}
}
