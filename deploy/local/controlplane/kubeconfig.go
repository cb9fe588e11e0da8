package controlplane

import (
	"fmt"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

const contextName = "sparkpods-local"

// Client-side rate limits for the admin client. client-go's default of 5 QPS would cap a test
// at about 6 pod creates per second; these leave the machine's CPU as the only limit.
const (
	clientQPS   = 1000
	clientBurst = 2000
)

// writeKubeconfig writes a self-contained admin kubeconfig (certificates inlined, so the file
// can be copied elsewhere) and returns the matching rest.Config.
func writeKubeconfig(path, server string, k *pki) (*rest.Config, error) {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters[contextName] = &clientcmdapi.Cluster{Server: server, CertificateAuthorityData: k.caPEM}
	cfg.AuthInfos[contextName] = &clientcmdapi.AuthInfo{
		ClientCertificateData: k.adminCertPEM,
		ClientKeyData:         k.adminKeyPEM,
	}
	cfg.Contexts[contextName] = &clientcmdapi.Context{Cluster: contextName, AuthInfo: contextName}
	cfg.CurrentContext = contextName
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		return nil, fmt.Errorf("write kubeconfig: %w", err)
	}
	rc, err := clientcmd.NewDefaultClientConfig(*cfg, nil).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("kubeconfig: %w", err)
	}
	rc.QPS, rc.Burst = clientQPS, clientBurst
	return rc, nil
}
