// Package tlsfiles turns PEM files into TLS configurations and keeps them
// current: a Store re-reads its certificates, keys and client CA bundle when
// the files change (or when asked, on SIGHUP), and every new handshake uses
// what was read last. Established connections keep the keys they agreed on,
// so a reload drops nothing. A set of files that does not load (a renewal
// half written) leaves the previous one in use and is logged.
package tlsfiles

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// Pair is a certificate chain (leaf first, then intermediates) and its key.
// Key may be "" when the key is in the Cert file.
type Pair struct {
	Cert, Key string
}

// load reads the pair; a Key of "" means the key is in the Cert file.
func (p Pair) load() (tls.Certificate, error) {
	key := p.Key
	if key == "" {
		key = p.Cert
	}
	return tls.LoadX509KeyPair(p.Cert, key)
}

// Options describe a server's TLS files.
type Options struct {
	// Pairs are the certificates; the one for a handshake is the first
	// whose names match the client's SNI, or the first when none does.
	Pairs []Pair
	// ClientCA is a PEM bundle of the CAs whose client certificates are
	// accepted, or "" for no client certificates.
	ClientCA string
	// RequireClientCert refuses handshakes without a client certificate
	// that ClientCA verifies; otherwise a certificate is verified when
	// offered.
	RequireClientCert bool
	// MinVersion is tls.VersionTLS12 (the default) or tls.VersionTLS13.
	MinVersion uint16
	// Logger receives reloads and reload failures. Default slog.Default().
	Logger *slog.Logger
}

// cipherSuites are the TLS 1.2 suites offered: forward secret and AEAD
// only. TLS 1.3 suites are not configurable and all are fine.
var cipherSuites = []uint16{
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
}

// Store holds the current server configuration. Its methods may be called
// from several goroutines.
type Store struct {
	opts Options
	log  *slog.Logger
	cur  atomic.Pointer[tls.Config]

	mu   sync.Mutex // serialises reloads
	sums map[string][32]byte
}

// Load reads every file once; an error here stops the start.
func Load(o *Options) (*Store, error) {
	s := &Store{opts: *o, log: o.Logger}
	if s.log == nil {
		s.log = slog.Default()
	}
	if len(o.Pairs) == 0 {
		return nil, errors.New("no certificate")
	}
	switch o.MinVersion {
	case 0:
		s.opts.MinVersion = tls.VersionTLS12
	case tls.VersionTLS12, tls.VersionTLS13:
	default:
		return nil, fmt.Errorf("minimum TLS version %#x: want 1.2 or 1.3", o.MinVersion)
	}
	if o.RequireClientCert && o.ClientCA == "" {
		return nil, errors.New("client certificates are required but no client CA bundle is set")
	}
	if _, err := s.Reload(true); err != nil {
		return nil, err
	}
	return s, nil
}

// Update replaces the store's files and settings, as a configuration
// reload does, and loads them. On error nothing changes.
func (s *Store) Update(o *Options) error {
	n, err := Load(&Options{Pairs: o.Pairs, MinVersion: o.MinVersion, ClientCA: o.ClientCA, RequireClientCert: o.RequireClientCert, Logger: s.log})
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.opts, s.sums = n.opts, n.sums
	s.cur.Store(n.cur.Load())
	return nil
}

// Config returns the configuration to serve with. It hands every
// handshake the configuration loaded last.
func (s *Store) Config() *tls.Config {
	return &tls.Config{
		MinVersion: s.opts.MinVersion,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			return s.cur.Load(), nil
		},
	}
}

// Current returns the configuration loaded last.
func (s *Store) Current() *tls.Config { return s.cur.Load() }

// files lists every file the store reads.
func (s *Store) files() []string {
	var fs []string
	for _, p := range s.opts.Pairs {
		fs = append(fs, p.Cert)
		if p.Key != "" {
			fs = append(fs, p.Key)
		}
	}
	if s.opts.ClientCA != "" {
		fs = append(fs, s.opts.ClientCA)
	}
	return fs
}

// Reload reads the files again if any changed since the last load, or
// always when force is set. It reports whether a new configuration is in
// use; on error the previous one stays.
func (s *Store) Reload(force bool) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	// The files are small: compare their contents, since a renewal can
	// keep a file's size and land within its time stamp's resolution.
	sums := map[string][32]byte{}
	changed := force
	for _, f := range s.files() {
		data, err := os.ReadFile(f)
		if err != nil {
			return false, err
		}
		sums[f] = sha256.Sum256(data)
		if old, ok := s.sums[f]; !ok || old != sums[f] {
			changed = true
		}
	}
	if !changed {
		return false, nil
	}
	cfg, err := s.build()
	if err != nil {
		return false, err
	}
	s.cur.Store(cfg)
	s.sums = sums
	return true, nil
}

func (s *Store) build() (*tls.Config, error) {
	cfg := &tls.Config{
		MinVersion:   s.opts.MinVersion,
		CipherSuites: cipherSuites,
		// A WebSocket handshake is HTTP/1.1; offering h2 would let a
		// client pick a protocol the upgrade cannot use.
		NextProtos: []string{"http/1.1"},
	}
	for _, p := range s.opts.Pairs {
		c, err := p.load()
		if err != nil {
			return nil, fmt.Errorf("certificate %s: %w", p.Cert, err)
		}
		cfg.Certificates = append(cfg.Certificates, c)
	}
	certs := cfg.Certificates
	cfg.GetCertificate = func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
		for i := range certs {
			if hello.SupportsCertificate(&certs[i]) == nil {
				return &certs[i], nil
			}
		}
		return &certs[0], nil
	}
	if s.opts.ClientCA != "" {
		pool, err := loadPool(s.opts.ClientCA)
		if err != nil {
			return nil, err
		}
		cfg.ClientCAs = pool
		cfg.ClientAuth = tls.VerifyClientCertIfGiven
		if s.opts.RequireClientCert {
			cfg.ClientAuth = tls.RequireAndVerifyClientCert
		}
	}
	return cfg, nil
}

func loadPool(file string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("CA bundle %s: no PEM certificate in it", file)
	}
	return pool, nil
}

// Watch checks the files every interval until ctx ends, and reloads them
// when one changed. A file that is missing or does not parse is logged
// once per change and retried.
func (s *Store) Watch(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	var lastErr string
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		changed, err := s.Reload(false)
		switch {
		case err != nil && err.Error() != lastErr:
			lastErr = err.Error()
			s.log.Error("TLS files changed but do not load; the previous certificates stay in use", "err", err)
		case changed:
			lastErr = ""
			s.log.Info("TLS certificates reloaded")
		}
	}
}

// ClientOptions describe TLS toward a target.
type ClientOptions struct {
	// CAFile is a PEM bundle of the CAs that sign target certificates;
	// "" trusts the system's CAs.
	CAFile string
	// ServerName is the name checked in the target's certificate and sent
	// as SNI; "" uses the host of the target's address.
	ServerName string
	// InsecureSkipVerify accepts any certificate (websockify 0.12 and older
	// did): the connection is encrypted but not authenticated.
	InsecureSkipVerify bool
	// Cert and Key are a client certificate to present, or "".
	Cert, Key string
}

// ClientConfig builds the configuration for dialling targets with TLS.
func ClientConfig(o *ClientOptions) (*tls.Config, error) {
	cfg := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		ServerName:         o.ServerName,
		InsecureSkipVerify: o.InsecureSkipVerify,
	}
	if o.CAFile != "" {
		pool, err := loadPool(o.CAFile)
		if err != nil {
			return nil, err
		}
		cfg.RootCAs = pool
	}
	if o.Cert != "" {
		c, err := (Pair{Cert: o.Cert, Key: o.Key}).load()
		if err != nil {
			return nil, fmt.Errorf("client certificate %s: %w", o.Cert, err)
		}
		cfg.Certificates = []tls.Certificate{c}
	}
	return cfg, nil
}

// ParseVersion reads "1.2" or "1.3".
func ParseVersion(s string) (uint16, error) {
	switch s {
	case "1.2":
		return tls.VersionTLS12, nil
	case "1.3":
		return tls.VersionTLS13, nil
	}
	return 0, fmt.Errorf("TLS version %q: want \"1.2\" or \"1.3\"", s)
}
