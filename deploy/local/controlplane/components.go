package controlplane

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"net"
	"strconv"
	"strings"
)

// kwokConfig holds the kwok Stages that play the kubelet; see the comment at its top.
//
//go:embed kwok.yaml
var kwokConfig []byte

// ports are the loopback ports of one control plane.
type ports struct {
	etcdClient, etcdPeer, apiserver, controllerManager, scheduler int
}

// pickPorts takes free loopback ports, except for a fixed apiserver port. All listeners stay
// open until every port is chosen, so no two components get the same one. A port is only
// reserved until its listener closes, though, so a child can lose it to another process
// before it binds; Start retries with new ports when that happens.
func pickPorts(apiserver int) (ports, error) {
	var p ports
	var listeners []net.Listener
	defer func() {
		for _, l := range listeners {
			_ = l.Close()
		}
	}()
	for _, dst := range []*int{&p.etcdClient, &p.etcdPeer, &p.apiserver, &p.controllerManager, &p.scheduler} {
		addr, what := "127.0.0.1:0", "pick a free port"
		if dst == &p.apiserver && apiserver != 0 {
			// Check a fixed port now: if it is taken, a retry will not free it.
			addr, what = "127.0.0.1:"+strconv.Itoa(apiserver), "kube-apiserver port (is another control plane running?)"
		}
		l, err := net.Listen("tcp", addr)
		if err != nil {
			return p, fmt.Errorf("%s: %w", what, err)
		}
		listeners = append(listeners, l)
		*dst = l.Addr().(*net.TCPAddr).Port
	}
	return p, nil
}

func loopback(scheme string, port int) string {
	return scheme + "://127.0.0.1:" + strconv.Itoa(port)
}

// etcdArgs: a single member whose data is thrown away, so fsync is pointless, and short
// heartbeat and election timeouts make it leader in about 0.1 s instead of up to 1 s.
func etcdArgs(dataDir string, p ports) []string {
	client, peer := loopback("http", p.etcdClient), loopback("http", p.etcdPeer)
	return []string{
		"--name=sparkpods",
		"--data-dir=" + dataDir,
		"--listen-client-urls=" + client,
		"--advertise-client-urls=" + client,
		"--listen-peer-urls=" + peer,
		"--initial-advertise-peer-urls=" + peer,
		"--initial-cluster=sparkpods=" + peer,
		"--unsafe-no-fsync",
		"--heartbeat-interval=10",
		"--election-timeout=100",
		"--log-level=warn",
	}
}

// apiserverArgs serves on loopback only, with RBAC and client-certificate authentication.
func apiserverArgs(k *pki, p ports) []string {
	return []string{
		"--etcd-servers=" + loopback("http", p.etcdClient),
		"--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1",
		"--secure-port=" + strconv.Itoa(p.apiserver),
		"--tls-cert-file=" + k.path("apiserver.crt"),
		"--tls-private-key-file=" + k.path("apiserver.key"),
		"--client-ca-file=" + k.path("ca.crt"),
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file=" + k.path("sa.pub"),
		"--service-account-signing-key-file=" + k.path("sa.key"),
		"--service-cluster-ip-range=10.0.0.0/24",
		// The endpoints reconciler refuses a loopback advertise address and the apiserver exits.
		"--endpoint-reconciler-type=none",
		"--authorization-mode=RBAC",
		// ServiceAccount: with it, every pod create in a namespace fails until KCM's
		// serviceaccount controller has made that namespace's "default" ServiceAccount, a
		// fraction of a second after the namespace appears. Tests and services create pods
		// right after creating namespaces, so that race would make them flaky; waiting for the
		// ServiceAccount in every test helper is easy to forget in the next one. kwok runs no
		// containers, so the token volume the plugin adds would have no use anyway. KCM still
		// creates ServiceAccounts and tokens for code that asks for them.
		//
		// TaintNodesByCondition: it gives every new node the not-ready:NoSchedule taint, and
		// only the node-lifecycle controller, which we do not run (kwok sends no heartbeats, so
		// it would mark the nodes NotReady and evict the pods), would remove it again.
		"--disable-admission-plugins=ServiceAccount,TaintNodesByCondition",
	}
}

// controllerManagerControllers are what executor pods rely on: ServiceAccounts and their
// tokens, namespace deletion, ownerReference garbage collection (executors are owned by the
// driver pod), kube-root-ca.crt and pod GC; and ResourceQuota usage, without which the quota
// admission plugin refuses every pod in a namespace that has a quota (its usage stays
// unknown). node-lifecycle is left out on purpose, see above.
var controllerManagerControllers = []string{
	"serviceaccount-controller",
	"serviceaccount-token-controller",
	"namespace-controller",
	"garbage-collector-controller",
	"root-ca-certificate-publisher-controller",
	"pod-garbage-collector-controller",
	"resourcequota-controller",
}

func controllerManagerArgs(k *pki, kubeconfig string, p ports) []string {
	return []string{
		"--kubeconfig=" + kubeconfig,
		"--authentication-kubeconfig=" + kubeconfig,
		"--authorization-kubeconfig=" + kubeconfig,
		"--bind-address=127.0.0.1",
		"--secure-port=" + strconv.Itoa(p.controllerManager),
		"--leader-elect=false",
		"--controllers=" + strings.Join(controllerManagerControllers, ","),
		"--service-account-private-key-file=" + k.path("sa.key"),
		"--root-ca-file=" + k.path("ca.crt"),
		"--use-service-account-credentials=false",
		// The default 20 QPS would make the garbage collector delete a finished application's
		// executors at 20 pods/s.
		"--kube-api-qps=1000",
		"--kube-api-burst=2000",
	}
}

// schedulerConfig raises the scheduler's client rate limit: at its default of 50 QPS each
// bind is one request, so scheduled pods would reach Running at about 55/s; raised, this
// machine's CPU is the limit (about 230/s). The --kube-api-qps flags are ignored once
// --config is given, hence the file.
func schedulerConfig(kubeconfig string) ([]byte, error) {
	cfg := map[string]any{
		"apiVersion": "kubescheduler.config.k8s.io/v1",
		"kind":       "KubeSchedulerConfiguration",
		"clientConnection": map[string]any{
			"kubeconfig": kubeconfig,
			"qps":        1000,
			"burst":      2000,
		},
		"leaderElection": map[string]any{"leaderElect": false},
	}
	// JSON is YAML, and encoding/json quotes the path correctly.
	b, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("scheduler configuration: %w", err)
	}
	return b, nil
}

func schedulerArgs(configPath, kubeconfig string, p ports) []string {
	return []string{
		"--config=" + configPath,
		"--authentication-kubeconfig=" + kubeconfig,
		"--authorization-kubeconfig=" + kubeconfig,
		"--bind-address=127.0.0.1",
		"--secure-port=" + strconv.Itoa(p.scheduler),
	}
}

func kwokArgs(configPath, kubeconfig string) []string {
	return []string{
		"--kubeconfig=" + kubeconfig,
		"--config=" + configPath,
	}
}
