package controlplane

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"k8s.io/client-go/kubernetes"
)

const (
	pollInterval = 25 * time.Millisecond
	probeTimeout = 2 * time.Second
)

// waitFor polls ready until it returns true. It fails fast, with the end of the log, as soon
// as any child exits: a component that cannot start should cost seconds, not the whole timeout.
func (c *ControlPlane) waitFor(ctx context.Context, what string, ready func(context.Context) bool) error {
	ticker := time.NewTicker(pollInterval)
	defer ticker.Stop()
	for {
		probeCtx, cancel := context.WithTimeout(ctx, probeTimeout)
		ok := ready(probeCtx)
		cancel()
		if ok {
			return nil
		}
		select {
		case ch := <-c.died:
			return ch.exitError(what)
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w (logs in %s)", what, context.Cause(ctx), c.opts.Dir)
		case <-ticker.C:
		}
	}
}

// probeClient checks the components' own health endpoints. kube-controller-manager and
// kube-scheduler serve them with a self-signed certificate generated in memory at start, which
// no file holds to verify against; the connection goes to a loopback port we just chose.
var probeClient = &http.Client{
	Transport: &http.Transport{
		TLSClientConfig:   &tls.Config{InsecureSkipVerify: true}, // see above
		DisableKeepAlives: true,
	},
}

// httpOK reports whether GET url answers 200 with a body containing want.
func httpOK(ctx context.Context, url, want string) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return false
	}
	resp, err := probeClient.Do(req)
	if err != nil {
		return false
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4096))
	return err == nil && resp.StatusCode == http.StatusOK && bytes.Contains(body, []byte(want))
}

func etcdHealthy(port int) func(context.Context) bool {
	return func(ctx context.Context) bool {
		return httpOK(ctx, loopback("http", port)+"/health", `"health":"true"`)
	}
}

// componentHealthy probes kube-controller-manager's or kube-scheduler's health path; both
// allow it without credentials.
func componentHealthy(port int, path string) func(context.Context) bool {
	return func(ctx context.Context) bool {
		return httpOK(ctx, "https://127.0.0.1:"+strconv.Itoa(port)+path, "ok")
	}
}

// apiserverReady asks /readyz as the admin: it turns ok only after the bootstrap RBAC roles
// and priority classes exist, which is what every client needs.
func apiserverReady(client kubernetes.Interface) func(context.Context) bool {
	return func(ctx context.Context) bool {
		body, err := client.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
		return err == nil && string(body) == "ok"
	}
}
