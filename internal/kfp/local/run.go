package local

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/kfllm/kfllm/internal/kfp"
	"github.com/kfllm/kfllm/internal/kfp/executor"
	"google.golang.org/protobuf/types/known/structpb"
)

// Options configure a local run.
type Options struct {
	// WorkDir holds the runs (WorkDir/RUN/TASK/...) and the cache index.
	WorkDir string
	// RunID names the run's directory; default PIPELINE-YYYYMMDD-HHMMSS (UTC).
	RunID string
	// BinDir holds the binaries standing in for the images (default "bin").
	BinDir string
	// Params override pipeline parameter defaults, parsed by declared type.
	Params map[string]string
	// Cache skips tasks whose executor and inputs are unchanged since a
	// previous successful run (tasks with caching off in the IR always run).
	Cache bool
	// Env is the local environment (os.Environ() when nil). A task gets
	// only its host variables (PATH, locale, TMPDIR...), not the rest; a
	// secret its platform spec maps is taken from Secrets, else from the
	// variable of Env named like the secret's key.
	Env []string
	// Secrets holds secrets by name, key to value (--secret NAME=FILE).
	Secrets map[string]map[string]string
	// PassEnv gives every task NAME=VALUE, or NAME from Env (--env): what a
	// cluster sets for pods beyond the pipeline, such as HF_ENDPOINT.
	PassEnv []string
	// MaxBackoff caps the wait before a retry (0: the retry policy's own).
	MaxBackoff time.Duration
	// Out receives the task logs, each line prefixed with "[task] ", progress
	// and the final summary (os.Stdout when nil).
	Out io.Writer
	// TailLines is how many log lines a failure reports (default 20).
	TailLines int
	// Now is the clock (time.Now when nil); for tests.
	Now func() time.Time
	// Runtime, when set, runs each task in its image as the KFP v2
	// launcher would (see [Runtime]); BinDir, PassEnv and Cache are then
	// unused, and secrets come from Secrets or Env only.
	Runtime Runtime
	// Launcher is the KFP backend the Runtime's pods follow.
	Launcher Launcher
}

// Status of a task in a run.
type Status string

// Task statuses.
const (
	Succeeded Status = "succeeded"
	Cached    Status = "cached"
	Failed    Status = "failed"
	NotRun    Status = "not run"
)

// TaskResult is what happened to one task.
type TaskResult struct {
	Name     string
	Status   Status
	Duration time.Duration
	// CachedFrom is the directory of the run whose outputs a cache hit reused.
	CachedFrom string
	ExitCode   int
	// Attempts is how many times the task's process ran (retries + 1).
	Attempts int
	// Outputs maps each output artifact to its path.
	Outputs map[string]string
	// Params are the task's output parameters.
	Params map[string]*structpb.Value
	// Metadata holds each output artifact's metadata from the executor
	// output (a Metrics artifact's scalar metrics).
	Metadata map[string]map[string]any
}

// Result is a run's outcome, tasks in run order.
type Result struct {
	RunID string
	Dir   string
	Tasks []TaskResult
	// Outputs are the pipeline's output parameters (upload's commit_sha).
	Outputs map[string]*structpb.Value
}

// TaskError is the failure of a task's process.
type TaskError struct {
	Task     string
	ExitCode int // -1 when the process did not exit normally
	Tail     []string
	// First is the first log line that looks like an error, if any.
	First string
	Log   string
	Err   error
}

// errExit is the error of a task process that exited non-zero.
var errExit = errors.New("non-zero exit")

func (e *TaskError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "task %s failed", e.Task)
	if e.ExitCode >= 0 {
		fmt.Fprintf(&b, " with exit code %d", e.ExitCode)
	}
	if e.Err != nil && !errors.Is(e.Err, errExit) {
		fmt.Fprintf(&b, ": %v", e.Err)
	}
	// The first error line often explains more than the last lines (a flag
	// error above a usage text, a panic above its stack).
	if e.First != "" && !slices.Contains(e.Tail, e.First) {
		fmt.Fprintf(&b, "\nfirst error line: %s", e.First)
	}
	if len(e.Tail) > 0 {
		fmt.Fprintf(&b, "\nlast %d lines of %s:\n  %s", len(e.Tail), e.Log, strings.Join(e.Tail, "\n  "))
	}
	return b.String()
}

func (e *TaskError) Unwrap() error { return e.Err }

// RunFile reads a compiled pipeline YAML and runs it; see [Run].
func RunFile(ctx context.Context, path string, o Options) (*Result, error) {
	c, err := kfp.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Run(ctx, c, o)
}

// Run checks the pipeline, then runs its tasks one at a time in DAG order,
// stopping at the first failure (a *TaskError). It prints a summary per task
// at the end, whether the run failed or not.
func Run(ctx context.Context, c *kfp.Compiled, o Options) (*Result, error) {
	o.defaults()
	pl, err := newPlan(c, o.Params, o.BinDir, o.Runtime != nil)
	if err != nil {
		return nil, err
	}
	if o.RunID == "" {
		o.RunID = fmt.Sprintf("%s-%s", pl.name, o.Now().UTC().Format("20060102-150405"))
	}
	if strings.ContainsAny(o.RunID, `/\`) || o.RunID == "." || o.RunID == ".." {
		return nil, fmt.Errorf("run id %q: must be a plain directory name", o.RunID)
	}
	r := &runner{o: o, pl: pl, cache: &cache{dir: filepath.Join(o.WorkDir, ".cache")}, roots: map[string]string{}}
	// Every secret a task maps must be there before anything runs.
	for _, t := range pl.tasks {
		if _, err := r.env(t, ""); err != nil {
			return nil, fmt.Errorf("task %s: %w", t.name, err)
		}
	}
	res := &Result{RunID: o.RunID, Dir: filepath.Join(o.WorkDir, o.RunID)}
	if err := os.MkdirAll(res.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("create run directory: %w", err)
	}
	fmt.Fprintf(o.Out, "run %s: %d tasks, outputs in %s\n", o.RunID, len(pl.tasks), res.Dir)

	outputs := map[string]map[string]string{}            // task -> artifact -> path
	outParams := map[string]map[string]*structpb.Value{} // task -> parameter -> value
	var runErr error
	for i, t := range pl.tasks {
		if runErr != nil {
			res.Tasks = append(res.Tasks, TaskResult{Name: t.name, Status: NotRun, ExitCode: -1})
			continue
		}
		fmt.Fprintf(o.Out, "==> %s (%d/%d)\n", t.name, i+1, len(pl.tasks))
		tr, ops, err := r.runTask(ctx, t, filepath.Join(res.Dir, t.name), outputs, outParams)
		res.Tasks = append(res.Tasks, tr)
		if err != nil {
			runErr = err
			continue
		}
		outputs[t.name] = tr.Outputs
		outParams[t.name] = ops
		note := ""
		if tr.Status == Cached {
			note = " (cached from " + tr.CachedFrom + ")"
		}
		if tr.Attempts > 1 {
			note += fmt.Sprintf(" after %d attempts", tr.Attempts)
		}
		fmt.Fprintf(o.Out, "<== %s %s in %s%s\n", t.name, tr.Status, tr.Duration.Round(time.Millisecond), note)
	}
	if runErr == nil {
		res.Outputs = pipelineOutputs(pl, outParams)
	}
	res.WriteSummary(o.Out)
	writeMetrics(o.Out, res)
	writeReports(o.Out, res)
	if err := writeOutputs(o.Out, res); err != nil && runErr == nil {
		runErr = err
	}
	return res, runErr
}

func (o *Options) defaults() {
	if o.WorkDir == "" {
		o.WorkDir = "work"
	}
	if o.BinDir == "" {
		o.BinDir = "bin"
	}
	if o.Env == nil {
		o.Env = os.Environ()
	}
	if o.Out == nil {
		o.Out = os.Stdout
	}
	if o.TailLines <= 0 {
		o.TailLines = 20
	}
	if o.Now == nil {
		o.Now = time.Now
	}
}

// WriteSummary prints one line per task: status, duration, cache hit.
func (r *Result) WriteSummary(w io.Writer) {
	fmt.Fprintf(w, "\nrun %s summary:\n", r.RunID)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TASK\tSTATUS\tDURATION\tCACHE")
	for _, t := range r.Tasks {
		cache := "-"
		switch {
		case t.Status == Cached:
			cache = "hit"
		case t.Status == Succeeded || t.Status == Failed:
			cache = "miss"
		}
		status := string(t.Status)
		if t.Status == Failed && t.ExitCode >= 0 {
			status = fmt.Sprintf("failed (exit %d)", t.ExitCode)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", t.Name, status, t.Duration.Round(time.Millisecond), cache)
	}
	tw.Flush()
}

type runner struct {
	o     Options
	pl    *plan
	cache *cache
	// roots are the container task roots of the tasks run under a Runtime.
	roots map[string]string
}

// runTask resolves a task's inputs, consults the cache, runs its binary and
// checks its outputs.
func (r *runner) runTask(ctx context.Context, t *task, dir string, outputs map[string]map[string]string, outParams map[string]map[string]*structpb.Value) (TaskResult, map[string]*structpb.Value, error) {
	start := r.o.Now()
	tr := TaskResult{Name: t.name, Status: Failed, ExitCode: -1}
	fail := func(err error) (TaskResult, map[string]*structpb.Value, error) {
		tr.Duration = r.o.Now().Sub(start)
		return tr, nil, &TaskError{Task: t.name, ExitCode: -1, Err: err}
	}

	in, err := r.inputs(t, outputs, outParams)
	if err != nil {
		return fail(err)
	}
	// A rerun under the same run id starts from an empty task directory, so
	// that nothing stale looks like this run's output.
	if err := os.RemoveAll(dir); err != nil {
		return fail(err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fail(err)
	}
	out := &resolved{params: in.params, artifacts: in.artifacts, outArtifacts: map[string]string{}, outParams: map[string]string{}}
	for name := range t.comp.GetOutputDefinitions().GetArtifacts() {
		out.outArtifacts[name] = filepath.Join(dir, name)
	}
	for name := range t.comp.GetOutputDefinitions().GetParameters() {
		out.outParams[name] = filepath.Join(dir, "parameters", name)
	}

	useCache := t.spec.GetCachingOptions().GetEnableCache() && t.claimOp() == "" && r.o.Runtime == nil
	var key string
	if useCache {
		if key, err = cacheKey(t, in); err != nil {
			return fail(fmt.Errorf("cache key: %w", err))
		}
		if r.o.Cache {
			if hit, ok := r.cache.lookup(key); ok {
				if err := hit.link(out.outArtifacts); err != nil {
					return fail(err)
				}
				tr.Status, tr.CachedFrom, tr.ExitCode, tr.Outputs, tr.Params = Cached, hit.Dir, 0, out.outArtifacts, hit.params()
				if eo, err := readExecutorOutput(filepath.Join(hit.Dir, "executor_output.json")); err == nil {
					tr.Metadata = artifactMetadata(eo)
				}
				tr.Duration = r.o.Now().Sub(start)
				return tr, tr.Params, nil
			}
		}
	}

	if t.claimOp() != "" {
		ops, err := r.claimTask(t, in.params)
		if err != nil {
			return fail(err)
		}
		tr.Status, tr.ExitCode, tr.Attempts, tr.Outputs, tr.Params = Succeeded, 0, 1, out.outArtifacts, ops
		tr.Duration = r.o.Now().Sub(start)
		return tr, ops, nil
	}
	var (
		argv, env []string
		execOut   string
		run       func(ctx context.Context, w io.Writer) error
	)
	if r.o.Runtime != nil {
		l, err := r.layout(t, dir, in, out.outArtifacts)
		if err != nil {
			return fail(err)
		}
		if argv, err = (&resolved{params: in.params, artifacts: l.inputs, outArtifacts: l.outputs, outParams: l.params, outputFile: l.execOutC}).command(t, r.pl.name, r.o.RunID); err != nil {
			return fail(err)
		}
		claims, err := r.mounts(t, outParams)
		if err != nil {
			return fail(err)
		}
		for _, p := range sortedKeys(claims) {
			l.mounts = append(l.mounts, Mount{Host: claims[p], Container: p})
		}
		sortMounts(l.mounts)
		pod := strings.ToLower(r.o.RunID + "-" + t.name)
		if env, err = r.podEnv(t, pod); err != nil {
			return fail(err)
		}
		out.outParams, execOut = l.hostPar, l.execOut
		// The launcher makes the output parameters' directory and each
		// output artifact's parent before the command runs.
		if err := os.MkdirAll(filepath.Join(l.tmp, "kfp", "outputs"), 0o755); err != nil {
			return fail(err)
		}
		r.roots[t.name] = l.root
		c := Container{Task: t.name, Pod: pod, Image: t.container.Image, Argv: argv, Env: env, Tmp: l.tmp, Scratch: launcherScratch, Mounts: l.mounts,
			MemoryLimit: int64(t.container.GetResources().GetMemoryLimit() * 1e9)}
		run = func(ctx context.Context, w io.Writer) error {
			c.Out = w
			code, err := r.o.Runtime.Run(ctx, c)
			if err == nil && code != 0 {
				return &exitError{code}
			}
			return err
		}
	} else {
		if execOut, err = filepath.Abs(filepath.Join(dir, "executor_output.json")); err != nil {
			return fail(err)
		}
		out.outputFile = execOut
		if argv, err = out.command(t, r.pl.name, r.o.RunID); err != nil {
			return fail(err)
		}
		mounts, err := r.mounts(t, outParams)
		if err != nil {
			return fail(err)
		}
		argv = remount(argv, mounts)
		home := filepath.Join(r.o.WorkDir, r.o.RunID, ".home")
		if home, err = filepath.Abs(home); err != nil {
			return fail(err)
		}
		if err := os.MkdirAll(home, 0o700); err != nil {
			return fail(err)
		}
		if env, err = r.env(t, home); err != nil {
			return fail(err)
		}
		run = func(ctx context.Context, w io.Writer) error { return r.process(ctx, argv, env, w) }
	}
	for _, p := range out.outParams {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return fail(err)
		}
	}
	policy := t.spec.GetRetryPolicy()
	attempts := 1 + int(policy.GetMaxRetryCount())
	var (
		code    int
		tail    []string
		logPath string
	)
	for attempt := 1; ; attempt++ {
		tr.Attempts = attempt
		code, tail, logPath, err = r.exec(ctx, t, run, dir)
		if err == nil || attempt >= attempts || ctx.Err() != nil {
			break
		}
		// The next attempt starts as a new pod: without this attempt's
		// outputs, with the same claims.
		wait := backoff(policy.GetBackoffDuration().AsDuration(), policy.GetBackoffFactor(), policy.GetBackoffMaxDuration().AsDuration(), attempt)
		if r.o.MaxBackoff > 0 && wait > r.o.MaxBackoff {
			wait = r.o.MaxBackoff
		}
		fmt.Fprintf(r.o.Out, "[%s] attempt %d of %d failed (%s); retrying in %s\n", t.name, attempt, attempts, exitText(code, err), wait)
		if err := os.Rename(logPath, filepath.Join(dir, fmt.Sprintf("task.attempt%d.log", attempt))); err != nil {
			return fail(err)
		}
		for _, p := range append(mapValues(out.outArtifacts), append(mapValues(out.outParams), execOut)...) {
			if err := os.RemoveAll(p); err != nil {
				return fail(err)
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(wait):
		}
	}
	tr.ExitCode = code
	if err != nil {
		tr.Duration = r.o.Now().Sub(start)
		return tr, nil, &TaskError{Task: t.name, ExitCode: code, Tail: tail, First: firstErrorLine(logPath), Log: logPath, Err: err}
	}
	for name, p := range out.outArtifacts {
		if _, err := os.Stat(p); err != nil {
			tr.Status = Failed
			tr.Duration = r.o.Now().Sub(start)
			return tr, nil, &TaskError{Task: t.name, ExitCode: code, Tail: tail, Log: logPath, Err: fmt.Errorf("exited 0 but did not write output %s (%s)", name, p)}
		}
	}
	eo, err := readExecutorOutput(execOut)
	if err != nil {
		return fail(err)
	}
	// As the KFP launcher: an output parameter in the executor output wins
	// over its output file.
	ops := map[string]*structpb.Value{}
	for name, p := range out.outParams {
		if v, ok := eo.GetParameterValues()[name]; ok {
			ops[name] = v
			continue
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return fail(fmt.Errorf("output parameter %s: in neither the executor output nor its file: %w", name, err))
		}
		v, err := kfp.ParseParam(strings.TrimSpace(string(b)), t.comp.OutputDefinitions.Parameters[name].ParameterType)
		if err != nil {
			return fail(fmt.Errorf("output parameter %s: %w", name, err))
		}
		ops[name] = v
	}
	if useCache {
		if err := r.cache.store(key, dir, out.outArtifacts, ops); err != nil {
			return fail(fmt.Errorf("cache: %w", err))
		}
	}
	tr.Status, tr.Outputs, tr.Params, tr.Metadata = Succeeded, out.outArtifacts, ops, artifactMetadata(eo)
	tr.Duration = r.o.Now().Sub(start)
	return tr, ops, nil
}

// backoff is the wait before retry n+1 after attempt n: KFP's
// backoffDuration * backoffFactor^(n-1), at most backoffMaxDuration.
func backoff(base time.Duration, factor float64, maxWait time.Duration, attempt int) time.Duration {
	if factor <= 0 {
		factor = 1
	}
	w := float64(base)
	for i := 1; i < attempt; i++ {
		w *= factor
	}
	if maxWait > 0 && w > float64(maxWait) {
		return maxWait
	}
	return time.Duration(w)
}

func exitText(code int, err error) string {
	if code >= 0 {
		return fmt.Sprintf("exit %d", code)
	}
	return err.Error()
}

func mapValues(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for _, v := range m {
		out = append(out, v)
	}
	return out
}

var errorLineRE = regexp.MustCompile(`(?i)\b(error|fatal|panic|failed|not defined|invalid)\b`)

// firstErrorLine returns the first line of a task log that looks like an
// error, or "".
func firstErrorLine(logPath string) string {
	f, err := os.Open(logPath)
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); errorLineRE.MatchString(l) {
			return l
		}
	}
	return ""
}

// taskInputs are a task's resolved inputs.
type taskInputs struct {
	params    map[string]*structpb.Value
	artifacts map[string]string
}

func (r *runner) inputs(t *task, outputs map[string]map[string]string, outParams map[string]map[string]*structpb.Value) (*taskInputs, error) {
	in := &taskInputs{params: map[string]*structpb.Value{}, artifacts: map[string]string{}}
	for name, p := range t.spec.GetInputs().GetParameters() {
		switch {
		case p.GetComponentInputParameter() != "":
			v, ok := r.pl.params[p.GetComponentInputParameter()]
			if !ok {
				return nil, fmt.Errorf("input %s: pipeline parameter %s is not set", name, p.GetComponentInputParameter())
			}
			in.params[name] = v
		case p.GetRuntimeValue().GetConstant() != nil:
			in.params[name] = p.GetRuntimeValue().GetConstant()
		case p.GetTaskOutputParameter() != nil:
			top := p.GetTaskOutputParameter()
			v, ok := outParams[top.ProducerTask][top.OutputParameterKey]
			if !ok {
				return nil, fmt.Errorf("input %s: task %s has no output parameter %s", name, top.ProducerTask, top.OutputParameterKey)
			}
			in.params[name] = v
		default:
			return nil, fmt.Errorf("input %s: this kind of parameter input is not supported locally", name)
		}
	}
	for name, a := range t.spec.GetInputs().GetArtifacts() {
		toa := a.GetTaskOutputArtifact()
		if toa == nil {
			return nil, fmt.Errorf("input %s: only artifacts from upstream tasks are supported locally", name)
		}
		p, ok := outputs[toa.ProducerTask][toa.OutputArtifactKey]
		if !ok {
			return nil, fmt.Errorf("input %s: task %s has no output %s", name, toa.ProducerTask, toa.OutputArtifactKey)
		}
		in.artifacts[name] = p
	}
	// Optional component inputs that the task leaves unset take their default.
	for name, d := range t.comp.GetInputDefinitions().GetParameters() {
		if _, ok := in.params[name]; !ok && d.DefaultValue != nil {
			in.params[name] = d.DefaultValue
		}
	}
	return in, nil
}

// resolved holds what the placeholders of one execution resolve to.
type resolved struct {
	params       map[string]*structpb.Value
	artifacts    map[string]string
	outArtifacts map[string]string
	outParams    map[string]string
	// outputFile is where the task writes its executor output: the
	// executor input's outputs.outputFile.
	outputFile string
}

// placeholderRE matches the placeholders pipeline local resolves: {{$}}
// (the executor input), inputs and outputs, and the pipeline's and task's
// names and ids.
var placeholderRE = regexp.MustCompile(`\{\{\$(?:\.(inputs|outputs)\.(parameters|artifacts)\['([^']+)'\](?:\.([a-z_]+))?|\.(pipeline_job_name|pipeline_job_uuid|pipeline_task_name|pipeline_task_uuid))?\}\}`)

// command returns the task's command line: the local binary (the image's
// command under a Runtime), then the rest of the image's command and the
// args, placeholders resolved.
func (rv *resolved) command(t *task, pipeline, runID string) ([]string, error) {
	cmd := append([]string(nil), t.container.Command...)
	if len(cmd) == 0 {
		return nil, errors.New("executor has no command (image entrypoints are not known locally)")
	}
	if !strings.HasPrefix(cmd[0], ImageBinDir) {
		return nil, fmt.Errorf("command %q: pipeline local runs commands under %s only", cmd[0], ImageBinDir)
	}
	if t.binary != "" {
		cmd[0] = t.binary
	}
	argv := append(cmd, t.container.Args...)
	for i := range argv {
		// What is left after the known placeholders is not resolved here
		// (checked before resolving: a value may hold "{{$").
		if strings.Contains(placeholderRE.ReplaceAllString(argv[i], ""), "{{$") {
			return nil, fmt.Errorf("argument %q: placeholder not supported locally", argv[i])
		}
		var perr error
		s := placeholderRE.ReplaceAllStringFunc(argv[i], func(ph string) string {
			m := placeholderRE.FindStringSubmatch(ph)
			v, err := rv.placeholder(m, t, pipeline, runID)
			if err != nil && perr == nil {
				perr = err
			}
			return v
		})
		if perr != nil {
			return nil, perr
		}
		argv[i] = s
	}
	return argv, nil
}

func (rv *resolved) placeholder(m []string, t *task, pipeline, runID string) (string, error) {
	task := t.name
	if m[0] == executor.Placeholder {
		return rv.executorInput(t)
	}
	switch m[5] {
	case "pipeline_job_name":
		return pipeline, nil
	case "pipeline_job_uuid":
		return runID, nil
	case "pipeline_task_name":
		return task, nil
	case "pipeline_task_uuid":
		return runID + "/" + task, nil
	}
	dir, kind, name, attr := m[1], m[2], m[3], m[4]
	switch {
	case dir == "inputs" && kind == "parameters" && attr == "":
		v, ok := rv.params[name]
		if !ok {
			return "", fmt.Errorf("input parameter %s has no value", name)
		}
		return paramString(v), nil
	case dir == "inputs" && kind == "artifacts" && (attr == "path" || attr == "uri"):
		p, ok := rv.artifacts[name]
		if !ok {
			return "", fmt.Errorf("input artifact %s has no value", name)
		}
		if attr == "uri" {
			return artifactURI(p), nil
		}
		return p, nil
	case dir == "outputs" && kind == "artifacts" && (attr == "path" || attr == "uri"):
		p, ok := rv.outArtifacts[name]
		if !ok {
			return "", fmt.Errorf("output artifact %s is not declared", name)
		}
		if attr == "uri" {
			return artifactURI(p), nil
		}
		return p, nil
	case dir == "outputs" && kind == "parameters" && attr == "output_file":
		p, ok := rv.outParams[name]
		if !ok {
			return "", fmt.Errorf("output parameter %s is not declared", name)
		}
		return p, nil
	}
	return "", fmt.Errorf("placeholder %s not supported locally", m[0])
}

// exec runs one task (run), its output streamed with a "[task] " prefix
// and kept in DIR/task.log.
func (r *runner) exec(ctx context.Context, t *task, run func(context.Context, io.Writer) error, dir string) (code int, tail []string, logPath string, err error) {
	logPath = filepath.Join(dir, "task.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return -1, nil, logPath, err
	}
	defer logFile.Close()
	pw := newPrefixWriter(r.o.Out, "["+t.name+"] ", r.o.TailLines)
	err = run(ctx, io.MultiWriter(logFile, pw))
	pw.Flush()
	tail = pw.Tail()
	if err == nil {
		return 0, tail, logPath, nil
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ctx.Err() != nil {
			return ee.code, tail, logPath, fmt.Errorf("interrupted: %w", ctx.Err())
		}
		return ee.code, tail, logPath, errExit
	}
	if ctx.Err() != nil {
		return -1, tail, logPath, fmt.Errorf("interrupted: %w", ctx.Err())
	}
	return -1, tail, logPath, err
}

// exitError is a task that exited with a non-zero code.
type exitError struct{ code int }

func (e *exitError) Error() string { return fmt.Sprintf("exit %d", e.code) }

// process runs a task's local binary.
func (r *runner) process(ctx context.Context, argv, env []string, w io.Writer) error {
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = w, w
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	// On cancel (Ctrl-C), stop the task's whole process group with SIGTERM,
	// as Kubernetes stops a pod (background children of a shell ignore
	// SIGINT), then kill it after a grace period.
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM) }
	cmd.WaitDelay = 10 * time.Second
	err := cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) && ee.ExitCode() >= 0 {
		return &exitError{ee.ExitCode()}
	}
	return err
}
