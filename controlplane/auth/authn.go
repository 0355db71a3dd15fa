package auth

import (
	"crypto/subtle"
	"crypto/x509"
	"net/http"
	"slices"
	"strings"
)

// User is an authenticated identity.
type User struct {
	Name   string
	Groups []string
}

// Authenticate identifies the client of r, in kube-apiserver's order: a
// client certificate verified against the cluster CA (the user is its
// Common Name, the groups its Organizations), then an
// "Authorization: Bearer <token>" header holding the admin token. Every
// authenticated user is also in system:authenticated. It reports false when
// neither identifies the client; the caller answers 401.
func (p *PKI) Authenticate(r *http.Request) (User, bool) {
	if u, ok := p.authenticateCert(r); ok {
		return u, true
	}
	return p.authenticateToken(r)
}

func (p *PKI) authenticateCert(r *http.Request) (User, bool) {
	if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		return User{}, false
	}
	leaf := r.TLS.PeerCertificates[0]
	if !p.verifiedByCA(r, leaf) {
		return User{}, false
	}
	if leaf.Subject.CommonName == "" {
		return User{}, false
	}
	return User{
		Name:   leaf.Subject.CommonName,
		Groups: withAuthenticated(leaf.Subject.Organization),
	}, true
}

// verifiedByCA reports whether leaf chains to the cluster CA for client
// authentication. The TLS handshake has already verified it when the
// connection used ServerTLSConfig; then its chains are only checked to end
// at our CA. Otherwise (a listener configured differently) it is verified
// here.
func (p *PKI) verifiedByCA(r *http.Request, leaf *x509.Certificate) bool {
	for _, chain := range r.TLS.VerifiedChains {
		if len(chain) > 0 && chain[0].Equal(leaf) && chain[len(chain)-1].Equal(p.caCert) {
			return true
		}
	}
	intermediates := x509.NewCertPool()
	for _, c := range r.TLS.PeerCertificates[1:] {
		intermediates.AddCert(c)
	}
	_, err := leaf.Verify(x509.VerifyOptions{
		Roots:         p.caPool,
		Intermediates: intermediates,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
	return err == nil
}

func (p *PKI) authenticateToken(r *http.Request) (User, bool) {
	tok, ok := bearerToken(r.Header.Get("Authorization"))
	if !ok {
		return User{}, false
	}
	if subtle.ConstantTimeCompare([]byte(tok), []byte(p.token)) != 1 {
		return User{}, false
	}
	return User{Name: AdminUser, Groups: []string{AdminGroup, AuthenticatedGroup}}, true
}

// bearerToken extracts the token of an "Authorization: Bearer <token>"
// header value. The scheme is case-insensitive, as in kube-apiserver.
func bearerToken(header string) (string, bool) {
	scheme, tok, found := strings.Cut(strings.TrimSpace(header), " ")
	if !found || !strings.EqualFold(scheme, "bearer") {
		return "", false
	}
	tok = strings.TrimSpace(tok)
	if tok == "" || strings.ContainsAny(tok, " \t") {
		return "", false
	}
	return tok, true
}

func withAuthenticated(groups []string) []string {
	out := slices.Clone(groups)
	if !slices.Contains(out, AuthenticatedGroup) {
		out = append(out, AuthenticatedGroup)
	}
	return out
}
