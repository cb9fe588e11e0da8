package transport

import (
	"context"
	"net"
	"time"

	"google.golang.org/grpc/credentials"
)

// ClientCredentials are gRPC transport credentials that verify the server
// against CAFile and present CertFile when one is given. The files are
// re-read when they change, and each new connection uses what they hold at
// its handshake. serverName overrides the name the server certificate must
// carry; empty means the host part of the dialled address.
func (f Files) ClientCredentials(serverName string) (credentials.TransportCredentials, error) {
	r, err := newReloader(f, false, time.Now)
	if err != nil {
		return nil, err
	}
	return &reloadingCredentials{files: r, serverName: serverName}, nil
}

// reloadingCredentials delegate each handshake to credentials.NewTLS over a
// configuration built from the current files, so a rotated CA bundle or
// client certificate takes effect on the next connection.
type reloadingCredentials struct {
	files      *reloader
	serverName string
}

func (c *reloadingCredentials) ClientHandshake(ctx context.Context, authority string, conn net.Conn) (net.Conn, credentials.AuthInfo, error) {
	return credentials.NewTLS(c.files.clientConfig(c.serverName)).ClientHandshake(ctx, authority, conn)
}

func (c *reloadingCredentials) ServerHandshake(conn net.Conn) (net.Conn, credentials.AuthInfo, error) {
	return credentials.NewTLS(c.files.clientConfig(c.serverName)).ServerHandshake(conn)
}

// Info reports serverName as the server name: grpc-go takes it for the
// authority, and its TLS handshake verifies the server against the
// authority, not against tls.Config.ServerName.
func (c *reloadingCredentials) Info() credentials.ProtocolInfo {
	info := credentials.NewTLS(nil).Info()
	info.ServerName = c.serverName //nolint:staticcheck // grpc-go still reads it for the authority.
	return info
}

func (c *reloadingCredentials) Clone() credentials.TransportCredentials {
	return &reloadingCredentials{files: c.files, serverName: c.serverName}
}

// OverrideServerName is part of credentials.TransportCredentials (deprecated
// there); it sets the name the server certificate must carry.
func (c *reloadingCredentials) OverrideServerName(name string) error {
	c.serverName = name
	return nil
}
