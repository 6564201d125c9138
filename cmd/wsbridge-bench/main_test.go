package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wsbridge/wsbridge/internal/loadtest"
	"github.com/wsbridge/wsbridge/internal/testenv"
)

// TestMain lets the test binary be the relay that compare starts from
// os.Executable().
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == "relay" {
		main()
		return
	}
	os.Exit(m.Run())
}

// TestCompare runs a small comparison of the real programs end to end and
// checks that the table has every measure for every bridge.
func TestCompare(t *testing.T) {
	websockify := testenv.Program(t, "websockify", "websockify")
	dir := t.TempDir()
	bin := filepath.Join(dir, "wsbridge")
	if out, err := exec.Command("go", "build", "-o", bin, "../wsbridge").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	var out, log strings.Builder
	err := run(t.Context(), []string{"compare", "-wsbridge", bin, "-websockify", websockify,
		"-bytes", "8MB", "-websockify-bytes", "4MB", "-count", "200", "-sessions", "40",
		"-websockify-sessions", "5", "-hold", "200ms", "-setup-for", "300ms", "-clients", "4",
		"-latency-sessions", "4", "-latency-settle", "100ms", "-warmup-bytes", "2MB", "-rounds", "2"}, &out, &log)
	if err != nil {
		t.Fatalf("compare: %v\n%s", err, log.String())
	}
	table := out.String()
	rows := []string{
		"| throughput client to target, binary, MB/s |",
		"| throughput target to client, base64, MB/s |",
		"| bridge CPU s per GB, client to target, binary |",
		"| 64-byte echo p50, µs |",
		"| 64-byte echo p99, µs |",
		"| sessions set up per s, 4 clients |",
		"| PSS per idle session, KiB |",
		"| PSS growth while held 200ms, KiB |",
	}
	if len(loadtest.CPUs()) >= 2 {
		rows = append(rows, "| 64-byte echo p50, µs, all on one CPU |", "| 64-byte echo p99, µs, bridge on a CPU of its own |")
	}
	for _, row := range rows {
		line := ""
		for _, l := range strings.Split(table, "\n") {
			if strings.HasPrefix(l, row) {
				line = l
			}
		}
		if line == "" {
			t.Errorf("no row %q in:\n%s", row, table)
			continue
		}
		// The wsbridge column (the fifth cell) always has a value.
		cells := strings.Split(line, "|")
		if len(cells) < 8 || strings.TrimSpace(cells[5]) == "–" || strings.TrimSpace(cells[5]) == "" {
			t.Errorf("row %q has no wsbridge value: %q", row, line)
		}
	}
	if !strings.Contains(table, "| measure | direct TCP | Go TCP relay | websockify | wsbridge |") {
		t.Errorf("header missing:\n%s", table)
	}
	// Each latency sample is 4 sessions of 50 round trips: four endpoints
	// in each placement, but no direct TCP with the bridge on a CPU of
	// its own.
	want := 4 * len(placements())
	if want > 4 {
		want--
	}
	if n := strings.Count(log.String(), ": warmed up, 2000000 bytes each way"); n != 4 {
		t.Errorf("%d endpoints warmed up, want 4:\n%s", n, log.String())
	}
	// Two rounds: two of each throughput and setup run, their medians.
	for _, line := range []string{"wsbridge: client-to-target binary:", "wsbridge: target-to-client base64:", "websockify: client-to-target binary:", "direct TCP: target-to-client binary:"} {
		if n := strings.Count(log.String(), line); n != 2 {
			t.Errorf("%d lines %q, want 2:\n%s", n, line, log.String())
		}
	}
	if n := strings.Count(log.String(), ": median of 2 setup runs:"); n != 4 {
		t.Errorf("%d setup medians, want 4:\n%s", n, log.String())
	}
	if n := strings.Count(log.String(), "(200 round trips in 4 sessions)"); n != want {
		t.Errorf("%d latency samples of 200 round trips, want %d:\n%s", n, want, log.String())
	}
}

// TestMedians: the middle run, or for an even count the two middle ones
// averaged (throughput) or pooled (setup), whatever the runs' order.
func TestMedians(t *testing.T) {
	ms := time.Millisecond
	tp := func(el, cpu time.Duration) loadtest.Throughput {
		return loadtest.Throughput{Bytes: 1e9, Elapsed: el, CPU: cpu}
	}
	got := medianThroughput([]loadtest.Throughput{tp(900*ms, 300*ms), tp(500*ms, 500*ms), tp(700*ms, 400*ms)})
	if want := tp(700*ms, 400*ms); got != want {
		t.Errorf("three runs: %+v, want %+v", got, want)
	}
	got = medianThroughput([]loadtest.Throughput{tp(900*ms, 300*ms), tp(500*ms, 500*ms), tp(700*ms, 200*ms), tp(600*ms, 400*ms)})
	if want := tp(650*ms, 350*ms); got != want {
		t.Errorf("four runs: %+v, want %+v", got, want)
	}
	su := func(n int) loadtest.Setup { return loadtest.Setup{Sessions: n, Elapsed: time.Second} }
	if got := medianSetup([]loadtest.Setup{su(300), su(100), su(200)}); got != su(200) {
		t.Errorf("three setup runs: %+v", got)
	}
	if got := medianSetup([]loadtest.Setup{su(400), su(100), su(300), su(200)}); got.PerSecond() != 250 {
		t.Errorf("four setup runs: %+v, %.0f a second, want 250", got, got.PerSecond())
	}
}

func TestParseBytes(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want int64
	}{{"1GB", 1e9}, {"256MiB", 256 << 20}, {"1.5KB", 1500}, {"4096", 4096}} {
		if got, err := parseBytes(tt.in); err != nil || got != tt.want {
			t.Errorf("parseBytes(%q) = %d, %v; want %d", tt.in, got, err, tt.want)
		}
	}
	for _, bad := range []string{"", "x", "-1MB", "0"} {
		if _, err := parseBytes(bad); err == nil {
			t.Errorf("parseBytes(%q) accepted", bad)
		}
	}
}
