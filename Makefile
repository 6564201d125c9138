# wsbridge: plain targets, a line or two each.
VERSION    ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS    := -s -w -X main.version=$(VERSION)
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.7.0
GOVULNCHECK := golang.org/x/vuln/cmd/govulncheck@v1.1.4
FUZZTIME   ?= 30s

.PHONY: all fmt fmt-check lint test e2e fuzz bench bench-ci bench-compare profile build dist clean

all: fmt-check lint test

fmt:
	gofmt -w .

fmt-check:
	@out=$$(gofmt -l .); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

lint:
	go vet ./...
	go run $(STATICCHECK) ./...
	@out=$$(go run $(GOVULNCHECK) ./... 2>&1); rc=$$?; echo "$$out"; \
	if [ $$rc -ne 0 ] && echo "$$out" | grep -q 'fetching vulnerabilities'; then \
	  echo "govulncheck: the vulnerability database is unreachable from here; NOT CHECKED"; \
	elif [ $$rc -ne 0 ]; then exit $$rc; fi

# The README's test command; .ci/run runs exactly this.
test:
	go test -race -shuffle=on -count=1 ./...

# The end-to-end suite: noVNC in Chromium, OpenSSH, websockify. It needs
# the Debian packages and npm modules that .ci/run installs (README).
e2e:
	go test -tags e2e -count=1 -v ./internal/e2e

fuzz:
	go test -run '^$$' -fuzz FuzzParseTokens -fuzztime $(FUZZTIME) ./targets
	go test -run '^$$' -fuzz FuzzBase64Framing -fuzztime $(FUZZTIME) ./bridge
	go test -run '^$$' -fuzz FuzzBase64Codec -fuzztime $(FUZZTIME) ./bridge
	go test -run '^$$' -fuzz FuzzSubprotocolHeader -fuzztime $(FUZZTIME) ./bridge
	go test -run '^$$' -fuzz FuzzStaticPath -fuzztime $(FUZZTIME) ./bridge
	go test -run '^$$' -fuzz FuzzDoor -fuzztime $(FUZZTIME) ./bridge
	go test -run '^$$' -fuzz FuzzConfig -fuzztime $(FUZZTIME) ./cmd/wsbridge

bench:
	go test -run '^$$' -bench . -benchmem -count 5 ./bridge ./targets

# The same benchmarks, briefly, so that CI keeps them working.
bench-ci:
	go test -run '^$$' -bench . -benchmem -benchtime 20x ./bridge ./targets

# wsbridge, websockify, a Go TCP relay and direct TCP side by side
# (BENCHMARKS.md); BENCHFLAGS for wsbridge-bench compare, such as -hold 10s.
bench-compare: build
	go build -trimpath -o bin/wsbridge-bench ./cmd/wsbridge-bench
	bin/wsbridge-bench compare -wsbridge bin/wsbridge $(BENCHFLAGS)

# go tool pprof's CPU and heap profiles of one session (BenchmarkShuttle,
# whose client and target share the process; kernel time shows under
# Syscall6). PROFILE picks the case: client-to-target/base64, and so on.
PROFILE ?= client-to-target/binary
profile:
	mkdir -p bin
	go test -run '^$$' -bench 'BenchmarkShuttle/$(PROFILE)$$' -benchtime 3s -cpuprofile bin/cpu.pprof -memprofile bin/mem.pprof -o bin/bridge.test ./bridge
	go tool pprof -top -nodecount 25 bin/bridge.test bin/cpu.pprof
	go tool pprof -top -nodecount 10 -sample_index alloc_space bin/bridge.test bin/mem.pprof

build:
	go build -trimpath -ldflags '$(LDFLAGS)' -o bin/wsbridge ./cmd/wsbridge

# Archives for every OS and architecture, the .deb, the MSI and SHA256SUMS.
dist:
	packaging/dist.sh '$(VERSION)' '$(LDFLAGS)'

clean:
	rm -rf bin dist
