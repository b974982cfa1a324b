package rehearse

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/kfllm/kfllm/internal/image"
	"github.com/kfllm/kfllm/internal/kfp/local"
	"github.com/kfllm/kfllm/internal/linewriter"
)

// modelMount is where KServe's storage initializer leaves a model.
const modelMount = "/mnt/models"

// cluster is the serving and UI containers, started from the manifests.
type cluster struct {
	api, ui       *container
	apiURL, uiURL string
	model         string // the served model's name
}

func (c *cluster) stop() {
	if c.ui != nil {
		c.ui.stop()
	}
	if c.api != nil {
		c.api.stop()
	}
}

// pod is a container of a manifest resolved for runc: its run, its ports
// moved to free loopback ports (the containers share the host's network).
type pod struct {
	spec  *podSpec
	c     *containerSpec
	run   image.Run
	ports map[int]int // container port -> host port
}

func (o Options) pod(spec *podSpec, configMaps, secrets map[string]map[string]string) (*pod, error) {
	c := &spec.Containers[0]
	if err := spec.checkSecurity(c); err != nil {
		return nil, err
	}
	env, err := c.env(configMaps, secrets)
	if err != nil {
		return nil, fmt.Errorf("container %s: %w", c.Name, err)
	}
	scratch, err := spec.emptyDirs(c)
	if err != nil {
		return nil, err
	}
	p := &pod{spec: spec, c: c, ports: map[int]int{}}
	for _, cp := range c.Ports {
		hp, err := freePort()
		if err != nil {
			return nil, err
		}
		p.ports[cp.ContainerPort] = hp
	}
	p.run = image.Run{Env: env, Scratch: slices.DeleteFunc(scratch, func(s string) bool { return s == "/tmp" })}
	if q, ok := c.Resources.Limits["memory"]; ok {
		if p.run.MemoryLimit, err = memoryBytes(q); err != nil {
			return nil, fmt.Errorf("container %s: %w", c.Name, err)
		}
	}
	for _, s := range append([]string{}, c.Command...) {
		p.run.Command = append(p.run.Command, expand(s, env))
	}
	for _, a := range c.Args {
		p.run.Args = append(p.run.Args, p.movePort(expand(a, env)))
	}
	return p, nil
}

var portFlagRE = regexp.MustCompile(`^(--[a-z-]*port=)([0-9]+)$`)

// movePort rewrites a --...port=N flag for a declared container port N.
func (p *pod) movePort(arg string) string {
	m := portFlagRE.FindStringSubmatch(arg)
	if m == nil {
		return arg
	}
	n, _ := strconv.Atoi(m[2])
	if hp, ok := p.ports[n]; ok {
		return m[1] + strconv.Itoa(hp)
	}
	return arg
}

// probeURL is a probe's URL on the host.
func (p *pod) probeURL(pr *probe) (string, error) {
	if pr == nil || pr.HTTPGet == nil {
		return "", fmt.Errorf("container %s: not an httpGet probe", p.c.Name)
	}
	port, err := p.c.port(pr.HTTPGet.Port)
	if err != nil {
		return "", err
	}
	hp, ok := p.ports[port]
	if !ok {
		return "", fmt.Errorf("container %s: probe port %d is not declared", p.c.Name, port)
	}
	return fmt.Sprintf("http://127.0.0.1:%d%s", hp, pr.HTTPGet.Path), nil
}

// probes calls the container's probes as the kubelet does: the startup
// probe (or readiness) until it passes within periodSeconds x
// failureThreshold, then each of them once.
func (p *pod) probes(ctx context.Context, ct *container, log io.Writer) error {
	first := p.c.StartupProbe
	if first == nil {
		first = p.c.ReadinessProbe
	}
	url, err := p.probeURL(first)
	if err != nil {
		return err
	}
	period, tries := max(first.PeriodSeconds, 10), max(first.FailureThreshold, 3)
	if err := waitOK(ctx, url, time.Duration(period*tries)*time.Second, ct); err != nil {
		return fmt.Errorf("container %s: %w", p.c.Name, err)
	}
	for _, pr := range []struct {
		name string
		p    *probe
	}{{"startupProbe", p.c.StartupProbe}, {"readinessProbe", p.c.ReadinessProbe}, {"livenessProbe", p.c.LivenessProbe}} {
		if pr.p == nil {
			continue
		}
		url, err := p.probeURL(pr.p)
		if err != nil {
			return err
		}
		if pr.name == "readinessProbe" {
			// Ready once the model is loaded: the kubelet keeps asking.
			if err := waitOK(ctx, url, 10*time.Minute, ct); err != nil {
				return fmt.Errorf("container %s %s: %w", p.c.Name, pr.name, err)
			}
		}
		if s := status(ctx, url); s != 200 {
			return fmt.Errorf("container %s %s GET %s: status %d", p.c.Name, pr.name, url, s)
		}
		fmt.Fprintf(log, "rehearse: %s %s GET %s: 200\n", p.c.Name, pr.name, url)
	}
	return nil
}

// serve starts manifests/api's serving container on the uploaded model,
// then manifests/ui's UI container pointed at it.
func (o Options) serve(ctx context.Context, rc *Runc, model string) (*cluster, error) {
	secretFile := filepath.Join(o.Work, "hf-secret.env")
	hf, err := local.ReadSecretFile(secretFile)
	if err != nil {
		return nil, err
	}
	secrets := map[string]map[string]string{"hf-secret": hf} // langsmith-secret is optional and absent
	apiCM, err := configMap(filepath.Join(o.Manifests, "api", "configmap.yaml"))
	if err != nil {
		return nil, err
	}
	isvc, err := inferenceService(filepath.Join(o.Manifests, "api"))
	if err != nil {
		return nil, err
	}
	api, err := o.pod(isvc, map[string]map[string]string{"llm-api-config": apiCM}, secrets)
	if err != nil {
		return nil, err
	}
	// The model as KServe's storage initializer leaves it, instead of the
	// Hub download --model-id asks for (the Hub is not reachable here).
	for i, a := range api.run.Args {
		if strings.HasPrefix(a, "--model-id=") {
			api.run.Args[i] = "--model-dir=" + modelMount
		}
	}
	api.run.Mounts = append(api.run.Mounts, image.Mount{Host: model, Container: modelMount, ReadOnly: true})
	// The pipeline's default output is a PEFT adapter whose
	// base_model_name_or_path is the base_model parameter: on a cluster a
	// Hub id serving downloads with HF_TOKEN, here the directory the tasks
	// saw, bound read-only at the same path as the Hub's stand-in.
	api.run.Mounts = append(api.run.Mounts, image.Mount{Host: filepath.Join(o.Work, "base-model"), Container: baseDir, ReadOnly: true})
	cl := &cluster{model: apiCM["MODEL_NAME"]}
	fmt.Fprintf(o.Log, "rehearse: serving: %s\n", strings.Join(append(slices.Clone(api.run.Command), api.run.Args...), " "))
	if cl.api, err = rc.start(ctx, "serving", api.run, linewriter.NewPrefixed(o.Log, "[serving] ")); err != nil {
		return nil, err
	}
	if err := api.probes(ctx, cl.api, o.Log); err != nil {
		cl.stop()
		return nil, err
	}
	if err := cl.api.checkProcess(o.Log); err != nil {
		cl.stop()
		return nil, err
	}
	cl.apiURL = fmt.Sprintf("http://127.0.0.1:%d", api.ports[api.c.Ports[0].ContainerPort])

	uiCM, err := configMap(filepath.Join(o.Manifests, "ui", "configmap.yaml"))
	if err != nil {
		cl.stop()
		return nil, err
	}
	// The Service llm-api-predictor, here the serving container's port.
	uiCM["API_URL"] = cl.apiURL
	dep, err := deployment(filepath.Join(o.Manifests, "ui"))
	if err != nil {
		cl.stop()
		return nil, err
	}
	ui, err := o.pod(dep, map[string]map[string]string{"llm-ui-config": uiCM}, secrets)
	if err != nil {
		cl.stop()
		return nil, err
	}
	fmt.Fprintf(o.Log, "rehearse: ui: %s\n", strings.Join(append(slices.Clone(ui.run.Command), ui.run.Args...), " "))
	if cl.ui, err = rc.start(ctx, "ui", ui.run, linewriter.NewPrefixed(o.Log, "[ui] ")); err != nil {
		cl.stop()
		return nil, err
	}
	if err := ui.probes(ctx, cl.ui, o.Log); err != nil {
		cl.stop()
		return nil, err
	}
	if err := cl.ui.checkProcess(o.Log); err != nil {
		cl.stop()
		return nil, err
	}
	cl.uiURL = fmt.Sprintf("http://127.0.0.1:%d", ui.ports[ui.c.Ports[0].ContainerPort])
	return cl, nil
}

// ask asks the UI one question, as its page does (POST /api/generate from
// its own origin), and returns the streamed answer.
func (c *cluster) ask(ctx context.Context, context_, question string) (string, error) {
	out, err := post(ctx, c.uiURL+"/api/generate", map[string]any{"context": context_, "question": question, "max_new_tokens": 16, "temperature": 0},
		map[string]string{"Origin": c.uiURL})
	if err != nil {
		return "", err
	}
	return sseAnswer(out)
}
