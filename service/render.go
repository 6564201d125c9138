package service

import (
	"fmt"
	"strings"
)

// Render expands a template in kardianos/service's syntax, as the library
// does when it installs: {{Key}}, {{Key | fn | fn}}, {{if Key}}...{{else}}...
// {{end}} and {{range Key}}...{{.}}...{{end}}. Values are strings or string
// slices; a key missing from data is an error, as in the library. Whitespace
// trimming ({{- and -}}) is not needed by wsbridge's templates and is refused.
func Render(text string, data map[string]any, funcs map[string]func(string) (string, error)) (string, error) {
	var b strings.Builder
	rest, end, err := expand(&b, text, data, funcs, "", true)
	if err != nil {
		return "", err
	}
	if end != "" || rest != "" {
		return "", fmt.Errorf("service: {{%s}} without {{if}} or {{range}}", end)
	}
	return b.String(), nil
}

// expand writes text to b (when emit is set) until an {{else}} or {{end}}
// at this level, returning what follows it and which one it was.
func expand(b *strings.Builder, text string, data map[string]any, funcs map[string]func(string) (string, error), dot string, emit bool) (string, string, error) {
	for {
		open := strings.Index(text, "{{")
		if open < 0 {
			if emit {
				b.WriteString(text)
			}
			return "", "", nil
		}
		if emit {
			b.WriteString(text[:open])
		}
		n := strings.Index(text[open:], "}}")
		if n < 0 {
			return "", "", fmt.Errorf("service: unclosed {{ in template")
		}
		action := text[open+2 : open+n]
		text = text[open+n+2:]
		if strings.HasPrefix(action, "-") || strings.HasSuffix(action, "-") {
			return "", "", fmt.Errorf("service: {{%s}}: whitespace trimming is not supported", action)
		}
		action = strings.TrimSpace(action)
		word, arg, _ := strings.Cut(action, " ")
		arg = strings.TrimSpace(arg)
		switch word {
		case "end", "else":
			return text, word, nil
		case "if":
			v, err := lookup(data, arg)
			if err != nil {
				return "", "", err
			}
			yes := truthy(v)
			rest, end, err := expand(b, text, data, funcs, dot, emit && yes)
			if err != nil {
				return "", "", err
			}
			if end == "else" {
				rest, end, err = expand(b, rest, data, funcs, dot, emit && !yes)
				if err != nil {
					return "", "", err
				}
			}
			if end != "end" {
				return "", "", fmt.Errorf("service: {{if %s}} without {{end}}", arg)
			}
			text = rest
		case "range":
			v, err := lookup(data, arg)
			if err != nil {
				return "", "", err
			}
			items, ok := v.([]string)
			if !ok {
				return "", "", fmt.Errorf("service: {{range %s}}: not a list", arg)
			}
			// Parse the body once without output to find its end, then
			// expand it once per item.
			rest, end, err := expand(b, text, data, funcs, "", false)
			if err != nil {
				return "", "", err
			}
			if end != "end" {
				return "", "", fmt.Errorf("service: {{range %s}} without {{end}}", arg)
			}
			for _, it := range items {
				if _, _, err := expand(b, text, data, funcs, it, emit); err != nil {
					return "", "", err
				}
			}
			text = rest
		default:
			parts := strings.Split(action, "|")
			key := strings.TrimSpace(parts[0])
			var s string
			if key == "." {
				s = dot
			} else {
				v, err := lookup(data, key)
				if err != nil {
					return "", "", err
				}
				str, ok := v.(string)
				if !ok {
					return "", "", fmt.Errorf("service: {{%s}}: a list where a value is needed", key)
				}
				s = str
			}
			for _, name := range parts[1:] {
				fn, ok := funcs[strings.TrimSpace(name)]
				if !ok {
					return "", "", fmt.Errorf("service: unknown template function %q", strings.TrimSpace(name))
				}
				var err error
				if s, err = fn(s); err != nil {
					return "", "", err
				}
			}
			if emit {
				b.WriteString(s)
			}
		}
	}
}

func lookup(data map[string]any, key string) (any, error) {
	v, ok := data[key]
	if !ok {
		return nil, fmt.Errorf("service: unknown template key %q", key)
	}
	switch v := v.(type) {
	case string, []string:
		return v, nil
	case nil:
		return "", nil
	}
	return nil, fmt.Errorf("service: template key %q is neither text nor a list", key)
}

func truthy(v any) bool {
	switch v := v.(type) {
	case string:
		return v != ""
	case []string:
		return len(v) > 0
	}
	return false
}

// The library's template functions: cmd quotes for systemd's ExecStart,
// cmdEscape escapes spaces in paths, html escapes for the plist.
var (
	systemdFuncs = map[string]func(string) (string, error){
		"cmd":       func(s string) (string, error) { return `"` + strings.ReplaceAll(s, `"`, `\"`) + `"`, nil },
		"cmdEscape": func(s string) (string, error) { return strings.ReplaceAll(s, " ", `\x20`), nil },
	}
	launchdFuncs = map[string]func(string) (string, error){
		"html": func(s string) (string, error) { return plistEscaper.Replace(s), nil },
	}
	plistEscaper = strings.NewReplacer(`&`, "&amp;", `'`, "&#39;", `<`, "&lt;", `>`, "&gt;", `"`, "&#34;")
)
