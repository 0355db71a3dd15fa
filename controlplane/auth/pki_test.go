package auth

import (
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

func mustEnsure(t *testing.T, dir string, want sanSet, now time.Time) *PKI {
	t.Helper()
	p, err := ensurePKI(dir, want, now)
	if err != nil {
		t.Fatalf("ensurePKI: %v", err)
	}
	return p
}

func adminCert(t *testing.T, p *PKI) *x509.Certificate {
	t.Helper()
	certPEM, keyPEM := p.AdminClientCertificate()
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatalf("admin key pair: %v", err)
	}
	c, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		t.Fatalf("parse admin certificate: %v", err)
	}
	return c
}

func TestEnsurePKICreatesFiles(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	p := mustEnsure(t, dir, wantedSANs([]string{"api.example.com", "192.0.2.10"}, nil), now)

	modes := []struct {
		file string
		want fs.FileMode
	}{
		{caCertFile, 0o644},
		{caKeyFile, 0o600},
		{serverCertFile, 0o644},
		{serverKeyFile, 0o600},
		{adminCertFile, 0o644},
		{adminKeyFile, 0o600},
		{tokenFile, 0o600},
	}
	for _, m := range modes {
		t.Run(m.file, func(t *testing.T) {
			st, err := os.Stat(filepath.Join(dir, "tls", m.file))
			if err != nil {
				t.Fatalf("stat: %v", err)
			}
			if got := st.Mode().Perm(); got != m.want {
				t.Errorf("mode: got %v, want %v", got, m.want)
			}
		})
	}
	st, err := os.Stat(filepath.Join(dir, "tls"))
	if err != nil {
		t.Fatalf("stat tls dir: %v", err)
	}
	if got := st.Mode().Perm(); got != 0o700 {
		t.Errorf("tls dir mode: got %v, want 0700", got)
	}

	if !p.caCert.IsCA {
		t.Errorf("CA certificate: got IsCA false, want true")
	}
	if got := p.caCert.NotAfter.Sub(now); got < 9*365*24*time.Hour {
		t.Errorf("CA validity: got %v, want at least 9 years", got)
	}
	srv := p.ServingCertificate()
	for _, name := range []string{"api.example.com", "localhost", "kubernetes.default.svc"} {
		if err := srv.VerifyHostname(name); err != nil {
			t.Errorf("serving certificate for %q: got %v, want valid", name, err)
		}
	}
	for _, ip := range []string{"127.0.0.1", "192.0.2.10", "::1"} {
		if err := srv.VerifyHostname(ip); err != nil {
			t.Errorf("serving certificate for %s: got %v, want valid", ip, err)
		}
	}
	if err := srv.VerifyHostname("other.example.com"); err == nil {
		t.Errorf("serving certificate for other.example.com: got valid, want error")
	}
	if _, err := srv.Verify(x509.VerifyOptions{Roots: p.CAPool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
		t.Errorf("serving certificate chain: got %v, want valid", err)
	}

	admin := adminCert(t, p)
	if admin.Subject.CommonName != AdminUser || !slices.Equal(admin.Subject.Organization, []string{AdminGroup}) {
		t.Errorf("admin subject: got CN=%q O=%q, want CN=%q O=[%q]", admin.Subject.CommonName, admin.Subject.Organization, AdminUser, AdminGroup)
	}
	if _, err := admin.Verify(x509.VerifyOptions{Roots: p.CAPool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("admin certificate chain: got %v, want valid", err)
	}
	if got := len(p.Token()); got != 64 {
		t.Errorf("token length: got %d, want 64", got)
	}
}

func TestEnsurePKIMachineNames(t *testing.T) {
	p, err := EnsurePKI(t.TempDir(), []string{"extra.example"})
	if err != nil {
		t.Fatalf("EnsurePKI: %v", err)
	}
	names := []string{"extra.example", "localhost", "127.0.0.1"}
	if h, err := os.Hostname(); err == nil && h != "" {
		names = append(names, h)
	}
	for _, n := range names {
		if err := p.ServingCertificate().VerifyHostname(n); err != nil {
			t.Errorf("serving certificate for %q: got %v, want valid", n, err)
		}
	}
}

func TestEnsurePKIRestarts(t *testing.T) {
	start := time.Now()
	base := wantedSANs([]string{"a.example"}, nil)
	tests := []struct {
		name        string
		want        sanSet
		now         time.Time
		newServing  bool
		newAdmin    bool
		servingHost string
	}{
		{name: "same SANs", want: base, now: start.Add(time.Hour), servingHost: "a.example"},
		{name: "same SANs in another order", want: wantedSANs([]string{"A.example", "a.example", "localhost"}, nil), now: start.Add(time.Hour), servingHost: "a.example"},
		{name: "SAN added", want: wantedSANs([]string{"a.example", "b.example"}, nil), now: start.Add(time.Hour), newServing: true, servingHost: "b.example"},
		{name: "SAN replaced", want: wantedSANs([]string{"10.96.0.1"}, nil), now: start.Add(time.Hour), newServing: true, servingHost: "10.96.0.1"},
		{name: "near expiry", want: base, now: start.Add(300 * 24 * time.Hour), newServing: true, newAdmin: true, servingHost: "a.example"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			first := mustEnsure(t, dir, base, start)
			second := mustEnsure(t, dir, tt.want, tt.now)

			if !second.caCert.Equal(first.caCert) {
				t.Errorf("CA: got a new CA, want the first one kept")
			}
			if got := second.Token(); got != first.Token() {
				t.Errorf("token: got %q, want %q kept", got, first.Token())
			}
			gotNewServing := !second.ServingCertificate().Equal(first.ServingCertificate())
			if gotNewServing != tt.newServing {
				t.Errorf("serving certificate re-issued: got %v, want %v", gotNewServing, tt.newServing)
			}
			gotNewAdmin := !adminCert(t, second).Equal(adminCert(t, first))
			if gotNewAdmin != tt.newAdmin {
				t.Errorf("admin certificate re-issued: got %v, want %v", gotNewAdmin, tt.newAdmin)
			}
			if err := second.ServingCertificate().VerifyHostname(tt.servingHost); err != nil {
				t.Errorf("serving certificate for %q: got %v, want valid", tt.servingHost, err)
			}
			// A third start with the same input changes nothing more.
			third := mustEnsure(t, dir, tt.want, tt.now)
			if !third.ServingCertificate().Equal(second.ServingCertificate()) {
				t.Errorf("third start: got a new serving certificate, want the second one kept")
			}
		})
	}
}

func TestEnsurePKIReissuesForeignLeaf(t *testing.T) {
	// A serving certificate signed by another CA (say, restored from
	// another data dir) is replaced by one the local CA signed.
	dir := t.TempDir()
	now := time.Now()
	p := mustEnsure(t, dir, wantedSANs(nil, nil), now)
	other := mustEnsure(t, t.TempDir(), wantedSANs(nil, nil), now)
	for _, f := range []string{serverCertFile, serverKeyFile} {
		data, err := os.ReadFile(filepath.Join(other.Dir(), f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(p.Dir(), f), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	again := mustEnsure(t, dir, wantedSANs(nil, nil), now)
	if _, err := again.ServingCertificate().Verify(x509.VerifyOptions{Roots: p.CAPool()}); err != nil {
		t.Errorf("serving certificate after restart: got %v, want signed by the local CA", err)
	}
}

func TestEnsurePKIErrors(t *testing.T) {
	tests := []struct {
		name  string
		setup func(t *testing.T, tlsDir string)
	}{
		{name: "CA key missing", setup: func(t *testing.T, tlsDir string) {
			if err := os.Remove(filepath.Join(tlsDir, caKeyFile)); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "CA certificate missing", setup: func(t *testing.T, tlsDir string) {
			if err := os.Remove(filepath.Join(tlsDir, caCertFile)); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "CA certificate garbage", setup: func(t *testing.T, tlsDir string) {
			if err := os.WriteFile(filepath.Join(tlsDir, caCertFile), []byte("not pem"), 0o644); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "empty token", setup: func(t *testing.T, tlsDir string) {
			if err := os.WriteFile(filepath.Join(tlsDir, tokenFile), []byte("\n"), 0o600); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			p := mustEnsure(t, dir, wantedSANs(nil, nil), time.Now())
			tt.setup(t, p.Dir())
			if _, err := ensurePKI(dir, wantedSANs(nil, nil), time.Now()); err == nil {
				t.Errorf("ensurePKI: got no error, want one")
			}
		})
	}
}

func TestNewSANSet(t *testing.T) {
	tests := []struct {
		in   []string
		want string
	}{
		{in: nil, want: ""},
		{in: []string{"B.example", " a.example ", "", "b.example"}, want: "a.example,b.example"},
		{in: []string{"10.0.0.1", "::ffff:10.0.0.1", "2001:db8::1"}, want: "10.0.0.1,2001:db8::1"},
	}
	for _, tt := range tests {
		if got := newSANSet(tt.in).String(); got != tt.want {
			t.Errorf("newSANSet(%q): got %q, want %q", tt.in, got, tt.want)
		}
	}
}

// issueClientCert signs a client certificate with p's CA for tests.
func issueClientCert(t *testing.T, p *PKI, subject pkix.Name) tls.Certificate {
	t.Helper()
	caPEM, err := os.ReadFile(filepath.Join(p.Dir(), caCertFile))
	if err != nil {
		t.Fatal(err)
	}
	caKeyPEM, err := os.ReadFile(filepath.Join(p.Dir(), caKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	ca, caKey, err := parsePair(caPEM, caKeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	certPEM, keyPEM, _, err := issueLeaf(ca, caKey, leafSpec{subject: subject, usage: x509.ExtKeyUsageClientAuth}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return pair
}
