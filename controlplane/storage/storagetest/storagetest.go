// Package storagetest is test support for etcd over TLS: it writes a
// throwaway CA with a server and a client certificate, and starts an
// embedded etcd that serves clients over HTTPS and requires a client
// certificate signed by that CA, as an external etcd cluster does. Tests of
// the storage client and of `skiff server --etcd-endpoints` share it.
package storagetest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/transport"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
)

// Certs are the PEM files WriteCerts wrote.
type Certs struct {
	// CAFile is the CA that signed both leaves.
	CAFile string
	// ServerCertFile and ServerKeyFile are for etcd: SAN 127.0.0.1 and
	// localhost, usable for server and client auth (etcd's gRPC gateway
	// dials etcd with the serving certificate).
	ServerCertFile string
	ServerKeyFile  string
	// ClientCertFile and ClientKeyFile are a client certificate (CN
	// skiff-test-client).
	ClientCertFile string
	ClientKeyFile  string
}

// WriteCerts writes a new CA, a server and a client certificate into dir.
// Each call makes a different CA.
func WriteCerts(t testing.TB, dir string) Certs {
	t.Helper()
	c, err := writeCerts(dir, time.Now())
	if err != nil {
		t.Fatalf("write test certificates: %v", err)
	}
	return c
}

func writeCerts(dir string, now time.Time) (Certs, error) {
	c := Certs{
		CAFile:         filepath.Join(dir, "ca.crt"),
		ServerCertFile: filepath.Join(dir, "server.crt"),
		ServerKeyFile:  filepath.Join(dir, "server.key"),
		ClientCertFile: filepath.Join(dir, "client.crt"),
		ClientKeyFile:  filepath.Join(dir, "client.key"),
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return Certs{}, err
	}
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return Certs{}, err
	}
	caTmpl := &x509.Certificate{
		Subject:               pkix.Name{CommonName: "skiff-test-etcd-ca"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	caCert, err := sign(caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return Certs{}, fmt.Errorf("ca: %w", err)
	}
	if err := os.WriteFile(c.CAFile, pemBlock("CERTIFICATE", caCert.Raw), 0o600); err != nil {
		return Certs{}, err
	}
	leaves := []struct {
		tmpl            *x509.Certificate
		certPath, kPath string
	}{
		{&x509.Certificate{
			Subject:     pkix.Name{CommonName: "skiff-test-etcd"},
			DNSNames:    []string{"localhost"},
			IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		}, c.ServerCertFile, c.ServerKeyFile},
		{&x509.Certificate{
			Subject:     pkix.Name{CommonName: "skiff-test-client"},
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		}, c.ClientCertFile, c.ClientKeyFile},
	}
	for _, l := range leaves {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return Certs{}, err
		}
		l.tmpl.NotBefore, l.tmpl.NotAfter = now.Add(-time.Hour), now.Add(24*time.Hour)
		l.tmpl.KeyUsage = x509.KeyUsageDigitalSignature
		cert, err := sign(l.tmpl, caCert, &key.PublicKey, caKey)
		if err != nil {
			return Certs{}, fmt.Errorf("%s: %w", l.tmpl.Subject.CommonName, err)
		}
		der, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			return Certs{}, err
		}
		if err := os.WriteFile(l.certPath, pemBlock("CERTIFICATE", cert.Raw), 0o600); err != nil {
			return Certs{}, err
		}
		if err := os.WriteFile(l.kPath, pemBlock("PRIVATE KEY", der), 0o600); err != nil {
			return Certs{}, err
		}
	}
	return c, nil
}

func sign(tmpl, parent *x509.Certificate, pub *ecdsa.PublicKey, signer *ecdsa.PrivateKey) (*x509.Certificate, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, err
	}
	tmpl.SerialNumber = serial
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, signer)
	if err != nil {
		return nil, err
	}
	return x509.ParseCertificate(der)
}

func pemBlock(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

// StartTLSEtcd starts a single-member etcd with its data in dir that serves
// clients at https://127.0.0.1 on a free port with certs' server
// certificate, and accepts only clients with a certificate signed by
// certs' CA. It returns the client URL (with the bound port) once etcd
// serves, and stops etcd when the test ends.
func StartTLSEtcd(t testing.TB, dir string, certs Certs) string {
	t.Helper()
	curl, _ := url.Parse("https://127.0.0.1:0")
	purl, _ := url.Parse("http://127.0.0.1:0")
	ec := embed.NewConfig()
	ec.Name = "skiff-test"
	ec.Dir = filepath.Join(dir, "etcd")
	ec.ListenClientUrls = []url.URL{*curl}
	ec.AdvertiseClientUrls = []url.URL{*curl}
	ec.ListenPeerUrls = []url.URL{*purl}
	ec.AdvertisePeerUrls = []url.URL{*purl}
	ec.InitialCluster = ec.InitialClusterFromName(ec.Name)
	ec.ClientTLSInfo = transport.TLSInfo{
		TrustedCAFile:  certs.CAFile,
		CertFile:       certs.ServerCertFile,
		KeyFile:        certs.ServerKeyFile,
		ClientCertAuth: true,
	}
	ec.UnsafeNoFsync = true
	ec.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
	ec.LogLevel = "error"
	if err := ec.Validate(); err != nil {
		t.Fatalf("etcd config: %v", err)
	}
	e, err := embed.StartEtcd(ec)
	if err != nil {
		t.Fatalf("start etcd: %v", err)
	}
	t.Cleanup(e.Close)
	const readyTimeout = time.Minute
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		t.Fatalf("etcd failed while starting: %v", err)
	case <-time.After(readyTimeout):
		e.Server.Stop()
		t.Fatalf("etcd not ready after %s", readyTimeout)
	}
	if len(e.Clients) == 0 {
		t.Fatal("etcd has no client listener")
	}
	return "https://" + e.Clients[0].Addr().String()
}
