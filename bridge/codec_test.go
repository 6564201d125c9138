package bridge

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/wsbridge/wsbridge/targets"
)

// decodeChunks runs the streaming decoder over src cut at the given sizes.
func decodeChunks(src []byte, cuts []int) ([]byte, error) {
	var d b64Decoder
	d.reset()
	var out []byte
	for len(src) > 0 {
		n := len(src)
		if len(cuts) > 0 {
			n = min(max(cuts[0], 1), len(src))
			cuts = cuts[1:]
		}
		dst := make([]byte, decodedLen(n))
		m, err := d.decode(dst, src[:n])
		if err != nil {
			return nil, err
		}
		out = append(out, dst[:m]...)
		src = src[n:]
	}
	return out, d.finish()
}

func TestBase64Decoder(t *testing.T) {
	tests := []struct {
		name string
		in   string
		cuts []int
		want string // "" with err
		err  bool
	}{
		{name: "whole", in: "aGVsbG8gd29ybGQ=", want: "hello world"},
		{name: "byte by byte", in: "aGVsbG8gd29ybGQ=", cuts: []int{1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1}, want: "hello world"},
		{name: "odd cuts", in: "aGVsbG8gd29ybGQ=", cuts: []int{3, 5, 7, 1}, want: "hello world"},
		{name: "two pads", in: "QQ==", cuts: []int{2, 2}, want: "A"},
		{name: "empty", in: "", want: ""},
		{name: "short", in: "QQ=", err: true},
		{name: "unpadded", in: "QQ", err: true},
		{name: "bad char", in: "QQ!=", err: true},
		{name: "data after pad", in: "QQ==QUJD", err: true},
		{name: "data after pad, split", in: "QQ==QUJD", cuts: []int{4, 4}, err: true},
		{name: "data after pad, mid quad", in: "QQ==QUJD", cuts: []int{2, 6}, err: true},
		{name: "newline", in: "QUJD\nREVG", err: true},
		{name: "crlf split", in: "QUJD\r\nREVG", cuts: []int{4, 2, 4}, err: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := decodeChunks([]byte(tt.in), tt.cuts)
			if tt.err {
				if !errors.Is(err, errBase64) {
					t.Fatalf("decode(%q) = %q, %v; want errBase64", tt.in, got, err)
				}
				return
			}
			if err != nil || string(got) != tt.want {
				t.Fatalf("decode(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
			}
		})
	}
}

// FuzzBase64Framing checks that decoding a message in any chunking gives
// what encoding/base64 gives for the whole message, and that an invalid
// message is refused in every chunking.
func FuzzBase64Framing(f *testing.F) {
	f.Add([]byte("aGVsbG8gd29ybGQ="), []byte{3, 5})
	f.Add([]byte("QQ==QUJD"), []byte{2})
	f.Add([]byte("QUJD\nREVG"), []byte{4})
	f.Add([]byte(base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{0xff, 0, 7}, 100))), []byte{1, 2, 3, 200})
	f.Fuzz(func(t *testing.T, msg, cutBytes []byte) {
		cuts := make([]int, len(cutBytes))
		for i, c := range cutBytes {
			cuts[i] = int(c)
		}
		got, err := decodeChunks(msg, cuts)
		want, werr := base64.StdEncoding.DecodeString(string(msg))
		if bytes.ContainsAny(msg, "\r\n") {
			werr = errBase64 // the framing refuses line breaks on purpose
		}
		switch {
		case werr != nil && err == nil:
			t.Fatalf("decoded invalid %q (cuts %v) to %q", msg, cuts, got)
		case werr == nil && err != nil:
			t.Fatalf("refused valid %q (cuts %v): %v", msg, cuts, err)
		case werr == nil && !bytes.Equal(got, want):
			t.Fatalf("decoded %q (cuts %v) to %q, want %q", msg, cuts, got, want)
		}
	})
}

// TestBase64Codec compares the session's codec with encoding/base64 on
// every length up to a few steps of its loops, and on each of those
// encodings spoiled at every place: with a character outside the
// alphabet, padding, or a line break.
func TestBase64Codec(t *testing.T) {
	raw := make([]byte, 100)
	for i := range raw {
		raw[i] = byte(i*167 + 13)
	}
	for n := range len(raw) + 1 {
		want := base64.StdEncoding.EncodeToString(raw[:n])
		got := make([]byte, len(want))
		b64Encode(got, raw[:n])
		if string(got) != want {
			t.Fatalf("encode %d bytes: %q, want %q", n, got, want)
		}
		checkDecode(t, []byte(want))
		for i := range want {
			for _, c := range []byte{'!', '=', '\n', '\r', 0x80} {
				bad := []byte(want)
				bad[i] = c
				checkDecode(t, bad)
			}
		}
	}
}

// checkDecode fails unless b64Decode gives what encoding/base64 gives for
// src: the same bytes, or the same error; or, where src has a line break,
// errLineBreak.
func checkDecode(t *testing.T, src []byte) {
	t.Helper()
	got := make([]byte, decodedLen(len(src)))
	n, err := b64Decode(got, src)
	if bytes.ContainsAny(src, "\r\n") {
		if err != errLineBreak {
			t.Fatalf("decode %q: %d %q %v, want a line break error", src, n, got[:n], err)
		}
		return
	}
	want := make([]byte, decodedLen(len(src)))
	wn, werr := base64.StdEncoding.Decode(want, src)
	if n != wn || !bytes.Equal(got[:n], want[:wn]) || fmt.Sprint(err) != fmt.Sprint(werr) {
		t.Fatalf("decode %q: %d %q %v, want %d %q %v", src, n, got[:n], err, wn, want[:wn], werr)
	}
}

// FuzzBase64Codec checks the session's codec against encoding/base64 on
// any bytes, either way.
func FuzzBase64Codec(f *testing.F) {
	f.Add([]byte("hello, world: twelve or more bytes"))
	f.Add([]byte("aGVsbG8gd29ybGQgdHdlbHZlIG9yIG1vcmU="))
	f.Fuzz(func(t *testing.T, b []byte) {
		want := base64.StdEncoding.EncodeToString(b)
		got := make([]byte, len(want))
		b64Encode(got, b)
		if string(got) != want {
			t.Fatalf("encode %q: %q, want %q", b, got, want)
		}
		checkDecode(t, b)
		checkDecode(t, got)
	})
}

func FuzzSubprotocolHeader(f *testing.F) {
	for _, s := range []string{"", "binary", "base64", "binary, base64", "base64,binary", " base64 ", "chat", "chat, base64", ",,", "BINARY"} {
		f.Add(s, "")
	}
	f.Add("base64", "binary")
	f.Fuzz(func(t *testing.T, h1, h2 string) {
		name, mode, err := NegotiateSubprotocol([]string{h1, h2})
		var toks []string
		for _, h := range []string{h1, h2} {
			for tok := range strings.SplitSeq(h, ",") {
				if tok = strings.TrimSpace(tok); tok != "" {
					toks = append(toks, tok)
				}
			}
		}
		has := func(s string) bool {
			for _, t := range toks {
				if t == s {
					return true
				}
			}
			return false
		}
		switch {
		case has("binary"):
			if name != "binary" || mode != Binary || err != nil {
				t.Fatalf("%q %q: got %q %v %v, want binary", h1, h2, name, mode, err)
			}
		case has("base64"):
			if name != "base64" || mode != Base64 || err != nil {
				t.Fatalf("%q %q: got %q %v %v, want base64", h1, h2, name, mode, err)
			}
		case len(toks) == 0:
			if name != "" || mode != Binary || err != nil {
				t.Fatalf("%q %q: got %q %v %v, want no subprotocol", h1, h2, name, mode, err)
			}
		default:
			if err == nil {
				t.Fatalf("%q %q: accepted %q, want an error", h1, h2, name)
			}
		}
	})
}

// FuzzExtractToken reads tokens from every place out of arbitrary requests:
// never a panic, and a token that passes targets.CheckToken is always
// something the request really carried in that place.
func FuzzExtractToken(f *testing.F) {
	f.Add("/t/abc", "token=x&a=1", "wsb=y; other=z", "desk1.example.com:6080")
	f.Add("/", "token=a&token=b", "wsb=a; wsb=b", "[::1]:80")
	f.Add("/t/", "token=%00", "wsb=", "")
	f.Add("/t/a/b", "token=..%2F", `wsb="q"`, "Desk.Example.")
	places := []TokenFrom{
		{}, {Place: "path", PathPrefix: "/t/"}, {Place: "path"}, {Place: "cookie", Name: "wsb"}, {Place: "host"},
	}
	f.Fuzz(func(t *testing.T, path, query, cookie, host string) {
		r := &http.Request{
			URL:    &url.URL{Path: path, RawQuery: query},
			Header: http.Header{"Cookie": {cookie}},
			Host:   host,
		}
		for _, from := range places {
			tok, err := ExtractToken(r, from)
			if err != nil || tok == "" || targets.CheckToken(tok, targets.MaxJWTLen) != nil {
				continue
			}
			var ok bool
			switch from.Place {
			case "":
				q, _ := url.ParseQuery(query)
				ok = q.Get("token") == tok
			case "path":
				prefix := from.PathPrefix
				if prefix == "" {
					prefix = "/"
				}
				ok = path == prefix+tok
			case "cookie":
				ok = strings.Contains(cookie, tok)
			case "host":
				ok = strings.Contains(strings.ToLower(host), tok)
			}
			if !ok {
				t.Fatalf("%+v: token %q is not in the request %q %q %q %q", from, tok, path, query, cookie, host)
			}
		}
	})
}

// BenchmarkBase64Codec sets the session's codec beside encoding/base64 on
// 64 KiB messages; bytes are the decoded side's.
func BenchmarkBase64Codec(b *testing.B) {
	raw := make([]byte, 64<<10)
	for i := range raw {
		raw[i] = byte(i*7 + i>>8)
	}
	enc := []byte(base64.StdEncoding.EncodeToString(raw))
	dec := make([]byte, decodedLen(len(enc)))
	out := make([]byte, len(enc))
	run := func(name string, f func()) {
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(raw)))
			for b.Loop() {
				f()
			}
		})
	}
	run("decode/wsbridge", func() { b64Decode(dec, enc) })
	run("decode/stdlib", func() { base64.StdEncoding.Decode(dec, enc) })
	run("encode/wsbridge", func() { b64Encode(out, raw) })
	run("encode/stdlib", func() { base64.StdEncoding.Encode(out, raw) })
	if n, err := b64Decode(dec, enc); err != nil || !bytes.Equal(dec[:n], raw) {
		b.Fatalf("decoded %d bytes, %v", n, err)
	}
}
