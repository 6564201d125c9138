package main

import (
	"fmt"
	"os"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/gohcl"
	"github.com/hashicorp/hcl/v2/hclparse"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/hashicorp/hcl/v2/hclwrite"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/function"
)

// Config is the bridge.hcl schema. Durations and sizes are strings ("25s",
// "64KiB") that validate parses, so that a bad value is reported with its
// position; a bare number would decode into a time.Duration as nanoseconds.
// The websockify command line fills the same struct.
type Config struct {
	// Listen is host:port; [::]:port listens on every address.
	Listen string `hcl:"listen,optional"`
	// Web is a directory served as static files (noVNC), or "".
	Web string `hcl:"web,optional"`
	// DrainTimeout is how long a stopping wsbridge lets sessions run
	// before it closes them with 1001.
	DrainTimeout string `hcl:"drain_timeout,optional"`

	Log     *LogConfig     `hcl:"log,block"`
	HTTP    *HTTPConfig    `hcl:"http,block"`
	Session *SessionConfig `hcl:"session,block"`

	Targets    []TargetConfig    `hcl:"target,block"`
	TokenFiles []TokenFileConfig `hcl:"token_file,block"`
}

// LogConfig is the log block.
type LogConfig struct {
	Level  string `hcl:"level,optional"`  // debug, info, warn, error
	Format string `hcl:"format,optional"` // text or json
	File   string `hcl:"file,optional"`   // "" is standard error
}

// HTTPConfig is the http block: everything before the upgrade.
type HTTPConfig struct {
	HeaderTimeout string   `hcl:"header_timeout,optional"`
	MaxHeaderSize string   `hcl:"max_header_size,optional"`
	Origins       []string `hcl:"origins,optional"`
}

// SessionConfig is the session block: the life of one bridged client.
type SessionConfig struct {
	DialTimeout      string `hcl:"dial_timeout,optional"`
	WriteTimeout     string `hcl:"write_timeout,optional"`
	PingInterval     string `hcl:"ping_interval,optional"`
	PongTimeout      string `hcl:"pong_timeout,optional"`
	IdleTimeout      string `hcl:"idle_timeout,optional"`
	MaxLifetime      string `hcl:"max_lifetime,optional"`
	Linger           string `hcl:"linger,optional"`
	MessageLimit     string `hcl:"message_limit,optional"`
	ReadSize         string `hcl:"read_size,optional"`
	StrictText       bool   `hcl:"strict_text,optional"`
	DialAfterUpgrade bool   `hcl:"dial_after_upgrade,optional"`
}

// TargetConfig is a target block.
type TargetConfig struct {
	Name    string `hcl:"name,label"`
	Address string `hcl:"address"`
	Path    string `hcl:"path,optional"`
}

// TokenFileConfig is a token_file block.
type TokenFileConfig struct {
	Name string `hcl:"name,label"`
	Path string `hcl:"path"`
}

// defaultConfig holds every default; a file is decoded over it.
func defaultConfig() *Config {
	return &Config{
		Listen:       "127.0.0.1:6080",
		DrainTimeout: "10s",
		Log:          &LogConfig{Level: "info", Format: "text"},
		HTTP: &HTTPConfig{
			HeaderTimeout: "10s",
			MaxHeaderSize: "16KiB",
			Origins:       []string{},
		},
		Session: &SessionConfig{
			DialTimeout:  "10s",
			WriteTimeout: "30s",
			PingInterval: "25s",
			PongTimeout:  "15s",
			IdleTimeout:  "0s",
			MaxLifetime:  "0s",
			Linger:       "5s",
			MessageLimit: "64KiB",
			ReadSize:     "64KiB",
		},
	}
}

// embeddedConfig is what wsbridge runs with no arguments: the defaults and
// one target, the VNC server of display :0 on this machine.
func embeddedConfig() *Config {
	c := defaultConfig()
	c.Targets = []TargetConfig{{Name: "vnc", Address: "127.0.0.1:5900"}}
	return c
}

// source is a parsed bridge.hcl, kept for the positions of diagnostics.
type source struct {
	body *hclsyntax.Body // nil when the config came from the command line
}

// loadConfig parses and decodes the file over the defaults. A fresh parser
// each time, so a reload never sees a cached old file.
func loadConfig(path string) (*Config, *source, hcl.Diagnostics) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, hcl.Diagnostics{{
			Severity: hcl.DiagError,
			Summary:  "Cannot read configuration",
			Detail:   err.Error(),
		}}
	}
	return parseConfig(src, path)
}

func parseConfig(src []byte, filename string) (*Config, *source, hcl.Diagnostics) {
	p := hclparse.NewParser()
	f, diags := p.ParseHCL(src, filename)
	s := &source{}
	if diags.HasErrors() {
		return nil, s, diags
	}
	s.body, _ = f.Body.(*hclsyntax.Body)
	cfg := defaultConfig()
	diags = append(diags, gohcl.DecodeBody(f.Body, evalContext(), cfg)...)
	diags = append(diags, s.duplicateBlocks()...)
	return cfg, s, diags
}

// evalContext offers env("NAME") and env("NAME", "default") in expressions.
// A variable that is not set and has no default is an error at its call.
func evalContext() *hcl.EvalContext {
	env := function.New(&function.Spec{
		Params:   []function.Parameter{{Name: "name", Type: cty.String}},
		VarParam: &function.Parameter{Name: "default", Type: cty.String},
		Type:     function.StaticReturnType(cty.String),
		Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
			name := args[0].AsString()
			if v, ok := os.LookupEnv(name); ok {
				return cty.StringVal(v), nil
			}
			switch len(args) {
			case 1:
				return cty.NilVal, fmt.Errorf("environment variable %s is not set", name)
			case 2:
				return args[1], nil
			}
			return cty.NilVal, fmt.Errorf("env takes a name and at most one default")
		},
	})
	return &hcl.EvalContext{Functions: map[string]function.Function{"env": env}}
}

// duplicateBlocks reports labelled blocks whose type and name repeat, which
// gohcl does not detect.
func (s *source) duplicateBlocks() hcl.Diagnostics {
	if s.body == nil {
		return nil
	}
	var diags hcl.Diagnostics
	seen := map[string]*hclsyntax.Block{}
	for _, b := range s.body.Blocks {
		if len(b.Labels) == 0 {
			continue
		}
		key := b.Type + " " + b.Labels[0]
		if prev, ok := seen[key]; ok {
			r := b.DefRange()
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  fmt.Sprintf("Duplicate %s %q", b.Type, b.Labels[0]),
				Detail:   fmt.Sprintf("A %s named %q is already defined at %s.", b.Type, b.Labels[0], prev.DefRange()),
				Subject:  &r,
			})
			continue
		}
		seen[key] = b
	}
	return diags
}

// at returns the source range of an attribute, found by walking the blocks
// named in path: at("session", "dial_timeout"), at("target", "vnc",
// "address"), at("listen"). It returns nil when the value did not come from
// the file (a default, or the command line).
func (s *source) at(path ...string) *hcl.Range {
	if s == nil || s.body == nil {
		return nil
	}
	body := s.body
	for len(path) > 1 {
		var next *hclsyntax.Body
		for _, b := range body.Blocks {
			if b.Type != path[0] {
				continue
			}
			if len(b.Labels) > 0 {
				if len(path) < 3 || b.Labels[0] != path[1] {
					continue
				}
				path = path[1:]
			}
			next = b.Body
			break
		}
		if next == nil {
			return nil
		}
		body, path = next, path[1:]
	}
	if a, ok := body.Attributes[path[0]]; ok {
		r := a.Expr.Range()
		return &r
	}
	return nil
}

// formatConfig prints cfg as HCL, as `wsbridge check` shows it.
func formatConfig(cfg *Config) []byte {
	f := hclwrite.NewEmptyFile()
	gohcl.EncodeIntoBody(cfg, f.Body())
	return hclwrite.Format(f.Bytes())
}
