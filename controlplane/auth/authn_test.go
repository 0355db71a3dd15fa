package auth

import (
	"crypto/tls"
	"crypto/x509/pkix"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// whoami serves the authenticated user as "name groups", or 401.
func whoami(p *PKI) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, ok := p.Authenticate(r)
		if !ok {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		fmt.Fprintf(w, "%s %s", u.Name, strings.Join(u.Groups, ","))
	})
}

// startServer serves whoami over TLS with p's ServerTLSConfig on a free
// 127.0.0.1 port.
func startServer(t *testing.T, p *PKI) *httptest.Server {
	t.Helper()
	srv := httptest.NewUnstartedServer(whoami(p))
	srv.TLS = p.ServerTLSConfig()
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv
}

func get(t *testing.T, client *http.Client, url, authz string) (int, string, error) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if authz != "" {
		req.Header.Set("Authorization", authz)
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, "", err
	}
	return resp.StatusCode, strings.TrimSpace(string(body)), nil
}

func TestAuthenticateTLS(t *testing.T) {
	p := mustEnsure(t, t.TempDir(), wantedSANs(nil, nil), time.Now())
	foreign := mustEnsure(t, t.TempDir(), wantedSANs(nil, nil), time.Now())
	srv := startServer(t, p)

	adminPEM, adminKey := p.AdminClientCertificate()
	admin, err := tls.X509KeyPair(adminPEM, adminKey)
	if err != nil {
		t.Fatal(err)
	}
	foreignPEM, foreignKey := foreign.AdminClientCertificate()
	foreignAdmin, err := tls.X509KeyPair(foreignPEM, foreignKey)
	if err != nil {
		t.Fatal(err)
	}
	node := issueClientCert(t, p, pkix.Name{CommonName: "system:node:n1", Organization: []string{"system:nodes"}})

	tests := []struct {
		name       string
		cert       *tls.Certificate
		authz      string
		wantErr    bool
		wantStatus int
		wantBody   string
	}{
		{name: "no credentials", wantStatus: 401, wantBody: "unauthorized"},
		{name: "good token", authz: "Bearer " + p.Token(), wantStatus: 200, wantBody: "admin system:masters,system:authenticated"},
		{name: "good token lower-case scheme", authz: "bearer " + p.Token(), wantStatus: 200, wantBody: "admin system:masters,system:authenticated"},
		{name: "bad token", authz: "Bearer " + strings.Repeat("0", 64), wantStatus: 401, wantBody: "unauthorized"},
		{name: "token prefix", authz: "Bearer " + p.Token()[:10], wantStatus: 401, wantBody: "unauthorized"},
		{name: "other CA's token", authz: "Bearer " + foreign.Token(), wantStatus: 401, wantBody: "unauthorized"},
		{name: "basic scheme", authz: "Basic " + p.Token(), wantStatus: 401, wantBody: "unauthorized"},
		{name: "empty bearer", authz: "Bearer ", wantStatus: 401, wantBody: "unauthorized"},
		{name: "admin certificate", cert: &admin, wantStatus: 200, wantBody: "admin system:masters,system:authenticated"},
		{name: "admin certificate and bad token", cert: &admin, authz: "Bearer nope", wantStatus: 200, wantBody: "admin system:masters,system:authenticated"},
		{name: "node certificate", cert: &node, wantStatus: 200, wantBody: "system:node:n1 system:nodes,system:authenticated"},
		{name: "certificate of another CA", cert: &foreignAdmin, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := &tls.Config{RootCAs: p.CAPool(), ServerName: "localhost"}
			if tt.cert != nil {
				cfg.Certificates = []tls.Certificate{*tt.cert}
			}
			client := &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}}
			defer client.CloseIdleConnections()
			status, body, err := get(t, client, srv.URL, tt.authz)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("request: got status %d, want a TLS handshake error", status)
				}
				return
			}
			if err != nil {
				t.Fatalf("request: %v", err)
			}
			if status != tt.wantStatus || body != tt.wantBody {
				t.Errorf("got %d %q, want %d %q", status, body, tt.wantStatus, tt.wantBody)
			}
		})
	}
}

func TestAuthenticateWithoutTLS(t *testing.T) {
	// Over plain HTTP (a test harness, or a listener that terminated TLS
	// elsewhere) only the token can authenticate.
	p := mustEnsure(t, t.TempDir(), wantedSANs(nil, nil), time.Now())
	tests := []struct {
		authz string
		want  bool
	}{
		{"", false},
		{"Bearer " + p.Token(), true},
		{"Bearer  " + p.Token() + " ", true},
		{"Bearer " + p.Token() + " extra", false},
		{"Token " + p.Token(), false},
		{p.Token(), false},
	}
	for _, tt := range tests {
		r := httptest.NewRequest(http.MethodGet, "/api", nil)
		if tt.authz != "" {
			r.Header.Set("Authorization", tt.authz)
		}
		u, ok := p.Authenticate(r)
		if ok != tt.want {
			t.Errorf("Authenticate(%q): got %v (%+v), want %v", tt.authz, ok, u, tt.want)
		}
	}
}

func TestKubeconfig(t *testing.T) {
	p := mustEnsure(t, t.TempDir(), wantedSANs(nil, nil), time.Now())
	srv := startServer(t, p)
	path := filepath.Join(t.TempDir(), "sub", "kubeconfig")
	if err := p.WriteKubeconfig(path, srv.URL); err != nil {
		t.Fatalf("WriteKubeconfig: %v", err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := st.Mode().Perm(); got != 0o600 {
		t.Errorf("kubeconfig mode: got %v, want 0600", got)
	}
	// Writing again replaces the file in place.
	if err := p.WriteKubeconfig(path, srv.URL); err != nil {
		t.Fatalf("WriteKubeconfig again: %v", err)
	}
	entries, err := os.ReadDir(filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Errorf("kubeconfig directory: got %d entries, want 1 (no temporary files left)", len(entries))
	}

	raw, err := clientcmd.LoadFromFile(path)
	if err != nil {
		t.Fatalf("load kubeconfig: %v", err)
	}
	if raw.CurrentContext != "skiff" || raw.Contexts["skiff"] == nil || raw.Contexts["skiff"].Cluster != "skiff" || raw.Contexts["skiff"].AuthInfo != "skiff" {
		t.Errorf("kubeconfig context: got current %q and %+v, want skiff/skiff/skiff", raw.CurrentContext, raw.Contexts["skiff"])
	}
	if err := clientcmd.Validate(*raw); err != nil {
		t.Errorf("validate kubeconfig: got %v, want nil", err)
	}

	kubeconfig, err := clientcmd.BuildConfigFromFlags("", path)
	if err != nil {
		t.Fatalf("build config from kubeconfig: %v", err)
	}
	loopback := p.RESTConfig(srv.URL)
	for name, cfg := range map[string]*rest.Config{"kubeconfig": kubeconfig, "RESTConfig": loopback} {
		t.Run(name, func(t *testing.T) {
			client, err := rest.HTTPClientFor(cfg)
			if err != nil {
				t.Fatalf("HTTPClientFor: %v", err)
			}
			defer client.CloseIdleConnections()
			status, body, err := get(t, client, cfg.Host, "")
			if err != nil {
				t.Fatalf("request: %v", err)
			}
			if want := "admin system:masters,system:authenticated"; status != 200 || body != want {
				t.Errorf("got %d %q, want 200 %q", status, body, want)
			}
		})
	}
}
