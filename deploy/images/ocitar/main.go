// Command ocitar turns the one image of an OCI image layout directory (what `ko build
// --oci-layout-path` writes) into an OCI image-layout tarball for `make images`: oci-layout,
// index.json naming the image (org.opencontainers.image.ref.name) and its blobs, with fixed
// times and owners so that the same image always makes the same tarball. Such a tarball loads
// with `ctr image import`, `skopeo copy oci-archive:…`, `podman load` or `docker load`
// (Docker 25 and later).
//
//	ocitar <layout-dir> <image-name> <out.oci.tar>
package main

import (
	"archive/tar"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
)

func main() {
	if len(os.Args) != 4 {
		fmt.Fprintln(os.Stderr, "usage: ocitar <layout-dir> <image-name> <out.oci.tar>")
		os.Exit(2)
	}
	if err := run(os.Args[1], os.Args[2], os.Args[3]); err != nil {
		fmt.Fprintln(os.Stderr, "ocitar:", err)
		os.Exit(1)
	}
}

func run(src, name, out string) error {
	p, err := layout.FromPath(src)
	if err != nil {
		return err
	}
	idx, err := p.ImageIndex()
	if err != nil {
		return err
	}
	m, err := idx.IndexManifest()
	if err != nil {
		return err
	}
	if len(m.Manifests) != 1 {
		return fmt.Errorf("%s holds %d manifests, want one image", src, len(m.Manifests))
	}
	img, err := idx.Image(m.Manifests[0].Digest)
	if err != nil {
		return err
	}
	// A fresh layout with only this image, named.
	dir, err := os.MkdirTemp("", "ocitar-")
	if err != nil {
		return err
	}
	defer func() { _ = os.RemoveAll(dir) }()
	named, err := layout.Write(dir, empty.Index)
	if err != nil {
		return err
	}
	if err := named.AppendImage(img, layout.WithAnnotations(map[string]string{
		"org.opencontainers.image.ref.name": name,
	})); err != nil {
		return err
	}
	return writeTar(dir, out)
}

// writeTar writes the files under dir into the tarball out, in lexical order, as root-owned
// files dated at the Unix epoch.
func writeTar(dir, out string) (err error) {
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}()
	tw := tar.NewWriter(f)
	err = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || path == dir {
			return err
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil {
			return err
		}
		hdr := &tar.Header{Name: filepath.ToSlash(rel), ModTime: time.Unix(0, 0), Format: tar.FormatPAX}
		if d.IsDir() {
			hdr.Typeflag, hdr.Name, hdr.Mode = tar.TypeDir, hdr.Name+"/", 0o755
			return tw.WriteHeader(hdr)
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		hdr.Typeflag, hdr.Mode, hdr.Size = tar.TypeReg, 0o644, info.Size()
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		src, err := os.Open(path)
		if err != nil {
			return err
		}
		defer func() { _ = src.Close() }()
		_, err = io.Copy(tw, src)
		return err
	})
	if err != nil {
		return err
	}
	return tw.Close()
}
