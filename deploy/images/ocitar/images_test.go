package main

import (
	"archive/tar"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// images is where `make images` writes the tarballs; $SPARKPODS_IMAGES
// overrides it, and makes a missing tarball a failure (`make test-images`
// sets it, so CI cannot pass without the images).
func imagesDir() (dir string, required bool) {
	if d := os.Getenv("SPARKPODS_IMAGES"); d != "" {
		return d, true
	}
	return "../../../bin/images", false
}

// TestImages reads back each tarball `make images` wrote, as an OCI image layout: one image,
// named, with OCI media types, for linux/amd64, running the service's binary as user 65532.
// Run by hand without $SPARKPODS_IMAGES, it skips when there are no
// tarballs (run `make images` first).
func TestImages(t *testing.T) {
	images, required := imagesDir()
	for _, svc := range []string{"snapshot", "podmanager", "allocator", "lifecycle"} {
		t.Run(svc, func(t *testing.T) {
			path := filepath.Join(images, "sparkpods-"+svc+".oci.tar")
			if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
				if required {
					t.Fatalf("no %s: `make images` did not write it", path)
				}
				t.Skipf("no %s (make images)", path)
			}
			dir := untar(t, path)
			p, err := layout.FromPath(dir)
			if err != nil {
				t.Fatal(err)
			}
			idx, err := p.ImageIndex()
			if err != nil {
				t.Fatal(err)
			}
			m, err := idx.IndexManifest()
			if err != nil {
				t.Fatal(err)
			}
			if len(m.Manifests) != 1 {
				t.Fatalf("index.json lists %d manifests, want 1", len(m.Manifests))
			}
			desc := m.Manifests[0]
			if name := desc.Annotations["org.opencontainers.image.ref.name"]; !strings.HasSuffix(name, "/sparkpods-"+svc+":latest") {
				t.Errorf("image named %q, want …/sparkpods-%s:latest", name, svc)
			}
			if desc.MediaType != types.OCIManifestSchema1 {
				t.Errorf("manifest media type %s, want %s", desc.MediaType, types.OCIManifestSchema1)
			}
			img, err := idx.Image(desc.Digest)
			if err != nil {
				t.Fatal(err)
			}
			manifest, err := img.Manifest()
			if err != nil {
				t.Fatal(err)
			}
			if manifest.Config.MediaType != types.OCIConfigJSON {
				t.Errorf("config media type %s, want %s", manifest.Config.MediaType, types.OCIConfigJSON)
			}
			if len(manifest.Layers) == 0 {
				t.Fatal("no layers")
			}
			for _, l := range manifest.Layers {
				if !l.MediaType.IsLayer() || !strings.HasPrefix(string(l.MediaType), "application/vnd.oci.") {
					t.Errorf("layer media type %s is not an OCI layer", l.MediaType)
				}
			}
			// Every blob is present and matches its digest.
			layers, err := img.Layers()
			if err != nil {
				t.Fatal(err)
			}
			for _, l := range layers {
				d, err := l.Digest()
				if err != nil {
					t.Fatal(err)
				}
				if _, err := p.Blob(d); err != nil {
					t.Errorf("layer %s: %v", d, err)
				}
			}
			cf, err := img.ConfigFile()
			if err != nil {
				t.Fatal(err)
			}
			if cf.OS != "linux" || cf.Architecture != "amd64" {
				t.Errorf("platform %s/%s, want linux/amd64", cf.OS, cf.Architecture)
			}
			if cf.Config.User != "65532:65532" {
				t.Errorf("user %q, want 65532:65532", cf.Config.User)
			}
			if want := []string{"/ko-app/sparkpods-" + svc}; !slices.Equal(cf.Config.Entrypoint, want) {
				t.Errorf("entrypoint %q, want %q", cf.Config.Entrypoint, want)
			}
		})
	}
}

// untar extracts the tarball at path into a temporary directory, refusing names that
// leave it.
func untar(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.Close() }()
	dir := t.TempDir()
	tr := tar.NewReader(f)
	var names []string
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		name := filepath.Clean(hdr.Name)
		if !filepath.IsLocal(name) {
			t.Fatalf("tar entry %q leaves the layout", hdr.Name)
		}
		names = append(names, name)
		target := filepath.Join(dir, name)
		switch hdr.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(target, 0o755); err != nil {
				t.Fatal(err)
			}
		case tar.TypeReg:
			out, err := os.Create(target)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := io.Copy(out, tr); err != nil {
				t.Fatal(err)
			}
			if err := out.Close(); err != nil {
				t.Fatal(err)
			}
		default:
			t.Fatalf("tar entry %q of type %c", hdr.Name, hdr.Typeflag)
		}
	}
	for _, want := range []string{"oci-layout", "index.json"} {
		if !slices.Contains(names, want) {
			t.Errorf("no %s in the tarball", want)
		}
	}
	return dir
}
