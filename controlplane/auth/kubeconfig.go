package auth

import (
	"fmt"
	"os"
	"path/filepath"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// KubeconfigName names the cluster, user and context of the admin
// kubeconfig.
const KubeconfigName = "skiff"

// Kubeconfig returns the admin kubeconfig for serverURL: the CA, the admin
// client certificate and key embedded, one cluster, user and context named
// "skiff", which is the current context.
func (p *PKI) Kubeconfig(serverURL string) *clientcmdapi.Config {
	cfg := clientcmdapi.NewConfig()
	cluster := clientcmdapi.NewCluster()
	cluster.Server = serverURL
	cluster.CertificateAuthorityData = p.CACertPEM()
	cfg.Clusters[KubeconfigName] = cluster

	user := clientcmdapi.NewAuthInfo()
	user.ClientCertificateData, user.ClientKeyData = p.AdminClientCertificate()
	cfg.AuthInfos[KubeconfigName] = user

	kctx := clientcmdapi.NewContext()
	kctx.Cluster = KubeconfigName
	kctx.AuthInfo = KubeconfigName
	cfg.Contexts[KubeconfigName] = kctx
	cfg.CurrentContext = KubeconfigName
	return cfg
}

// WriteKubeconfig writes the admin kubeconfig for serverURL to path,
// atomically and with mode 0600, creating the parent directory if needed.
func (p *PKI) WriteKubeconfig(path, serverURL string) error {
	data, err := clientcmd.Write(*p.Kubeconfig(serverURL))
	if err != nil {
		return fmt.Errorf("encode kubeconfig: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("create kubeconfig directory: %w", err)
	}
	if err := writeFileAtomic(path, data, 0o600); err != nil {
		return fmt.Errorf("write kubeconfig: %w", err)
	}
	return nil
}

// RESTConfig returns a client-go configuration for in-process clients of the
// server at serverURL (scheduler, controllers): the admin bearer token and
// the cluster CA. Callers set QPS, Burst and UserAgent as they need.
func (p *PKI) RESTConfig(serverURL string) *rest.Config {
	return &rest.Config{
		Host:        serverURL,
		BearerToken: p.token,
		TLSClientConfig: rest.TLSClientConfig{
			CAData: p.CACertPEM(),
		},
	}
}
