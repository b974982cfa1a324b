package local

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"sort"
	"strings"
)

// hostEnv are the variables of the local environment every task gets: what
// a container image defines for any process (a PATH, a locale, a clock, a
// temporary directory). Nothing else passes unless the task's container
// spec or platform spec grants it, or Options.PassEnv names it.
var hostEnv = map[string]bool{"PATH": true, "LANG": true, "LANGUAGE": true, "TZ": true, "TMPDIR": true, "TERM": true, "USER": true, "LOGNAME": true}

// ReadSecretFile reads a secret as `kubectl create secret generic
// --from-env-file` does: KEY=VALUE lines, blank lines and # comments
// skipped. The values are never printed.
func ReadSecretFile(path string) (map[string]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read secret file: %w", err)
	}
	out := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok || strings.TrimSpace(k) == "" {
			return nil, fmt.Errorf("secret file %s line %d: want KEY=VALUE", path, n)
		}
		out[strings.TrimSpace(k)] = v
	}
	return out, sc.Err()
}

// env is the task's environment: the host variables (hostEnv), HOME (the
// run's own, empty at the start of a run, as a pod's), the variables of
// Options.PassEnv, the container's env, then the
// secretAsEnv mappings of its platform spec, each filled from
// Options.Secrets[secret][key], else from the local variable named like the
// key. A secret that is not found fails the task before it starts, as a pod
// whose secret key is missing does not start.
func (r *runner) env(t *task, home string) ([]string, error) {
	local := map[string]string{}
	for _, kv := range r.o.Env {
		k, v, _ := strings.Cut(kv, "=")
		local[k] = v
	}
	set := map[string]string{}
	for k, v := range local {
		if hostEnv[k] || strings.HasPrefix(k, "LC_") {
			set[k] = v
		}
	}
	set["HOME"] = home
	for _, p := range r.o.PassEnv {
		if k, v, ok := strings.Cut(p, "="); ok {
			set[k] = v
		} else if v, ok := local[p]; ok {
			set[p] = v
		}
	}
	for _, e := range t.container.Env {
		set[e.Name] = e.Value
	}
	if err := r.secrets(t, set); err != nil {
		return nil, err
	}
	env := make([]string, 0, len(set))
	for k, v := range set {
		env = append(env, k+"="+v)
	}
	sort.Strings(env)
	return env, nil
}

// secrets sets the secretAsEnv mappings of the task's platform spec in set,
// each from Options.Secrets[secret][key], else from the local variable
// named like the key.
func (r *runner) secrets(t *task, set map[string]string) error {
	local := map[string]string{}
	for _, kv := range r.o.Env {
		k, v, _ := strings.Cut(kv, "=")
		local[k] = v
	}
	for _, se := range t.k8s.GetSecretAsEnv() {
		for _, ke := range se.KeyToEnv {
			if file, ok := r.o.Secrets[se.SecretName]; ok {
				v, ok := file[ke.SecretKey]
				if !ok {
					return fmt.Errorf("secret %s has no key %s (from --secret %s=FILE)", se.SecretName, ke.SecretKey, se.SecretName)
				}
				set[ke.EnvVar] = v
				continue
			}
			v, ok := local[ke.SecretKey]
			if !ok {
				return fmt.Errorf("secret %s key %s: give it with --secret %s=FILE (KEY=VALUE lines) or set %s in the environment", se.SecretName, ke.SecretKey, se.SecretName, ke.SecretKey)
			}
			set[ke.EnvVar] = v
		}
	}
	return nil
}
