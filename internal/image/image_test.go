package image

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/ulikunitz/xz"
)

type tarFile struct {
	name, body, link string
	typ              byte
	mode             int64
}

func tarBytes(t *testing.T, files []tarFile) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range files {
		h := &tar.Header{Name: f.name, Typeflag: f.typ, Mode: f.mode, Linkname: f.link, Size: int64(len(f.body))}
		if f.typ != tar.TypeReg {
			h.Size = 0
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if f.typ == tar.TypeReg {
			tw.Write([]byte(f.body))
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// writeDeb writes a real .deb (ar: debian-binary, control.tar.gz,
// data.tar.xz) and returns its sha256.
func writeDeb(t *testing.T, p, pkg string, data []tarFile) string {
	t.Helper()
	var ctl bytes.Buffer
	zw := gzip.NewWriter(&ctl)
	zw.Write(tarBytes(t, []tarFile{{name: "./control", body: "Package: " + pkg + "\nVersion: 1.0\n", typ: tar.TypeReg, mode: 0o644}}))
	zw.Close()
	var dat bytes.Buffer
	xw, err := xz.NewWriter(&dat)
	if err != nil {
		t.Fatal(err)
	}
	xw.Write(tarBytes(t, data))
	xw.Close()
	var ar bytes.Buffer
	ar.WriteString("!<arch>\n")
	for _, m := range []struct {
		name string
		b    []byte
	}{{"debian-binary", []byte("2.0\n")}, {"control.tar.gz", ctl.Bytes()}, {"data.tar.xz", dat.Bytes()}} {
		fmt.Fprintf(&ar, "%-16s%-12d%-6d%-6d%-8s%-10d`\n", m.name, 0, 0, 0, "100644", len(m.b))
		ar.Write(m.b)
		if len(m.b)%2 == 1 {
			ar.WriteByte('\n')
		}
	}
	if err := os.WriteFile(p, ar.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256(ar.Bytes())
	return hex.EncodeToString(s[:])
}

// fixture lays out the inputs of a build: a lock with two packages, a
// libtorch with a small and a "big" library, and one binary per name.
func fixture(t *testing.T, names []string) Options {
	t.Helper()
	dir := t.TempDir()
	debs := filepath.Join(dir, "debs")
	os.MkdirAll(debs, 0o755)
	libc := writeDeb(t, filepath.Join(debs, "libfoo_1.0_amd64.deb"), "libfoo", []tarFile{
		{name: "./", typ: tar.TypeDir, mode: 0o755},
		{name: "./lib/x86_64-linux-gnu/libfoo.so.1", body: "foo", typ: tar.TypeReg, mode: 0o644},
		{name: "./lib/x86_64-linux-gnu/libfoo.so", link: "libfoo.so.1", typ: tar.TypeSymlink, mode: 0o777},
		{name: "./usr/share/doc/libfoo/changelog.gz", body: "changes", typ: tar.TypeReg, mode: 0o644},
		{name: "./usr/share/doc/libfoo/copyright", body: "license", typ: tar.TypeReg, mode: 0o644},
		{name: "./usr/share/man/man1/foo.1", body: "man", typ: tar.TypeReg, mode: 0o644},
		{name: "./usr/lib/foo-again", link: "./lib/x86_64-linux-gnu/libfoo.so.1", typ: tar.TypeLink},
	})
	ca := writeDeb(t, filepath.Join(debs, "ca-certificates_2.0_all.deb"), "ca-certificates", []tarFile{
		{name: "./usr/share/ca-certificates/mozilla/B.crt", body: "-----B-----\n", typ: tar.TypeReg, mode: 0o644},
		{name: "./usr/share/ca-certificates/mozilla/A.crt", body: "-----A-----", typ: tar.TypeReg, mode: 0o644},
	})
	lock := filepath.Join(dir, "debian.lock")
	os.WriteFile(lock, []byte("# test\nlibfoo 1.0 amd64 "+libc+"\nca-certificates 2.0 all "+ca+"\n"), 0o644)
	lt := filepath.Join(dir, "libtorch", "lib")
	os.MkdirAll(lt, 0o755)
	os.WriteFile(filepath.Join(lt, "libc10.so"), []byte("c10"), 0o644)
	os.WriteFile(filepath.Join(lt, "libshm.so"), []byte("shm"), 0o644)
	os.WriteFile(filepath.Join(lt, "README"), []byte("not a library"), 0o644)
	bin := filepath.Join(dir, "bin")
	os.MkdirAll(bin, 0o755)
	for _, n := range names {
		os.WriteFile(filepath.Join(bin, n), []byte("#!binary "+n), 0o755)
	}
	return Options{Flavor: "cpu", Libtorch: filepath.Join(dir, "libtorch"), Bin: bin, Names: names, Lock: lock, Debs: debs,
		Cache: Cache{Dir: filepath.Join(dir, "cache")}, Out: filepath.Join(dir, "out"), Tag: "t1",
		Source: "https://example.com/kfllm", Revision: "abc123", Version: "t1", Created: time.Unix(1700000000, 0)}
}

func digests(t *testing.T, bs []Built) map[string]string {
	t.Helper()
	m := map[string]string{}
	for _, b := range bs {
		m[b.Name] = b.Digest.String()
	}
	return m
}

func layerDigests(t *testing.T, img v1.Image) []string {
	t.Helper()
	ls, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range ls {
		d, _ := l.Digest()
		out = append(out, d.String())
	}
	return out
}

func TestSameInputsSameDigests(t *testing.T) {
	names := []string{"fetch", "serving"}
	o := fixture(t, names)
	first, err := Build(o)
	if err != nil {
		t.Fatal(err)
	}
	// A second build from a cold cache into another directory.
	o2 := o
	o2.Cache = Cache{Dir: t.TempDir()}
	o2.Out = t.TempDir()
	second, err := Build(o2)
	if err != nil {
		t.Fatal(err)
	}
	if a, b := digests(t, first), digests(t, second); fmt.Sprint(a) != fmt.Sprint(b) {
		t.Fatalf("two builds of the same inputs differ:\n%v\n%v", a, b)
	}
	// A changed binary changes only its own image.
	os.WriteFile(filepath.Join(o.Bin, "fetch"), []byte("#!binary fetch v2"), 0o755)
	third, err := Build(o)
	if err != nil {
		t.Fatal(err)
	}
	a, c := digests(t, first), digests(t, third)
	if a["fetch"] == c["fetch"] || a["serving"] != c["serving"] || a["base"] != c["base"] {
		t.Errorf("after changing the fetch binary: before %v, after %v", a, c)
	}
	// Read back from the layouts: same digests as reported.
	for _, b := range third {
		img, err := Open(b.Dir)
		if err != nil {
			t.Fatal(err)
		}
		if d, _ := img.Digest(); d != b.Digest {
			t.Errorf("%s: layout holds %s, build reported %s", b.Name, d, b.Digest)
		}
	}
}

func TestComponentsShareTheBaseLayers(t *testing.T) {
	o := fixture(t, []string{"fetch", "ui"})
	built, err := Build(o)
	if err != nil {
		t.Fatal(err)
	}
	base := layerDigests(t, built[0].Image)
	if len(base) != 2 {
		t.Fatalf("base has %d layers, want 2 (userland, libtorch)", len(base))
	}
	for _, b := range built[1:] {
		ls := layerDigests(t, b.Image)
		if len(ls) != len(base)+1 || fmt.Sprint(ls[:len(base)]) != fmt.Sprint(base) {
			t.Errorf("%s layers %v do not start with the base's %v", b.Name, ls, base)
		}
		// The layouts hard-link the shared blobs: one copy on disk.
		p := filepath.Join(b.Dir, "blobs", "sha256", strings.TrimPrefix(base[1], "sha256:"))
		st, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		q, _ := os.Stat(filepath.Join(built[0].Dir, "blobs", "sha256", strings.TrimPrefix(base[1], "sha256:")))
		if !os.SameFile(st, q) {
			t.Errorf("%s: the shared layer is a copy, not a link", b.Name)
		}
	}
}

func TestImageConfig(t *testing.T) {
	for _, flavor := range []string{"cpu", "cuda"} {
		o := fixture(t, []string{"serving"})
		o.Flavor = flavor
		built, err := Build(o)
		if err != nil {
			t.Fatal(err)
		}
		cf, err := built[1].Image.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		c := cf.Config
		if c.User != "65532:65532" || fmt.Sprint(c.Entrypoint) != "[/usr/local/bin/serving]" || cf.OS != "linux" || cf.Architecture != "amd64" {
			t.Errorf("%s: user %q entrypoint %q os %s/%s", flavor, c.User, c.Entrypoint, cf.OS, cf.Architecture)
		}
		want := map[string]string{"org.opencontainers.image.source": o.Source, "org.opencontainers.image.revision": "abc123",
			"org.opencontainers.image.version": "t1", "org.opencontainers.image.licenses": "Apache-2.0", "org.opencontainers.image.title": "kfllm-serving"}
		for k, v := range want {
			if c.Labels[k] != v {
				t.Errorf("%s: label %s = %q, want %q", flavor, k, c.Labels[k], v)
			}
		}
		if !cf.Created.Time.Equal(o.Created) {
			t.Errorf("%s: created %v, want %v", flavor, cf.Created, o.Created)
		}
		env := strings.Join(c.Env, " ")
		if !strings.Contains(env, "XDG_CACHE_HOME=/tmp/.cache") || !strings.Contains(env, "GOTCH_CACHE=/tmp/.cache/gotch") {
			t.Errorf("%s: env %q: caches would go to the read-only root", flavor, env)
		}
		if strings.Contains(env, "NVIDIA_VISIBLE_DEVICES=all") != (flavor == "cuda") {
			t.Errorf("%s: env %q", flavor, env)
		}
		m, _ := built[1].Image.Manifest()
		if m.MediaType != "application/vnd.oci.image.manifest.v1+json" || m.Config.MediaType != "application/vnd.oci.image.config.v1+json" {
			t.Errorf("%s: media types %s, %s", flavor, m.MediaType, m.Config.MediaType)
		}
	}
}

func TestUnpackedImage(t *testing.T) {
	o := fixture(t, []string{"fetch"})
	built, err := Build(o)
	if err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(t.TempDir(), "rootfs")
	if err := Unpack(built[1].Image, root); err != nil {
		t.Fatal(err)
	}
	read := func(p string) string {
		b, err := os.ReadFile(filepath.Join(root, p))
		if err != nil {
			t.Error(err)
		}
		return string(b)
	}
	if got := read("usr/local/bin/fetch"); got != "#!binary fetch" {
		t.Errorf("binary: %q", got)
	}
	if got := read("etc/ssl/certs/ca-certificates.crt"); got != "-----A-----\n-----B-----\n" {
		t.Errorf("CA bundle: %q", got)
	}
	if got := read("usr/lib/foo-again"); got != "foo" {
		t.Errorf("hard link copy: %q", got)
	}
	if got := read("var/lib/dpkg/status.d/libfoo"); !strings.Contains(got, "Package: libfoo") {
		t.Errorf("status.d: %q", got)
	}
	if l, err := os.Readlink(filepath.Join(root, "lib/x86_64-linux-gnu/libfoo.so")); err != nil || l != "libfoo.so.1" {
		t.Errorf("symlink: %q, %v", l, err)
	}
	for _, gone := range []string{"usr/share/doc/libfoo/changelog.gz", "usr/share/man/man1/foo.1", LibtorchDir + "/libshm.so", LibtorchDir + "/README"} {
		if _, err := os.Lstat(filepath.Join(root, gone)); err == nil {
			t.Errorf("%s is in the image", gone)
		}
	}
	if read("usr/share/doc/libfoo/copyright") != "license" || read(LibtorchDir+"/libc10.so") != "c10" {
		t.Error("copyright or libc10.so missing")
	}
	st, err := os.Stat(filepath.Join(root, "usr/local/bin/fetch"))
	if err != nil || st.Mode().Perm() != 0o755 {
		t.Errorf("binary mode %v, %v", st.Mode(), err)
	}
	if st, err := os.Stat(filepath.Join(root, "tmp")); err != nil || st.Mode()&os.ModeSticky == 0 || st.Mode().Perm() != 0o777 {
		t.Errorf("/tmp mode %v, %v", st.Mode(), err)
	}
	if os.Geteuid() == 0 {
		st, _ := os.Stat(filepath.Join(root, "home/nonroot"))
		if uid := ownerUID(st); uid != NonRoot {
			t.Errorf("/home/nonroot owned by %d", uid)
		}
	}
}

func TestTamperedDebIsRefused(t *testing.T) {
	o := fixture(t, []string{"fetch"})
	p := filepath.Join(o.Debs, "libfoo_1.0_amd64.deb")
	b, _ := os.ReadFile(p)
	b[len(b)-1] ^= 0xff
	os.WriteFile(p, b, 0o644)
	_, err := Build(o)
	if err == nil || !strings.Contains(err.Error(), "the lock says") {
		t.Fatalf("a .deb that is not the locked one: err %v", err)
	}
	if _, err := os.Stat(filepath.Join(o.Out, Base)); err == nil {
		t.Error("a layout was written anyway")
	}
}

func TestPushPullRoundTrip(t *testing.T) {
	t.Setenv("DOCKER_CONFIG", t.TempDir()) // no host credentials
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer srv.Close()
	reg := strings.TrimPrefix(srv.URL, "http://") + "/team"
	names := []string{"fetch", "serving"}
	o := fixture(t, names)
	built, err := Build(o)
	if err != nil {
		t.Fatal(err)
	}
	pushed, err := Push(context.Background(), o.Out, names, reg, "t1")
	if err != nil {
		t.Fatal(err)
	}
	want := digests(t, built)
	for _, p := range pushed {
		if p.Digest.DigestStr() != want[p.Name] {
			t.Errorf("%s: pushed %s, built %s", p.Name, p.Digest, want[p.Name])
		}
		for _, ref := range []name.Reference{p.Tag, p.Digest} {
			img, err := remote.Image(ref)
			if err != nil {
				t.Fatalf("pull %s: %v", ref, err)
			}
			if d, _ := img.Digest(); d.String() != want[p.Name] {
				t.Errorf("pull %s: digest %s, want %s", ref, d, want[p.Name])
			}
			// Every layer comes back byte for byte.
			ls, _ := img.Layers()
			for _, l := range ls {
				rc, err := l.Compressed()
				if err != nil {
					t.Fatal(err)
				}
				h := sha256.New()
				_, err = io.Copy(h, rc)
				rc.Close()
				ld, _ := l.Digest()
				if err != nil || "sha256:"+hex.EncodeToString(h.Sum(nil)) != ld.String() {
					t.Errorf("pull %s: layer %s does not hash to its digest (%v)", ref, ld, err)
				}
			}
		}
	}
	if p := pushed[0]; p.Tag.String() != reg+"/kfllm-base:t1" {
		t.Errorf("base pushed as %s", p.Tag)
	}
	// The pushed list as push writes it, read back, pins a manifest.
	var lines strings.Builder
	for _, p := range pushed {
		fmt.Fprintf(&lines, "%s %s@%s\n", p.Name, p.Tag, p.Digest.DigestStr())
	}
	list := filepath.Join(t.TempDir(), "pushed.txt")
	os.WriteFile(list, []byte(lines.String()), 0o644)
	back, err := ReadPushed(list)
	if err != nil {
		t.Fatal(err)
	}
	yaml := "image: " + reg + "/kfllm-serving:t1\nimage: " + reg + "/kfllm-serving:t10\nimage: " + reg + "/kfllm-fetch:t1@" + want["fetch"] + "\n"
	got := Pin(yaml, back)
	wantYAML := "image: " + reg + "/kfllm-serving:t1@" + want["serving"] + "\nimage: " + reg + "/kfllm-serving:t10\nimage: " + reg + "/kfllm-fetch:t1@" + want["fetch"] + "\n"
	if got != wantYAML {
		t.Errorf("pinned:\n%s\nwant:\n%s", got, wantYAML)
	}
	// The pinned reference pulls the same image.
	ref, _ := name.ParseReference(reg + "/kfllm-serving:t1@" + want["serving"])
	if img, err := remote.Image(ref); err != nil {
		t.Errorf("pull pinned %s: %v", ref, err)
	} else if d, _ := img.Digest(); d.String() != want["serving"] {
		t.Errorf("pinned pull: %s", d)
	}
}

func TestBundle(t *testing.T) {
	cf := &v1.ConfigFile{Config: v1.Config{User: "65532:65532", Entrypoint: []string{"/usr/local/bin/serving"}, Env: []string{"PATH=/usr/bin"}, WorkingDir: "/home/nonroot"}}
	dir := t.TempDir()
	model := t.TempDir()
	err := Bundle(dir, filepath.Join(dir, "root"), cf, Run{Args: []string{"--model_dir", "/mnt/models"}, Env: []string{"PORT=8080"},
		Mounts: []Mount{{Host: model, Container: "/mnt/models", ReadOnly: true}}})
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	var spec struct {
		Process struct {
			User            struct{ UID, GID int }
			Args, Env       []string
			NoNewPrivileges bool
		}
		Root struct {
			Path     string
			Readonly bool
		}
		Mounts []struct {
			Destination, Type, Source string
			Options                   []string
		}
	}
	if err := json.Unmarshal(b, &spec); err != nil {
		t.Fatal(err)
	}
	if spec.Process.User.UID != 65532 || spec.Process.User.GID != 65532 || !spec.Root.Readonly || !spec.Process.NoNewPrivileges {
		t.Errorf("user %+v, read-only root %v, no new privileges %v", spec.Process.User, spec.Root.Readonly, spec.Process.NoNewPrivileges)
	}
	if got := strings.Join(spec.Process.Args, " "); got != "/usr/local/bin/serving --model_dir /mnt/models" {
		t.Errorf("args %q", got)
	}
	if got := strings.Join(spec.Process.Env, " "); got != "PATH=/usr/bin PORT=8080" {
		t.Errorf("env %q", got)
	}
	var tmp, models bool
	for _, m := range spec.Mounts {
		tmp = tmp || m.Destination == "/tmp" && m.Type == "tmpfs"
		models = models || m.Destination == "/mnt/models" && m.Source == model && strings.Contains(strings.Join(m.Options, ","), "ro")
	}
	if !tmp || !models {
		t.Errorf("mounts: writable /tmp %v, read-only model %v", tmp, models)
	}
	if _, err := ParseMount("relative"); err == nil {
		t.Error("ParseMount accepted a mount without a container path")
	}
}
