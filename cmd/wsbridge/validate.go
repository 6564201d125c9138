package main

import (
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"

	"github.com/wsbridge/wsbridge/bridge"
	"github.com/wsbridge/wsbridge/targets"
)

// settings is a validated Config in the types the packages take.
type settings struct {
	listen   string
	web      string
	drain    time.Duration
	logLevel slog.Level
	logJSON  bool
	logFile  string
	bridge   bridge.Options // without Logger and Files, which wiring adds
	routes   []targets.Route
	sources  []*sourceSpec // the token chain, in order
}

// validator collects every problem at once, each with its position when
// the value came from a file.
type validator struct {
	src   *source
	diags hcl.Diagnostics
}

func (v *validator) errorf(rng *hcl.Range, field, format string, args ...any) {
	v.diags = append(v.diags, &hcl.Diagnostic{
		Severity: hcl.DiagError,
		Summary:  fmt.Sprintf("Invalid %s", field),
		Detail:   fmt.Sprintf(format, args...),
		Subject:  rng,
	})
}

// duration parses a duration attribute; "0s" and "0" mean off where the
// field allows it.
func (v *validator) duration(s string, path ...string) time.Duration {
	d, _ := v.parseDuration(s, path...)
	return d
}

// positive is duration for fields where zero makes no sense.
func (v *validator) positive(s string, path ...string) time.Duration {
	d, ok := v.parseDuration(s, path...)
	if ok && d == 0 {
		v.errorf(v.src.at(path...), strings.Join(path, "."), "must be more than zero")
	}
	return d
}

func (v *validator) parseDuration(s string, path ...string) (time.Duration, bool) {
	if s == "0" {
		return 0, true
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		v.errorf(v.src.at(path...), strings.Join(path, "."), "%q is not a duration: write it as a string such as \"30s\", \"5m\" or \"1h30m\"", s)
		return 0, false
	}
	return d, true
}

var sizeUnits = []struct {
	suffix string
	mult   int64
}{
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30},
	{"KB", 1000}, {"MB", 1000 * 1000}, {"GB", 1000 * 1000 * 1000},
	{"B", 1}, {"", 1},
}

// parseSize reads "64KiB", "1MB", "512B" or "512".
func parseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	for _, u := range sizeUnits {
		num, ok := strings.CutSuffix(t, u.suffix)
		if !ok {
			continue
		}
		n, err := strconv.ParseInt(strings.TrimSpace(num), 10, 64)
		if err != nil || n < 0 || n > (1<<40)/u.mult {
			break
		}
		return n * u.mult, nil
	}
	return 0, fmt.Errorf("%q is not a size: write it as a string such as \"64KiB\", \"1MiB\" or \"512B\"", s)
}

func (v *validator) size(s string, lo, hi int64, path ...string) int64 {
	n, err := parseSize(s)
	if err != nil {
		v.errorf(v.src.at(path...), strings.Join(path, "."), "%v", err)
		return 0
	}
	if n < lo || n > hi {
		v.errorf(v.src.at(path...), strings.Join(path, "."), "%s is outside %d bytes to %d bytes", s, lo, hi)
	}
	return n
}

// validate checks everything and maps the Config to settings.
func validate(cfg *Config, src *source) (*settings, hcl.Diagnostics) {
	v := &validator{src: src}
	st := &settings{web: cfg.Web}

	// Port 0 asks the system for a free port; the log says which.
	if _, port, err := net.SplitHostPort(cfg.Listen); err != nil || (port != "0" && !validPort(port)) {
		v.errorf(src.at("listen"), "listen", "%q: want host:port, such as \"127.0.0.1:6080\" or \"[::]:6080\"", cfg.Listen)
	}
	st.listen = cfg.Listen
	st.drain = v.duration(cfg.DrainTimeout, "drain_timeout")

	if l := cfg.Log; l != nil {
		if err := st.logLevel.UnmarshalText([]byte(l.Level)); err != nil {
			v.errorf(src.at("log", "level"), "log.level", "%q: want debug, info, warn or error", l.Level)
		}
		switch l.Format {
		case "text":
		case "json":
			st.logJSON = true
		default:
			v.errorf(src.at("log", "format"), "log.format", "%q: want text or json", l.Format)
		}
		st.logFile = l.File
	}

	b := &st.bridge
	if h := cfg.HTTP; h != nil {
		b.HeaderTimeout = v.positive(h.HeaderTimeout, "http", "header_timeout")
		b.MaxHeaderBytes = int(v.size(h.MaxHeaderSize, 4<<10, 1<<20, "http", "max_header_size"))
		for _, o := range h.Origins {
			if err := bridge.ValidOriginPattern(o); err != nil {
				v.errorf(src.at("http", "origins"), "http.origins", "%q: %v", o, err)
			}
		}
		b.OriginPatterns = h.Origins
	}
	if s := cfg.Session; s != nil {
		b.DialTimeout = v.positive(s.DialTimeout, "session", "dial_timeout")
		b.WriteTimeout = offIfZero(v.duration(s.WriteTimeout, "session", "write_timeout"))
		b.PingInterval = offIfZero(v.duration(s.PingInterval, "session", "ping_interval"))
		b.PongTimeout = v.positive(s.PongTimeout, "session", "pong_timeout")
		b.IdleTimeout = v.duration(s.IdleTimeout, "session", "idle_timeout")
		b.MaxLifetime = v.duration(s.MaxLifetime, "session", "max_lifetime")
		b.Linger = v.positive(s.Linger, "session", "linger")
		b.MessageLimit = v.size(s.MessageLimit, 1, 1<<30, "session", "message_limit")
		b.ReadSize = int(v.size(s.ReadSize, 512, 16<<20, "session", "read_size"))
		b.StrictText = s.StrictText
		b.DialAfterUpgrade = s.DialAfterUpgrade
	}

	v.validateToken(cfg.Token, b)
	fallback, tokenRoutes := v.validateTargets(cfg, st)
	v.validateSources(cfg, st)
	switch {
	case len(cfg.Targets) == 0 && len(st.sources) == 0:
		v.diags = append(v.diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "No target",
			Detail:   `Configure at least one target "name" { address = "host:port" } block or a token source (token_file, token_redis, token_jwt, token_http, socket_dir): wsbridge dials nothing it was not told to.`,
		})
	case fallback != "" && (len(st.sources) > 0 || tokenRoutes):
		v.errorf(src.at("target", fallback, "address"), "target "+strconv.Quote(fallback),
			"a target without path, host or token would take every request whose token is unknown: give it a path, or remove the token sources and token targets")
	}
	return st, v.diags
}

func validPort(s string) bool {
	n, err := strconv.ParseUint(s, 10, 16)
	return err == nil && n > 0
}

// offIfZero maps a configured "0s" (off) to the negative value with which
// bridge.Options says "disabled", since zero there means the default.
func offIfZero(d time.Duration) time.Duration {
	if d == 0 {
		return -1
	}
	return d
}
