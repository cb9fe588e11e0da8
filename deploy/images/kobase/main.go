// Command kobase writes the base image for `make images`: a linux/amd64 OCI image with no layers
// (like "scratch") that runs as the non-root user 65532, into an OCI image layout (default
// $KOCACHE/img, ko's base-image cache), and prints its digest. ko consults that cache for a
// base image named by digest, so KO_DEFAULTBASEIMAGE=<any-registry>/<name>@<digest> builds
// without a registry or a Docker daemon. The sparkpods binaries are static Go and need
// nothing else: no shell, no CA certificates (they talk to the API server with its own CA).
package main

import (
	"fmt"
	"os"
	"path/filepath"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "kobase:", err)
		os.Exit(1)
	}
}

func run() error {
	dir := filepath.Join(os.Getenv("KOCACHE"), "img")
	if len(os.Args) > 1 {
		dir = os.Args[1]
	}
	// OCI media types, which ko keeps for the images it builds on this base.
	base := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	img, err := mutate.ConfigFile(base, &v1.ConfigFile{
		Architecture: "amd64",
		OS:           "linux",
		RootFS:       v1.RootFS{Type: "layers"},
		Config:       v1.Config{Env: []string{"PATH=/usr/local/bin:/usr/bin:/bin"}, User: "65532:65532"},
	})
	if err != nil {
		return err
	}
	p, err := layout.FromPath(dir)
	if err != nil {
		if p, err = layout.Write(dir, empty.Index); err != nil {
			return err
		}
	}
	if err := p.AppendImage(img); err != nil {
		return err
	}
	d, err := img.Digest()
	if err != nil {
		return err
	}
	fmt.Println(d)
	return nil
}
