// Package image assembles the kfllm container images without a Docker
// daemon and without pulling a base image, the way ko and apko do: a
// minimal userland from pinned Debian packages, libtorch's shared
// libraries, and one Go binary per component, each written as
// deterministic gzip'd tar layers (sorted paths, fixed times and owners)
// into OCI image layouts with go-containerregistry. The same inputs give
// the same digests, and the component images share the base's layers.
//
// It also pushes the layouts to a registry, unpacks an image into a root
// filesystem, checks that every DT_NEEDED of every ELF file in that root
// resolves inside it, and writes the OCI runtime bundle runc runs a
// component in (non-root, read-only root, writable /tmp).
//
// The package is light: no cgo, no libtorch (depcheck_test.go).
package image
