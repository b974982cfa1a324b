// Command images builds, pushes, checks and runs the kfllm container images
// without a Docker daemon (package internal/image does the work):
//
//	images build  --flavor cpu|cuda --names "fetch ..." ...  OCI layouts in --out
//	images push   --out out/images --names ... --registry R --tag T
//	images check  --layout out/images/serving [--allow libcuda.so.1]
//	images sizes  --out out/images --names ...
//	images pin    --pushed out/images/pushed.txt FILE...   REGISTRY/kfllm-NAME:TAG -> ...:TAG@sha256:...
//	images run    --layout out/images/serving [--mount H:C[:ro]] [--env K=V] [--command C] [ARGS...]
//
// make images, make push-images and make check-images call it through
// scripts/images.sh, which fetches its inputs first.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/renameio/v2"

	"github.com/kfllm/kfllm/internal/image"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// exitError carries a child's exit code through run.
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, "usage: images build|push|check|sizes|run [flags]")
		return 2
	}
	cmds := map[string]func(context.Context, []string, io.Writer, io.Writer) error{
		"build": build, "push": push, "check": check, "sizes": sizes, "run": runContainer, "pin": pin,
	}
	f, ok := cmds[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "images: unknown command %q (want build, push, check, sizes or run)\n", args[0])
		return 2
	}
	err := f(ctx, args[1:], stdout, stderr)
	var ee exitError
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &ee):
		return ee.code
	}
	fmt.Fprintf(stderr, "images %s: %v\n", args[0], err)
	return 1
}

func names(s string) []string { return strings.Fields(s) }

func build(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("build", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o image.Options
	var ns, cache, digests string
	var created int64
	fs.StringVar(&o.Flavor, "flavor", "cuda", "cpu or cuda")
	fs.StringVar(&o.Libtorch, "libtorch", "", "the libtorch install of that flavour (scripts/libtorch.sh)")
	fs.StringVar(&o.Bin, "bin", "", "directory of the component binaries")
	fs.StringVar(&ns, "names", "", "the component images, space-separated (the image entries of components.txt: make passes IMAGES)")
	fs.StringVar(&o.Lock, "lock", "build/debian.lock", "Debian packages, pinned by version and sha256")
	fs.StringVar(&o.Debs, "debs", "", "directory holding the lock's .deb files")
	fs.StringVar(&cache, "cache", "", "layer cache directory")
	fs.StringVar(&o.Out, "out", "out/images", "where the OCI layouts go")
	fs.StringVar(&o.Tag, "tag", "dev", "the layouts' tag (ref.name)")
	fs.StringVar(&o.Source, "source", "https://github.com/kfllm/kfllm", "org.opencontainers.image.source")
	fs.StringVar(&o.Revision, "revision", "unknown", "org.opencontainers.image.revision")
	fs.StringVar(&o.Version, "version", "dev", "org.opencontainers.image.version")
	fs.Int64Var(&created, "created", 0, "the images' created time, Unix seconds (SOURCE_DATE_EPOCH)")
	fs.StringVar(&digests, "digests", "", "write NAME DIGEST lines here")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if o.Libtorch == "" || o.Bin == "" || o.Debs == "" || cache == "" || ns == "" {
		return errors.New("--libtorch, --bin, --debs, --cache and --names are required")
	}
	o.Names = names(ns)
	o.Cache = image.Cache{Dir: cache}
	o.Created = time.Unix(created, 0).UTC()
	o.Log = stderr
	start := time.Now()
	built, err := image.Build(o)
	if err != nil {
		return err
	}
	var lines strings.Builder
	for _, b := range built {
		fmt.Fprintf(&lines, "%s %s\n", b.Name, b.Digest)
	}
	fmt.Fprintf(stderr, "images: %d images (%s) in %.1fs\n", len(built), o.Flavor, time.Since(start).Seconds())
	return writeDigests(stdout, digests, lines.String())
}

// writeDigests prints the digest lines and, when path is set, also writes
// them there (make push-images and pin-pipeline read that file).
func writeDigests(stdout io.Writer, path, lines string) error {
	fmt.Fprint(stdout, lines)
	if path == "" {
		return nil
	}
	if err := renameio.WriteFile(path, []byte(lines), 0o644); err != nil {
		return fmt.Errorf("write digests: %w", err)
	}
	return nil
}

func push(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("push", flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("out", "out/images", "the OCI layouts")
	ns := fs.String("names", "", "the component images, space-separated")
	registry := fs.String("registry", "", "IMAGE_REGISTRY, e.g. ghcr.io/you")
	tag := fs.String("tag", "dev", "IMAGE_TAG")
	digests := fs.String("digests", "", "write NAME REF@DIGEST lines here")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *registry == "" || *ns == "" {
		return errors.New("--registry and --names are required")
	}
	pushed, err := image.Push(ctx, *out, names(*ns), *registry, *tag)
	if err != nil {
		return err
	}
	var lines strings.Builder
	for _, p := range pushed {
		fmt.Fprintf(&lines, "%s %s@%s\n", p.Name, p.Tag, p.Digest.DigestStr())
	}
	return writeDigests(stdout, *digests, lines.String())
}

func check(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	layoutDir := fs.String("layout", "", "the image's OCI layout")
	cache := fs.String("rootfs-cache", "out/images/.rootfs", "where images are unpacked")
	var allow multi
	fs.Var(&allow, "allow", "a library that may stay unresolved (repeatable), e.g. libcuda.so.1")
	if err := fs.Parse(args); err != nil {
		return err
	}
	root, cfg, err := image.Rootfs(*layoutDir, *cache)
	if err != nil {
		return err
	}
	res, err := image.CheckLinkage(root, cfg.Config.Env, allow)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s: %d ELF files, %d DT_NEEDED resolved in the image", *layoutDir, res.ELFFiles, res.Needed)
	if len(res.Allowed) > 0 {
		seen := map[string]int{}
		for _, a := range res.Allowed {
			seen[a.Needed]++
		}
		for n, c := range seen {
			fmt.Fprintf(stdout, ", %s left to the host (%d users)", n, c)
		}
	}
	fmt.Fprintln(stdout)
	for _, u := range res.Unresolved {
		fmt.Fprintf(stdout, "  unresolved: %s needs %s\n", u.File, u.Needed)
	}
	if len(res.Unresolved) > 0 {
		return fmt.Errorf("%d %w", len(res.Unresolved), image.ErrUnresolved)
	}
	return nil
}

func sizes(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("sizes", flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("out", "out/images", "the OCI layouts")
	ns := fs.String("names", "", "the component images, space-separated")
	if err := fs.Parse(args); err != nil {
		return err
	}
	seen := map[v1.Hash]bool{}
	var shared int64
	for i, n := range append([]string{image.Base}, names(*ns)...) {
		img, err := image.Open(filepath.Join(*out, n))
		if err != nil {
			return err
		}
		ls, err := img.Layers()
		if err != nil {
			return err
		}
		var total, own int64
		for _, l := range ls {
			d, _ := l.Digest()
			s, _ := l.Size()
			total += s
			if i == 0 {
				shared += s
				seen[d] = true
			} else if !seen[d] {
				own += s
			}
		}
		d, _ := img.Digest()
		fmt.Fprintf(stdout, "%-9s %s  %d layers  %8.1f MB compressed", n, d.String()[:19], len(ls), float64(total)/1e6)
		if i > 0 {
			fmt.Fprintf(stdout, "  (own %.1f MB; the rest is the base's)", float64(own)/1e6)
		}
		fmt.Fprintln(stdout)
		if i == 0 {
			for _, l := range ls {
				d, _ := l.Digest()
				s, _ := l.Size()
				u, err := uncompressedSize(l)
				if err != nil {
					return err
				}
				fmt.Fprintf(stdout, "  layer %s  %8.1f MB compressed  %8.1f MB on disk\n", d.String()[:19], float64(s)/1e6, float64(u)/1e6)
			}
		}
	}
	return nil
}

func uncompressedSize(l v1.Layer) (int64, error) {
	rc, err := l.Uncompressed()
	if err != nil {
		return 0, err
	}
	defer rc.Close()
	return io.Copy(io.Discard, rc)
}

func pin(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("pin", flag.ContinueOnError)
	fs.SetOutput(stderr)
	list := fs.String("pushed", "out/images/pushed.txt", "the NAME REF@DIGEST lines push wrote")
	if err := fs.Parse(args); err != nil {
		return err
	}
	pushed, err := image.ReadPushed(*list)
	if err != nil {
		return err
	}
	for _, f := range fs.Args() {
		b, err := os.ReadFile(f)
		if err != nil {
			return fmt.Errorf("pin: %w", err)
		}
		out := image.Pin(string(b), pushed)
		if out == string(b) {
			fmt.Fprintf(stdout, "%s: nothing to pin\n", f)
			continue
		}
		st, err := os.Stat(f)
		if err != nil {
			return fmt.Errorf("pin: %w", err)
		}
		if err := renameio.WriteFile(f, []byte(out), st.Mode().Perm()); err != nil {
			return fmt.Errorf("pin %s: %w", f, err)
		}
		fmt.Fprintf(stdout, "%s: images pinned by digest\n", f)
	}
	return nil
}

func runContainer(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	layoutDir := fs.String("layout", "", "the image's OCI layout")
	cache := fs.String("rootfs-cache", "out/images/.rootfs", "where images are unpacked")
	id := fs.String("id", "", "container id (default kfllm-<pid>)")
	command := fs.String("command", "", "replace the entrypoint (like a pod's command)")
	runtime := fs.String("runtime", "runc", "the OCI runtime")
	var mounts, env multi
	fs.Var(&mounts, "mount", "HOST:CONTAINER[:ro] bind mount (repeatable)")
	fs.Var(&env, "env", "K=V added to the image's environment (repeatable)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	root, cfg, err := image.Rootfs(*layoutDir, *cache)
	if err != nil {
		return err
	}
	r := image.Run{Env: env, Args: fs.Args()}
	if *command != "" {
		r.Command = []string{*command}
	}
	for _, m := range mounts {
		mt, err := image.ParseMount(m)
		if err != nil {
			return err
		}
		r.Mounts = append(r.Mounts, mt)
	}
	if *id == "" {
		*id = fmt.Sprintf("kfllm-%d", os.Getpid())
	}
	bundle, err := os.MkdirTemp("", "kfllm-bundle-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(bundle)
	if err := image.Bundle(bundle, root, cfg, r); err != nil {
		return err
	}
	cmd := exec.Command(*runtime, "run", "--bundle", bundle, *id)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, stdout, stderr
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("%s: %w", *runtime, err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err = <-done:
	case <-ctx.Done():
		_ = exec.Command(*runtime, "kill", *id, "TERM").Run()
		err = <-done
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return exitError{ee.ExitCode()}
	}
	return err
}

type multi []string

func (m *multi) String() string     { return strings.Join(*m, ",") }
func (m *multi) Set(s string) error { *m = append(*m, s); return nil }
