// Package auth owns the API server's identity and its clients' credentials:
// the cluster CA, the serving certificate, the admin client certificate and
// bearer token kept under <data-dir>/tls, the admin kubeconfig, the loopback
// client configuration for in-process components, and the authentication of
// each request (bearer token or verified client certificate).
//
// Files (all keys and the token 0600, the directory 0700):
//
//	tls/ca.crt, tls/ca.key          cluster CA (ECDSA P-256, 10 years)
//	tls/server.crt, tls/server.key  serving certificate signed by the CA
//	tls/admin.crt, tls/admin.key    client certificate CN=admin, O=system:masters
//	tls/admin.token                 admin bearer token
//
// The CA is created once and never replaced: clients that trust it keep
// working across restarts. The serving certificate is re-issued when the
// wanted SAN set changes or it nears expiry; the admin certificate when it
// nears expiry.
package auth

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha1"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Validity periods and the renewal window of the certificates EnsurePKI
// issues.
const (
	caValidity   = 10 * 365 * 24 * time.Hour
	leafValidity = 365 * 24 * time.Hour
	// renewBefore: a leaf certificate with less than this left is re-issued
	// on the next start.
	renewBefore = 90 * 24 * time.Hour
	// clockSkew backdates NotBefore so that clients whose clocks lag a
	// little accept a certificate issued a moment ago.
	clockSkew = time.Hour
)

// Names of the admin identity.
const (
	AdminUser  = "admin"
	AdminGroup = "system:masters"
	// AuthenticatedGroup is added to every authenticated user, as
	// kube-apiserver does.
	AuthenticatedGroup = "system:authenticated"
)

// File names under <data-dir>/tls.
const (
	caCertFile     = "ca.crt"
	caKeyFile      = "ca.key"
	serverCertFile = "server.crt"
	serverKeyFile  = "server.key"
	adminCertFile  = "admin.crt"
	adminKeyFile   = "admin.key"
	tokenFile      = "admin.token"
)

// PKI holds the loaded CA, serving and admin credentials. It is immutable
// after EnsurePKI returns and safe for concurrent use.
type PKI struct {
	dir string

	caCert *x509.Certificate
	caPEM  []byte
	caPool *x509.CertPool

	serving     tls.Certificate
	servingCert *x509.Certificate

	adminCertPEM []byte
	adminKeyPEM  []byte
	token        string
}

// EnsurePKI loads the PKI under <dataDir>/tls, creating what is missing. sans
// are extra host names or IP addresses for the serving certificate (for
// example --tls-san values and the Service ClusterIP of "kubernetes"); the
// certificate always also names localhost, 127.0.0.1, ::1, the machine's
// host name, its non-loopback interface addresses and the in-cluster
// kubernetes.default names.
func EnsurePKI(dataDir string, sans []string) (*PKI, error) {
	return ensurePKI(dataDir, wantedSANs(sans, machineNames()), time.Now())
}

func ensurePKI(dataDir string, want sanSet, now time.Time) (*PKI, error) {
	dir := filepath.Join(dataDir, "tls")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create tls directory: %w", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, fmt.Errorf("restrict tls directory: %w", err)
	}
	p := &PKI{dir: dir}

	caCert, caKey, err := p.ensureCA(now)
	if err != nil {
		return nil, err
	}
	p.caCert = caCert
	p.caPEM = pemCert(caCert.Raw)
	p.caPool = x509.NewCertPool()
	p.caPool.AddCert(caCert)

	if err := p.ensureServing(caCert, caKey, want, now); err != nil {
		return nil, err
	}
	if err := p.ensureAdmin(caCert, caKey, now); err != nil {
		return nil, err
	}
	if err := p.ensureToken(); err != nil {
		return nil, err
	}
	return p, nil
}

// ensureCA loads the CA or creates it when neither its certificate nor its
// key exists. Half a CA (one file without the other) is an error: replacing
// it would silently invalidate every credential issued before.
func (p *PKI) ensureCA(now time.Time) (*x509.Certificate, crypto.Signer, error) {
	certPath, keyPath := p.path(caCertFile), p.path(caKeyFile)
	certPEM, certErr := os.ReadFile(certPath)
	keyPEM, keyErr := os.ReadFile(keyPath)
	switch {
	case certErr == nil && keyErr == nil:
		cert, key, err := parsePair(certPEM, keyPEM)
		if err != nil {
			return nil, nil, fmt.Errorf("load CA from %s: %w", p.dir, err)
		}
		if !cert.IsCA {
			return nil, nil, fmt.Errorf("load CA from %s: %s is not a CA certificate", p.dir, certPath)
		}
		return cert, key, nil
	case errors.Is(certErr, fs.ErrNotExist) && errors.Is(keyErr, fs.ErrNotExist):
	case certErr != nil && !errors.Is(certErr, fs.ErrNotExist):
		return nil, nil, fmt.Errorf("read CA certificate: %w", certErr)
	case keyErr != nil && !errors.Is(keyErr, fs.ErrNotExist):
		return nil, nil, fmt.Errorf("read CA key: %w", keyErr)
	default:
		return nil, nil, fmt.Errorf("incomplete CA in %s: need both %s and %s, or neither to create a new CA", p.dir, caCertFile, caKeyFile)
	}

	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generate CA key: %w", err)
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, nil, err
	}
	ski, err := subjectKeyID(key.Public())
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: fmt.Sprintf("skiff-ca@%d", now.Unix())},
		NotBefore:             now.Add(-clockSkew),
		NotAfter:              now.Add(caValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		SubjectKeyId:          ski,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, nil, fmt.Errorf("create CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, fmt.Errorf("parse new CA certificate: %w", err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("encode CA key: %w", err)
	}
	if err := writeFileAtomic(keyPath, pemBlock("EC PRIVATE KEY", keyDER), 0o600); err != nil {
		return nil, nil, fmt.Errorf("write CA key: %w", err)
	}
	if err := writeFileAtomic(certPath, pemCert(der), 0o644); err != nil {
		return nil, nil, fmt.Errorf("write CA certificate: %w", err)
	}
	return cert, key, nil
}

// ensureServing loads the serving certificate and re-issues it unless it is
// signed by caCert, names exactly the wanted SANs and is not near expiry.
func (p *PKI) ensureServing(caCert *x509.Certificate, caKey crypto.Signer, want sanSet, now time.Time) error {
	certPath, keyPath := p.path(serverCertFile), p.path(serverKeyFile)
	if cert, keyPEM, ok := p.loadLeaf(certPath, keyPath, caCert, x509.ExtKeyUsageServerAuth, now); ok && sansOf(cert).equal(want) {
		pair, err := tls.X509KeyPair(pemCert(cert.Raw), keyPEM)
		if err == nil {
			pair.Leaf = cert
			p.serving, p.servingCert = pair, cert
			return nil
		}
	}
	certPEM, keyPEM, cert, err := issueLeaf(caCert, caKey, leafSpec{
		subject:  pkix.Name{CommonName: "skiff-apiserver"},
		usage:    x509.ExtKeyUsageServerAuth,
		dnsNames: want.dns,
		ips:      want.ipList(),
	}, now)
	if err != nil {
		return fmt.Errorf("issue serving certificate: %w", err)
	}
	if err := writeFileAtomic(keyPath, keyPEM, 0o600); err != nil {
		return fmt.Errorf("write serving key: %w", err)
	}
	if err := writeFileAtomic(certPath, certPEM, 0o644); err != nil {
		return fmt.Errorf("write serving certificate: %w", err)
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return fmt.Errorf("load new serving certificate: %w", err)
	}
	pair.Leaf = cert
	p.serving, p.servingCert = pair, cert
	return nil
}

// ensureAdmin loads the admin client certificate, re-issuing it when it is
// missing, invalid, not signed by caCert or near expiry.
func (p *PKI) ensureAdmin(caCert *x509.Certificate, caKey crypto.Signer, now time.Time) error {
	certPath, keyPath := p.path(adminCertFile), p.path(adminKeyFile)
	if cert, keyPEM, ok := p.loadLeaf(certPath, keyPath, caCert, x509.ExtKeyUsageClientAuth, now); ok &&
		cert.Subject.CommonName == AdminUser && slices.Equal(cert.Subject.Organization, []string{AdminGroup}) {
		p.adminCertPEM, p.adminKeyPEM = pemCert(cert.Raw), keyPEM
		return nil
	}
	certPEM, keyPEM, _, err := issueLeaf(caCert, caKey, leafSpec{
		subject: pkix.Name{CommonName: AdminUser, Organization: []string{AdminGroup}},
		usage:   x509.ExtKeyUsageClientAuth,
	}, now)
	if err != nil {
		return fmt.Errorf("issue admin certificate: %w", err)
	}
	if err := writeFileAtomic(keyPath, keyPEM, 0o600); err != nil {
		return fmt.Errorf("write admin key: %w", err)
	}
	if err := writeFileAtomic(certPath, certPEM, 0o644); err != nil {
		return fmt.Errorf("write admin certificate: %w", err)
	}
	p.adminCertPEM, p.adminKeyPEM = certPEM, keyPEM
	return nil
}

// ensureToken loads the admin bearer token or creates one: 32 random bytes,
// hex encoded.
func (p *PKI) ensureToken() error {
	path := p.path(tokenFile)
	data, err := os.ReadFile(path)
	switch {
	case err == nil:
		tok := strings.TrimSpace(string(data))
		if tok == "" {
			return fmt.Errorf("admin token file %s is empty", path)
		}
		if err := os.Chmod(path, 0o600); err != nil {
			return fmt.Errorf("restrict admin token file: %w", err)
		}
		p.token = tok
		return nil
	case !errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("read admin token: %w", err)
	}
	buf := make([]byte, 32)
	if _, err := rand.Read(buf); err != nil {
		return fmt.Errorf("generate admin token: %w", err)
	}
	tok := hex.EncodeToString(buf)
	if err := writeFileAtomic(path, []byte(tok+"\n"), 0o600); err != nil {
		return fmt.Errorf("write admin token: %w", err)
	}
	p.token = tok
	return nil
}

// loadLeaf reads a certificate and key pair and reports whether it is usable
// as is: parseable, matching, signed by ca for usage, and not within
// renewBefore of expiry. Any problem means "re-issue", so it returns no error.
func (p *PKI) loadLeaf(certPath, keyPath string, ca *x509.Certificate, usage x509.ExtKeyUsage, now time.Time) (*x509.Certificate, []byte, bool) {
	certPEM, err := os.ReadFile(certPath)
	if err != nil {
		return nil, nil, false
	}
	keyPEM, err := os.ReadFile(keyPath)
	if err != nil {
		return nil, nil, false
	}
	cert, _, err := parsePair(certPEM, keyPEM)
	if err != nil {
		return nil, nil, false
	}
	if now.Add(renewBefore).After(cert.NotAfter) || now.Before(cert.NotBefore) {
		return nil, nil, false
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	if _, err := cert.Verify(x509.VerifyOptions{Roots: pool, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{usage}}); err != nil {
		return nil, nil, false
	}
	return cert, keyPEM, true
}

func (p *PKI) path(name string) string { return filepath.Join(p.dir, name) }

// leafSpec describes a certificate issueLeaf signs.
type leafSpec struct {
	subject  pkix.Name
	usage    x509.ExtKeyUsage
	dnsNames []string
	ips      []net.IP
}

// issueLeaf creates a new key and a certificate for it signed by the CA.
func issueLeaf(ca *x509.Certificate, caKey crypto.Signer, spec leafSpec, now time.Time) (certPEM, keyPEM []byte, cert *x509.Certificate, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("generate key: %w", err)
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, nil, nil, err
	}
	notAfter := now.Add(leafValidity)
	if notAfter.After(ca.NotAfter) {
		notAfter = ca.NotAfter
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               spec.subject,
		NotBefore:             now.Add(-clockSkew),
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{spec.usage},
		BasicConstraintsValid: true,
		DNSNames:              spec.dnsNames,
		IPAddresses:           spec.ips,
		AuthorityKeyId:        ca.SubjectKeyId,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, key.Public(), caKey)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("sign certificate: %w", err)
	}
	cert, err = x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("parse new certificate: %w", err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("encode key: %w", err)
	}
	return pemCert(der), pemBlock("EC PRIVATE KEY", keyDER), cert, nil
}

// parsePair parses a PEM certificate and private key and checks that they
// belong together.
func parsePair(certPEM, keyPEM []byte) (*x509.Certificate, crypto.Signer, error) {
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, nil, fmt.Errorf("parse key pair: %w", err)
	}
	cert, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		return nil, nil, fmt.Errorf("parse certificate: %w", err)
	}
	signer, ok := pair.PrivateKey.(crypto.Signer)
	if !ok {
		return nil, nil, fmt.Errorf("private key of type %T cannot sign", pair.PrivateKey)
	}
	return cert, signer, nil
}

func randomSerial() (*big.Int, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("generate serial number: %w", err)
	}
	return serial.Add(serial, big.NewInt(1)), nil
}

// subjectKeyID is the SHA-1 of the public key's DER, as RFC 5280 4.2.1.2
// suggests.
func subjectKeyID(pub crypto.PublicKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("encode public key: %w", err)
	}
	sum := sha1.Sum(der)
	return sum[:], nil
}

func pemCert(der []byte) []byte { return pemBlock("CERTIFICATE", der) }

func pemBlock(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

// writeFileAtomic writes data to a temporary file beside path, syncs it and
// renames it over path, so readers see the old or the new content, never a
// part.
func writeFileAtomic(path string, data []byte, mode os.FileMode) (err error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("create temporary file: %w", err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(tmp)
		}
	}()
	if err = f.Chmod(mode); err != nil {
		return fmt.Errorf("set mode of %s: %w", tmp, err)
	}
	if _, err = f.Write(data); err != nil {
		return fmt.Errorf("write %s: %w", tmp, err)
	}
	if err = f.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", tmp, err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", tmp, err)
	}
	if err = os.Rename(tmp, path); err != nil {
		return fmt.Errorf("rename %s to %s: %w", tmp, path, err)
	}
	return nil
}

// sanSet is a normalised set of subject alternative names: sorted, unique
// DNS names and IP addresses (IPs in their canonical string form).
type sanSet struct {
	dns []string
	ips []string
}

func (s sanSet) equal(o sanSet) bool {
	return slices.Equal(s.dns, o.dns) && slices.Equal(s.ips, o.ips)
}

func (s sanSet) ipList() []net.IP {
	out := make([]net.IP, 0, len(s.ips))
	for _, ip := range s.ips {
		out = append(out, net.ParseIP(ip))
	}
	return out
}

func (s sanSet) String() string {
	return strings.Join(append(slices.Clone(s.dns), s.ips...), ",")
}

// newSANSet normalises names: each is an IP address or a DNS name.
func newSANSet(names []string) sanSet {
	var s sanSet
	for _, n := range names {
		n = strings.TrimSpace(n)
		if n == "" {
			continue
		}
		if ip := net.ParseIP(n); ip != nil {
			if v4 := ip.To4(); v4 != nil {
				ip = v4
			}
			s.ips = append(s.ips, ip.String())
			continue
		}
		s.dns = append(s.dns, strings.ToLower(n))
	}
	slices.Sort(s.dns)
	s.dns = slices.Compact(s.dns)
	slices.Sort(s.ips)
	s.ips = slices.Compact(s.ips)
	return s
}

func sansOf(cert *x509.Certificate) sanSet {
	names := slices.Clone(cert.DNSNames)
	for _, ip := range cert.IPAddresses {
		names = append(names, ip.String())
	}
	return newSANSet(names)
}

// wantedSANs is the serving certificate's SAN set: the caller's extra names,
// the machine's names and the fixed local and in-cluster names.
func wantedSANs(extra, machine []string) sanSet {
	names := []string{
		"localhost", "127.0.0.1", "::1",
		// The names pods use for the API server through the "kubernetes"
		// Service.
		"kubernetes",
		"kubernetes.default",
		"kubernetes.default.svc",
		"kubernetes.default.svc.cluster.local",
	}
	names = append(names, machine...)
	names = append(names, extra...)
	return newSANSet(names)
}

// machineNames returns the host name and the non-loopback, non-link-local
// unicast addresses of the machine's interfaces. Lookup failures only shrink
// the list: the server still starts and --tls-san can add what is missing.
func machineNames() []string {
	var names []string
	if h, err := os.Hostname(); err == nil && h != "" {
		names = append(names, h)
	}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return names
	}
	for _, a := range addrs {
		ipnet, ok := a.(*net.IPNet)
		if !ok {
			continue
		}
		ip := ipnet.IP
		if ip.IsLoopback() || ip.IsLinkLocalUnicast() || ip.IsMulticast() || ip.IsUnspecified() {
			continue
		}
		names = append(names, ip.String())
	}
	return names
}

// CACertPEM returns the CA certificate, PEM encoded.
func (p *PKI) CACertPEM() []byte { return bytes.Clone(p.caPEM) }

// CAPool returns a pool holding only the cluster CA.
func (p *PKI) CAPool() *x509.CertPool { return p.caPool.Clone() }

// Token returns the admin bearer token.
func (p *PKI) Token() string { return p.token }

// Dir returns the directory holding the PKI files (<data-dir>/tls).
func (p *PKI) Dir() string { return p.dir }

// ServingCertificate returns the parsed serving certificate.
func (p *PKI) ServingCertificate() *x509.Certificate { return p.servingCert }

// AdminClientCertificate returns the admin client certificate and key, PEM
// encoded.
func (p *PKI) AdminClientCertificate() (certPEM, keyPEM []byte) {
	return bytes.Clone(p.adminCertPEM), bytes.Clone(p.adminKeyPEM)
}

// ServerTLSConfig returns the API server's TLS configuration: the serving
// certificate, client certificates requested and, when given, verified
// against the cluster CA (requests without one may still authenticate with
// a bearer token), TLS 1.2 or later, HTTP/2 offered.
func (p *PKI) ServerTLSConfig() *tls.Config {
	return &tls.Config{
		Certificates: []tls.Certificate{p.serving},
		ClientAuth:   tls.VerifyClientCertIfGiven,
		ClientCAs:    p.caPool.Clone(),
		MinVersion:   tls.VersionTLS12,
		NextProtos:   []string{"h2", "http/1.1"},
	}
}
