package image

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Base is the name of the shared base image and of its layout.
const Base = "base"

// NonRoot is the uid and gid every image runs as (distroless's nonroot).
const NonRoot = 65532

// bigFile is the size above which a library gets a layer of its own, so a
// node pulls the large layers in parallel and a registry's per-layer limits
// stay far away.
const bigFile = 256 << 20

// Options say what to build.
type Options struct {
	Flavor   string   // "cpu" or "cuda": which libtorch, and the CUDA environment
	Libtorch string   // the libtorch install (scripts/libtorch.sh): its lib/ goes to /opt/libtorch/lib
	Bin      string   // the directory holding one binary per name
	Names    []string // the component images, one binary each
	Lock     string   // build/debian.lock
	Debs     string   // the directory holding the lock's .deb files
	Cache    Cache
	Out      string // one OCI layout per image: Out/base, Out/NAME
	Tag      string // the layouts' ref.name
	Source   string // org.opencontainers.image.source
	Revision string // org.opencontainers.image.revision
	Version  string // org.opencontainers.image.version
	Created  time.Time
	Log      io.Writer
}

// Built is one image written to its layout.
type Built struct {
	Name   string
	Dir    string
	Digest v1.Hash
	Image  v1.Image
}

// LibtorchDir is where the images keep libtorch's libraries; the binaries
// are linked with this run path.
const LibtorchDir = "opt/libtorch/lib"

// Build writes the base and one image per name, each an OCI layout under
// o.Out. The component images are the base plus one layer.
func Build(o Options) ([]Built, error) {
	if o.Flavor != "cpu" && o.Flavor != "cuda" {
		return nil, fmt.Errorf("build images: flavor %q, want cpu or cuda", o.Flavor)
	}
	if len(o.Names) == 0 {
		return nil, fmt.Errorf("build images: no component names")
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
	base, err := o.base()
	if err != nil {
		return nil, err
	}
	var out []Built
	b, err := o.write(Base, base)
	if err != nil {
		return nil, err
	}
	out = append(out, b)
	for _, name := range o.Names {
		img, err := o.component(base, name)
		if err != nil {
			return nil, err
		}
		b, err := o.write(name, img)
		if err != nil {
			return nil, err
		}
		out = append(out, b)
	}
	return out, nil
}

func (o Options) layer(what string, t *Tree) (v1.Layer, error) {
	start := time.Now()
	l, built, err := o.Cache.Layer(t)
	if err != nil {
		return nil, fmt.Errorf("layer %s: %w", what, err)
	}
	d, _ := l.Digest()
	n, _ := l.Size()
	how := "cached"
	if built {
		how = "built"
	}
	fmt.Fprintf(o.Log, "images: layer %-28s %s %7.1f MB %s in %.1fs\n", what, d.Hex[:12], float64(n)/1e6, how, time.Since(start).Seconds())
	return l, nil
}

// Userland is the tree of the base's first layer: the Debian packages of
// the lock, the CA bundle, the nonroot user, and the directories a
// component writes to.
func Userland(lock, debs string) (*Tree, error) {
	pkgs, err := ReadLock(lock)
	if err != nil {
		return nil, err
	}
	t := NewTree()
	for _, p := range pkgs {
		if err := AddDeb(t, p, filepath.Join(debs, p.File())); err != nil {
			return nil, err
		}
	}
	if err := CABundle(t); err != nil {
		return nil, err
	}
	files := map[string]string{
		"etc/passwd":        "root:x:0:0:root:/root:/usr/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/usr/sbin/nologin\n",
		"etc/group":         "root:x:0:\nnonroot:x:65532:\n",
		"etc/nsswitch.conf": "hosts: files dns\n",
		"etc/hosts":         "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n",
	}
	for p, s := range files {
		if err := t.AddData(p, []byte(s), 0o644); err != nil {
			return nil, err
		}
	}
	dirs := []Entry{
		{Path: "tmp", Kind: Dir, Mode: 0o777 | os.ModeSticky},
		{Path: "root", Kind: Dir, Mode: 0o700},
		{Path: "home/nonroot", Kind: Dir, Mode: 0o755, UID: NonRoot, GID: NonRoot},
		// The KFP v2 launcher stages artifacts under /gcs, /minio and /s3
		// (kubeflow/pipelines#5673): the nonroot user must own them.
		{Path: "gcs", Kind: Dir, Mode: 0o755, UID: NonRoot, GID: NonRoot},
		{Path: "minio", Kind: Dir, Mode: 0o755, UID: NonRoot, GID: NonRoot},
		{Path: "s3", Kind: Dir, Mode: 0o755, UID: NonRoot, GID: NonRoot},
		{Path: "usr/local/bin", Kind: Dir, Mode: 0o755},
	}
	for _, d := range dirs {
		if err := t.Add(d); err != nil {
			return nil, err
		}
	}
	return t, nil
}

// LibtorchTrees are the layers of libtorch's libraries: one per library
// over 256 MiB, one for the rest, in name order. The CPU flavour leaves
// out libshm.so, which needs the CUDA libtorch.so and nothing loads.
func LibtorchTrees(libtorch, flavor string) ([]*Tree, []string, error) {
	dir := filepath.Join(libtorch, "lib")
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, nil, fmt.Errorf("libtorch: %w", err)
	}
	rest := NewTree()
	var trees []*Tree
	var names []string
	for _, e := range ents {
		n := e.Name()
		if !strings.Contains(n, ".so") || (flavor == "cpu" && n == "libshm.so") {
			continue
		}
		st, err := os.Stat(filepath.Join(dir, n))
		if err != nil {
			return nil, nil, fmt.Errorf("libtorch: %w", err)
		}
		t := rest
		if st.Size() > bigFile {
			t = NewTree()
			trees, names = append(trees, t), append(names, n)
		}
		if err := t.AddFile(LibtorchDir+"/"+n, filepath.Join(dir, n), 0o644); err != nil {
			return nil, nil, err
		}
	}
	if rest.Len() == 0 {
		return nil, nil, fmt.Errorf("libtorch: no shared libraries in %s", dir)
	}
	return append(trees, rest), append(names, "libtorch (other libraries)"), nil
}

func (o Options) labels(title string) map[string]string {
	return map[string]string{
		"org.opencontainers.image.title":    title,
		"org.opencontainers.image.source":   o.Source,
		"org.opencontainers.image.revision": o.Revision,
		"org.opencontainers.image.version":  o.Version,
		"org.opencontainers.image.licenses": "Apache-2.0",
	}
}

func (o Options) base() (v1.Image, error) {
	user, err := Userland(o.Lock, o.Debs)
	if err != nil {
		return nil, fmt.Errorf("base: %w", err)
	}
	ul, err := o.layer("userland (Debian)", user)
	if err != nil {
		return nil, err
	}
	adds := []mutate.Addendum{{Layer: ul, History: v1.History{Created: v1.Time{Time: o.Created}, CreatedBy: "kfllm images: Debian packages of build/debian.lock, CA bundle, nonroot user"}}}
	trees, what, err := LibtorchTrees(o.Libtorch, o.Flavor)
	if err != nil {
		return nil, fmt.Errorf("base: %w", err)
	}
	for i, t := range trees {
		l, err := o.layer(what[i], t)
		if err != nil {
			return nil, err
		}
		adds = append(adds, mutate.Addendum{Layer: l, History: v1.History{Created: v1.Time{Time: o.Created}, CreatedBy: "kfllm images: libtorch 2.1.0 (" + o.Flavor + "): " + what[i]}})
	}
	// Caches go to /tmp, writable when the root is not (an emptyDir in the
	// pods): the Hub's snapshots (HF_HOME in a manifest wins), and gotch's
	// directory, which its init creates or exits (log.Fatal) at the start
	// of every binary that links libtorch.
	env := []string{"PATH=/usr/local/bin:/usr/bin:/bin", "HOME=/home/nonroot", "XDG_CACHE_HOME=/tmp/.cache", "GOTCH_CACHE=/tmp/.cache/gotch"}
	desc := "Debian 12 userland (glibc, libstdc++) with libtorch 2.1.0 (CPU) for the kfllm images"
	if o.Flavor == "cuda" {
		// The NVIDIA container runtime mounts the driver (libcuda.so.1) and
		// reads these; CUDA's JIT cache goes to the writable /tmp.
		env = append(env, "NVIDIA_VISIBLE_DEVICES=all", "NVIDIA_DRIVER_CAPABILITIES=compute,utility", "CUDA_CACHE_PATH=/tmp/.nv/ComputeCache")
		desc = "Debian 12 userland with libtorch 2.1.0+cu121 and the CUDA 12.1 runtime for the kfllm images"
	}
	labels := o.labels("kfllm-base")
	labels["org.opencontainers.image.description"] = desc
	cfg := &v1.ConfigFile{
		Architecture: "amd64",
		OS:           "linux",
		Created:      v1.Time{Time: o.Created},
		RootFS:       v1.RootFS{Type: "layers"},
		Config: v1.Config{
			User:       fmt.Sprintf("%d:%d", NonRoot, NonRoot),
			Env:        env,
			WorkingDir: "/home/nonroot",
			Labels:     labels,
		},
	}
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	img, err = mutate.ConfigFile(img, cfg)
	if err != nil {
		return nil, fmt.Errorf("base config: %w", err)
	}
	img, err = mutate.Append(img, adds...)
	if err != nil {
		return nil, fmt.Errorf("base layers: %w", err)
	}
	return img, nil
}

// component is the base plus /usr/local/bin/NAME, its entrypoint.
func (o Options) component(base v1.Image, name string) (v1.Image, error) {
	t := NewTree()
	if err := t.AddFile("usr/local/bin/"+name, filepath.Join(o.Bin, name), 0o755); err != nil {
		return nil, fmt.Errorf("image %s: %w", name, err)
	}
	l, err := o.layer(name+" binary", t)
	if err != nil {
		return nil, err
	}
	img, err := mutate.Append(base, mutate.Addendum{Layer: l, History: v1.History{Created: v1.Time{Time: o.Created}, CreatedBy: "kfllm images: /usr/local/bin/" + name}})
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", name, err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", name, err)
	}
	cfg := *cf.Config.DeepCopy()
	cfg.Entrypoint = []string{"/usr/local/bin/" + name}
	cfg.Labels = o.labels("kfllm-" + name)
	img, err = mutate.Config(img, cfg)
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", name, err)
	}
	return mutate.CreatedAt(img, v1.Time{Time: o.Created})
}

// write replaces the layout o.Out/name with one holding img alone: the
// layer blobs are hard links to the cache (copies across file systems), so
// seven layouts of the same base take the space of one.
func (o Options) write(name string, img v1.Image) (Built, error) {
	dst := filepath.Join(o.Out, name)
	if err := os.MkdirAll(o.Out, 0o755); err != nil {
		return Built{}, fmt.Errorf("write %s: %w", name, err)
	}
	tmp, err := os.MkdirTemp(o.Out, "."+name+"-*")
	if err != nil {
		return Built{}, fmt.Errorf("write %s: %w", name, err)
	}
	defer os.RemoveAll(tmp)
	p, err := layout.Write(tmp, empty.Index)
	if err != nil {
		return Built{}, fmt.Errorf("write %s: %w", name, err)
	}
	layers, err := img.Layers()
	if err != nil {
		return Built{}, fmt.Errorf("write %s: %w", name, err)
	}
	for _, l := range layers {
		if fl, ok := l.(*fileLayer); ok {
			if err := linkBlob(fl.path, filepath.Join(tmp, "blobs", fl.digest.Algorithm, fl.digest.Hex)); err != nil {
				return Built{}, fmt.Errorf("write %s: %w", name, err)
			}
		}
	}
	if err := p.AppendImage(img, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": o.Tag})); err != nil {
		return Built{}, fmt.Errorf("write %s: %w", name, err)
	}
	d, err := img.Digest()
	if err != nil {
		return Built{}, fmt.Errorf("write %s: %w", name, err)
	}
	if err := os.RemoveAll(dst); err != nil {
		return Built{}, fmt.Errorf("write %s: %w", name, err)
	}
	if err := os.Rename(tmp, dst); err != nil {
		return Built{}, fmt.Errorf("write %s: %w", name, err)
	}
	fmt.Fprintf(o.Log, "images: %-9s %s  %s\n", name, d, dst)
	return Built{Name: name, Dir: dst, Digest: d, Image: img}, nil
}

func linkBlob(src, dst string) error {
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	if err := os.Link(src, dst); err == nil || os.IsExist(err) {
		return nil
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.CreateTemp(filepath.Dir(dst), ".blob-*")
	if err != nil {
		return err
	}
	defer os.Remove(out.Name())
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	return os.Rename(out.Name(), dst)
}

// Open returns the one image of the layout at dir.
func Open(dir string) (v1.Image, error) {
	p, err := layout.FromPath(dir)
	if err != nil {
		return nil, fmt.Errorf("open layout %s: %w", dir, err)
	}
	idx, err := p.ImageIndex()
	if err != nil {
		return nil, fmt.Errorf("open layout %s: %w", dir, err)
	}
	m, err := idx.IndexManifest()
	if err != nil {
		return nil, fmt.Errorf("open layout %s: %w", dir, err)
	}
	if len(m.Manifests) != 1 {
		return nil, fmt.Errorf("open layout %s: %d manifests, want 1", dir, len(m.Manifests))
	}
	img, err := idx.Image(m.Manifests[0].Digest)
	if err != nil {
		return nil, fmt.Errorf("open layout %s: %w", dir, err)
	}
	return img, nil
}

// sortedKeys is used for stable output.
func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}
