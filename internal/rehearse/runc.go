package rehearse

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kfllm/kfllm/internal/image"
	"github.com/kfllm/kfllm/internal/kfp/local"
)

// ImageUser is the user every kfllm image runs as.
const ImageUser = 65532

// Runc starts containers from the OCI layouts of the kfllm images.
type Runc struct {
	// Runtime is the OCI runtime binary (default runc).
	Runtime string
	// Images holds one OCI layout per image, Images/NAME.
	Images string
	// Work holds the bundles.
	Work string
	// Rootfs holds the unpacked root file systems (default Work/rootfs).
	Rootfs string
	seq    atomic.Int64
}

var _ local.Runtime = (*Runc)(nil)

func (r *Runc) runtime() string {
	if r.Runtime == "" {
		return "runc"
	}
	return r.Runtime
}

// Run runs one pipeline task's container to its end: the image named by
// its reference (REGISTRY/kfllm-NAME:TAG is Images/NAME), the pod's /tmp
// and emptyDirs, the artifacts and claims bound in, every writable one
// owned by the image's user as a pod's fsGroup would make it.
func (r *Runc) Run(ctx context.Context, c local.Container) (int, error) {
	name, err := local.Binary(c.Image, "")
	if err != nil {
		return -1, err
	}
	run := image.Run{Command: c.Argv, Env: c.Env, Tmp: c.Tmp, Scratch: c.Scratch, Hostname: c.Pod, MemoryLimit: c.MemoryLimit}
	if err := os.MkdirAll(c.Tmp, 0o755); err != nil {
		return -1, err
	}
	writable := []string{c.Tmp}
	for _, m := range c.Mounts {
		run.Mounts = append(run.Mounts, image.Mount{Host: m.Host, Container: m.Container, ReadOnly: m.ReadOnly})
		if !m.ReadOnly {
			writable = append(writable, m.Host)
		}
	}
	for _, w := range writable {
		if err := chownTree(w, ImageUser); err != nil {
			return -1, err
		}
	}
	ct, err := r.start(ctx, name, run, c.Out)
	if err != nil {
		return -1, err
	}
	defer ct.delete()
	err = ct.wait()
	var ee *exec.ExitError
	if errors.As(err, &ee) && ee.ExitCode() >= 0 {
		return ee.ExitCode(), nil
	}
	if err != nil {
		return -1, fmt.Errorf("%s run %s: %w", r.runtime(), ct.id, err)
	}
	return 0, nil
}

// pruneRootfs removes the unpacked root file systems of images that are no
// longer in r.Images (each is some 500 MB; every commit changes the digests).
func (r *Runc) pruneRootfs() error {
	cache := r.rootfs()
	keep := map[string]bool{}
	layouts, err := os.ReadDir(r.Images)
	if err != nil {
		return fmt.Errorf("images: %w", err)
	}
	for _, l := range layouts {
		img, err := image.Open(filepath.Join(r.Images, l.Name()))
		if err != nil {
			continue // not a layout
		}
		if d, err := img.Digest(); err == nil {
			keep[d.Hex] = true
		}
	}
	entries, err := os.ReadDir(cache)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, e := range entries {
		if hexDigestRE.MatchString(e.Name()) && !keep[e.Name()] {
			if err := os.RemoveAll(filepath.Join(cache, e.Name())); err != nil {
				return fmt.Errorf("prune %s: %w", e.Name(), err)
			}
		}
	}
	return nil
}

var hexDigestRE = regexp.MustCompile(`^[0-9a-f]{64}$`)

func (r *Runc) rootfs() string {
	if r.Rootfs != "" {
		return r.Rootfs
	}
	return filepath.Join(r.Work, "rootfs")
}

// chownTree gives a writable volume to the container's user.
func chownTree(root string, uid int) error {
	return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, uid, uid)
	})
}

// container is one runc container started in the background.
type container struct {
	id, runtime string
	cmd         *exec.Cmd
	out         *syncBuffer
	done        chan error
	err         error
}

// start starts NAME's image with run; its output goes to out and is kept.
func (r *Runc) start(ctx context.Context, name string, run image.Run, out io.Writer) (*container, error) {
	root, cfg, err := image.Rootfs(filepath.Join(r.Images, name), r.rootfs())
	if err != nil {
		return nil, err
	}
	if want := fmt.Sprintf("%d:%d", ImageUser, ImageUser); cfg.Config.User != want {
		return nil, fmt.Errorf("%s: image user %q, want %s", name, cfg.Config.User, want)
	}
	if err := os.MkdirAll(filepath.Join(r.Work, "bundles"), 0o755); err != nil {
		return nil, err
	}
	bundle, err := os.MkdirTemp(filepath.Join(r.Work, "bundles"), name+"-")
	if err != nil {
		return nil, err
	}
	if err := image.Bundle(bundle, root, cfg, run); err != nil {
		os.RemoveAll(bundle)
		return nil, err
	}
	c := &container{id: fmt.Sprintf("kfllm-rehearse-%d-%s-%d", os.Getpid(), name, r.seq.Add(1)), runtime: r.runtime(), out: &syncBuffer{}, done: make(chan error, 1)}
	c.cmd = exec.CommandContext(ctx, c.runtime, "run", "--bundle", bundle, c.id)
	var w io.Writer = c.out
	if out != nil {
		w = io.MultiWriter(c.out, out)
	}
	c.cmd.Stdout, c.cmd.Stderr = w, w
	c.cmd.Cancel = func() error { return exec.Command(c.runtime, "kill", c.id, "KILL").Run() }
	c.cmd.WaitDelay = 10 * time.Second
	if err := c.cmd.Start(); err != nil {
		os.RemoveAll(bundle)
		return nil, fmt.Errorf("%s: %w", c.runtime, err)
	}
	go func() {
		c.done <- c.cmd.Wait()
		os.RemoveAll(bundle)
	}()
	return c, nil
}

func (c *container) wait() error {
	if c.done != nil {
		c.err = <-c.done
		c.done = nil
	}
	return c.err
}

func (c *container) exited() bool {
	if c.done == nil {
		return true
	}
	select {
	case c.err = <-c.done:
		c.done = nil
		return true
	default:
		return false
	}
}

// stop stops a running container as the kubelet does: SIGTERM, then KILL
// after a grace period.
func (c *container) stop() {
	if !c.exited() {
		_ = exec.Command(c.runtime, "kill", c.id, "TERM").Run()
		select {
		case <-c.done:
		case <-time.After(20 * time.Second):
			_ = exec.Command(c.runtime, "kill", c.id, "KILL").Run()
			<-c.done
		}
		c.done = nil
	}
	c.delete()
}

func (c *container) delete() { _ = exec.Command(c.runtime, "delete", "--force", c.id).Run() }

// checkProcess reads the container's process from the host: its uid and
// whether its root is mounted read-only.
func (c *container) checkProcess(log io.Writer) error {
	st, err := exec.Command(c.runtime, "state", c.id).Output()
	if err != nil {
		return fmt.Errorf("%s state %s: %w", c.runtime, c.id, err)
	}
	var s struct{ Pid int }
	if err := json.Unmarshal(st, &s); err != nil || s.Pid == 0 {
		return fmt.Errorf("%s state %s: no pid in %s", c.runtime, c.id, st)
	}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", s.Pid))
	if err != nil {
		return err
	}
	var uid string
	for _, l := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(l, "Uid:"); ok {
			uid = strings.Join(strings.Fields(v), " ")
		}
	}
	if want := strings.Repeat(fmt.Sprint(ImageUser)+" ", 4); uid+" " != want {
		return fmt.Errorf("%s: process uids %q, want %d", c.id, uid, ImageUser)
	}
	mounts, err := os.ReadFile(fmt.Sprintf("/proc/%d/mountinfo", s.Pid))
	if err != nil {
		return err
	}
	for _, l := range strings.Split(string(mounts), "\n") {
		f := strings.Fields(l)
		if len(f) > 5 && f[4] == "/" {
			if !strings.Contains(","+f[5]+",", ",ro,") {
				return fmt.Errorf("%s: root mounted %s, want ro", c.id, f[5])
			}
			fmt.Fprintf(log, "rehearse: %s runs as uid %s, root %s\n", c.id, strings.Fields(uid)[0], f[5])
			return nil
		}
	}
	return fmt.Errorf("%s: no root mount in /proc/%d/mountinfo", c.id, s.Pid)
}

// syncBuffer is a bytes.Buffer the container's output goroutines and the
// checks share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
