package image

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/renameio/v2"
)

// Mount is a host path bound into the container.
type Mount struct {
	Host, Container string
	ReadOnly        bool
}

// ParseMount reads HOST:CONTAINER[:ro].
func ParseMount(s string) (Mount, error) {
	f := strings.Split(s, ":")
	if len(f) < 2 || len(f) > 3 || f[0] == "" || !strings.HasPrefix(f[1], "/") || (len(f) == 3 && f[2] != "ro" && f[2] != "rw") {
		return Mount{}, fmt.Errorf("mount %q: want HOST:/CONTAINER[:ro]", s)
	}
	host, err := filepath.Abs(f[0])
	if err != nil {
		return Mount{}, fmt.Errorf("mount %q: %w", s, err)
	}
	return Mount{Host: host, Container: f[1], ReadOnly: len(f) == 3 && f[2] == "ro"}, nil
}

// Run is how a container is started, as Kubernetes would from a pod spec:
// Command replaces the image's entrypoint, Args its cmd, Env is added to
// the image's environment.
type Run struct {
	Command []string
	Args    []string
	Env     []string
	Mounts  []Mount
	// Tmp, when set, is a host directory for /tmp instead of a fresh tmpfs
	// (so that what a process leaves there can be read after it exits).
	Tmp string
	// Scratch are fresh tmpfs directories (a pod's emptyDirs), mounted
	// before Mounts, which may lie under them.
	Scratch []string
	// MemoryLimit, when positive, is the container's memory limit in bytes
	// (a pod's resources.limits.memory; the kernel's OOM killer enforces it).
	MemoryLimit int64
	// Hostname of the container; its network is the host's, so a server in
	// it is reachable on the host's loopback.
	Hostname string
}

// Bundle writes an OCI runtime bundle at dir for runc: config.json naming
// the unpacked image at rootfs as its root. The process runs as the
// image's user (uid 65532) with no capabilities and no new privileges, on
// a read-only root with a fresh tmpfs at /tmp, like a pod with
// readOnlyRootFilesystem and an emptyDir at /tmp.
func Bundle(dir, rootfs string, cfg *v1.ConfigFile, r Run) error {
	uid, gid, err := parseUser(cfg.Config.User)
	if err != nil {
		return err
	}
	argv := cfg.Config.Entrypoint
	args := cfg.Config.Cmd
	if len(r.Command) > 0 {
		argv, args = r.Command, nil
	}
	if r.Args != nil {
		args = r.Args
	}
	argv = append(append([]string{}, argv...), args...)
	if len(argv) == 0 {
		return fmt.Errorf("bundle: nothing to run (no entrypoint, command or args)")
	}
	env := append(append([]string{}, cfg.Config.Env...), r.Env...)
	cwd := cfg.Config.WorkingDir
	if cwd == "" {
		cwd = "/"
	}
	mounts := []map[string]any{
		{"destination": "/proc", "type": "proc", "source": "proc"},
		{"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
		{"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"}},
		{"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": []string{"nosuid", "noexec", "nodev", "mode=1777", "size=268435456"}},
		{"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": []string{"nosuid", "noexec", "nodev"}},
		{"destination": "/sys", "type": "bind", "source": "/sys", "options": []string{"rbind", "nosuid", "noexec", "nodev", "ro"}},
		{"destination": "/etc/resolv.conf", "type": "bind", "source": "/etc/resolv.conf", "options": []string{"rbind", "ro"}},
	}
	if r.Tmp == "" {
		mounts = append(mounts, map[string]any{"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": []string{"nosuid", "nodev", "mode=1777", "size=2147483648"}})
	} else {
		r.Mounts = append([]Mount{{Host: r.Tmp, Container: "/tmp"}}, r.Mounts...)
	}
	for _, d := range r.Scratch {
		mounts = append(mounts, map[string]any{"destination": d, "type": "tmpfs", "source": "tmpfs", "options": []string{"nosuid", "nodev", "mode=1777"}})
	}
	for _, m := range r.Mounts {
		host, err := filepath.Abs(m.Host)
		if err != nil {
			return fmt.Errorf("bundle: mount %s: %w", m.Host, err)
		}
		if _, err := os.Stat(host); err != nil {
			return fmt.Errorf("bundle: mount %s: %w", m.Host, err)
		}
		opts := []string{"rbind", "nosuid", "nodev"}
		if m.ReadOnly {
			opts = append(opts, "ro")
		}
		mounts = append(mounts, map[string]any{"destination": m.Container, "type": "bind", "source": host, "options": opts})
	}
	host := r.Hostname
	if host == "" {
		host = "kfllm"
	}
	abs, err := filepath.Abs(rootfs)
	if err != nil {
		return fmt.Errorf("bundle: %w", err)
	}
	spec := map[string]any{
		"ociVersion": "1.0.2",
		"process": map[string]any{
			"terminal":        false,
			"user":            map[string]any{"uid": uid, "gid": gid},
			"args":            argv,
			"env":             env,
			"cwd":             cwd,
			"capabilities":    map[string]any{"bounding": []string{}, "effective": []string{}, "permitted": []string{}, "ambient": []string{}},
			"noNewPrivileges": true,
		},
		"hostname": host,
		"mounts":   mounts,
		"linux": map[string]any{
			"namespaces": []map[string]string{{"type": "pid"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}},
			"maskedPaths": []string{"/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list",
				"/proc/timer_stats", "/proc/sched_debug", "/sys/firmware", "/proc/scsi"},
			"readonlyPaths": []string{"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"},
		},
	}
	if r.MemoryLimit > 0 {
		spec["linux"].(map[string]any)["resources"] = map[string]any{"memory": map[string]any{"limit": r.MemoryLimit}}
	}
	spec["root"] = map[string]any{"path": abs, "readonly": true}
	b, err := json.MarshalIndent(spec, "", "\t")
	if err != nil {
		return fmt.Errorf("bundle: %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("bundle: %w", err)
	}
	if err := renameio.WriteFile(filepath.Join(dir, "config.json"), b, 0o644); err != nil {
		return fmt.Errorf("bundle: %w", err)
	}
	return nil
}

// parseUser reads the numeric UID[:GID] of an image config; a name would
// need the image's /etc/passwd, and the kfllm images name none.
func parseUser(u string) (int, int, error) {
	if u == "" {
		return 0, 0, nil
	}
	us, gs, hasG := strings.Cut(u, ":")
	uid, err := strconv.Atoi(us)
	if err != nil {
		return 0, 0, fmt.Errorf("bundle: user %q is not numeric", u)
	}
	gid := uid
	if hasG {
		if gid, err = strconv.Atoi(gs); err != nil {
			return 0, 0, fmt.Errorf("bundle: group in %q is not numeric", u)
		}
	}
	return uid, gid, nil
}
