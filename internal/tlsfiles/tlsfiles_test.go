package tlsfiles_test

import (
	"crypto/tls"
	"path/filepath"
	"testing"

	"github.com/wsbridge/wsbridge/internal/testpki"
	"github.com/wsbridge/wsbridge/internal/tlsfiles"
)

func TestReloadKeepsOldOnBadFiles(t *testing.T) {
	dir := t.TempDir()
	ca := testpki.NewCA(t, "ca")
	first := ca.Server(t, "one", "127.0.0.1")
	cert, key := first.Write(t, dir, "s")
	s, err := tlsfiles.Load(&tlsfiles.Options{Pairs: []tlsfiles.Pair{{Cert: cert, Key: key}}})
	if err != nil {
		t.Fatal(err)
	}
	serial := func() string {
		c, _ := s.Current().GetCertificate(&tls.ClientHelloInfo{})
		return c.Leaf.SerialNumber.String()
	}
	if changed, err := s.Reload(false); changed || err != nil {
		t.Fatalf("Reload of unchanged files = %v, %v", changed, err)
	}
	// A renewal caught half written: the key no longer matches.
	second := ca.Server(t, "two", "127.0.0.1")
	testpki.WriteFile(t, cert, second.CertPEM)
	if _, err := s.Reload(false); err == nil {
		t.Fatal("a mismatched key loaded")
	}
	if serial() != first.Cert.SerialNumber.String() {
		t.Fatal("a failed reload replaced the certificate")
	}
	testpki.WriteFile(t, key, second.KeyPEM)
	if changed, err := s.Reload(false); !changed || err != nil {
		t.Fatalf("Reload = %v, %v", changed, err)
	}
	if serial() != second.Cert.SerialNumber.String() {
		t.Fatal("the renewed certificate is not in use")
	}
}

func TestLoadErrors(t *testing.T) {
	dir := t.TempDir()
	cert, key := testpki.NewCA(t, "ca").Server(t, "s").Write(t, dir, "s")
	for name, o := range map[string]tlsfiles.Options{
		"no pairs":           {},
		"missing file":       {Pairs: []tlsfiles.Pair{{Cert: filepath.Join(dir, "nope")}}},
		"old version":        {Pairs: []tlsfiles.Pair{{Cert: cert, Key: key}}, MinVersion: tls.VersionTLS11},
		"require without ca": {Pairs: []tlsfiles.Pair{{Cert: cert, Key: key}}, RequireClientCert: true},
		"ca not pem":         {Pairs: []tlsfiles.Pair{{Cert: cert, Key: key}}, ClientCA: key},
	} {
		if _, err := tlsfiles.Load(&o); err == nil {
			t.Errorf("%s: loaded", name)
		}
	}
}
