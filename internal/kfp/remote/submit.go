package remote

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/go-openapi/runtime"
	httptransport "github.com/go-openapi/runtime/client"
	"github.com/go-openapi/strfmt"
	"github.com/kfllm/kfllm/internal/kfp"
	"github.com/kubeflow/pipelines/backend/api/v2beta1/go_http_client/experiment_client/experiment_service"
	"github.com/kubeflow/pipelines/backend/api/v2beta1/go_http_client/experiment_model"
	"github.com/kubeflow/pipelines/backend/api/v2beta1/go_http_client/pipeline_client/pipeline_service"
	"github.com/kubeflow/pipelines/backend/api/v2beta1/go_http_client/pipeline_upload_client/pipeline_upload_service"
	"github.com/kubeflow/pipelines/backend/api/v2beta1/go_http_client/run_client/run_service"
	"github.com/kubeflow/pipelines/backend/api/v2beta1/go_http_client/run_model"
)

// Options configure a submission.
type Options struct {
	// Host is the KFP API endpoint: http://localhost:8888 for a port-forward
	// of ml-pipeline-ui, or https://KUBEFLOW/pipeline behind the gateway.
	Host string
	// UIURL is where run links point (default: derived from Host).
	UIURL string
	// Namespace is the profile namespace of the experiment and run.
	Namespace string
	// Experiment is found by name or created (default "kfllm").
	Experiment string
	// PipelineNamespace makes the uploaded pipeline private to a namespace;
	// empty uploads a shared pipeline, as the KFP SDK does by default.
	PipelineNamespace string
	// PipelineName defaults to the pipeline's own name.
	PipelineName string
	// VersionName defaults to PIPELINE-SHA12 of the YAML, so that submitting
	// the same YAML twice reuses its version.
	VersionName string
	// RunName defaults to "PIPELINE YYYY-MM-DD HH:MM:SS" (UTC).
	RunName string
	// Params are run parameters, parsed by the types the pipeline declares.
	Params map[string]string
	// Wait polls the run until it ends.
	Wait         bool
	PollInterval time.Duration // default 10s
	Auth         Auth
	// Out receives progress and the run's URL (os.Stdout when nil).
	Out io.Writer
	// HTTPClient is the base client (its Transport gets the credentials).
	HTTPClient *http.Client
	Now        func() time.Time
}

// Result names what was created.
type Result struct {
	PipelineID, VersionID, ExperimentID, RunID string
	URL                                        string
	// State is the run's last known state (e.g. PENDING, SUCCEEDED).
	State string
}

// RunFailedError is a run that ended in FAILED or CANCELED.
type RunFailedError struct {
	RunID, State, Message, URL string
}

func (e *RunFailedError) Error() string {
	s := fmt.Sprintf("run %s ended %s", e.RunID, e.State)
	if e.Message != "" {
		s += ": " + e.Message
	}
	return s + " (" + e.URL + ")"
}

// SubmitFile reads a compiled pipeline YAML and submits it; see [Submit].
func SubmitFile(ctx context.Context, path string, o Options) (*Result, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read pipeline: %w", err)
	}
	return Submit(ctx, b, o)
}

// Submit uploads the pipeline YAML (a new version when a pipeline of that
// name exists), finds or creates the experiment, creates the run with the
// parameters and prints its URL. With Wait it then polls until the run ends
// and returns a *RunFailedError when it did not succeed.
func Submit(ctx context.Context, pipelineYAML []byte, o Options) (*Result, error) {
	c, err := kfp.Unmarshal(pipelineYAML)
	if err != nil {
		return nil, fmt.Errorf("read pipeline: %w", err)
	}
	params, err := runParams(c, o.Params)
	if err != nil {
		return nil, err
	}
	if err := o.defaults(c, pipelineYAML); err != nil {
		return nil, err
	}
	cl, err := newClient(o)
	if err != nil {
		return nil, err
	}
	res := &Result{}
	if res.PipelineID, res.VersionID, err = cl.pipeline(ctx, o, pipelineYAML); err != nil {
		return nil, err
	}
	if res.ExperimentID, err = cl.experiment(ctx, o); err != nil {
		return nil, err
	}
	run, err := cl.runs.CreateRun(run_service.NewCreateRunParamsWithContext(ctx).WithBody(&run_model.V2beta1Run{
		DisplayName:  o.RunName,
		ExperimentID: res.ExperimentID,
		PipelineVersionReference: &run_model.V2beta1PipelineVersionReference{
			PipelineID: res.PipelineID, PipelineVersionID: res.VersionID,
		},
		RuntimeConfig: &run_model.V2beta1RuntimeConfig{Parameters: params},
	}), nil)
	if err != nil {
		return nil, apiError("create run", err)
	}
	res.RunID, res.State = run.Payload.RunID, string(run.Payload.State)
	res.URL = runURL(o, res.RunID)
	fmt.Fprintf(o.Out, "run %q created: %s\n", o.RunName, res.URL)
	if !o.Wait {
		return res, nil
	}
	return res, cl.wait(ctx, o, res)
}

func (o *Options) defaults(c *kfp.Compiled, yaml []byte) error {
	if o.Host == "" {
		return errors.New("no KFP host: set --host (or KFP_HOST)")
	}
	if o.Out == nil {
		o.Out = os.Stdout
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.PollInterval <= 0 {
		o.PollInterval = 10 * time.Second
	}
	if o.Experiment == "" {
		o.Experiment = "kfllm"
	}
	if o.PipelineName == "" {
		o.PipelineName = c.Spec.GetPipelineInfo().GetName()
	}
	if o.VersionName == "" {
		sum := sha256.Sum256(yaml)
		o.VersionName = o.PipelineName + "-" + hex.EncodeToString(sum[:])[:12]
	}
	if o.RunName == "" {
		o.RunName = o.PipelineName + " " + o.Now().UTC().Format("2006-01-02 15:04:05")
	}
	return nil
}

// runParams parses --param values by the declared types; the server fills
// in the defaults of the others.
func runParams(c *kfp.Compiled, raw map[string]string) (map[string]any, error) {
	defs := c.Spec.GetRoot().GetInputDefinitions().GetParameters()
	out := map[string]any{}
	for name, s := range raw {
		d, ok := defs[name]
		if !ok {
			known := make([]string, 0, len(defs))
			for n := range defs {
				known = append(known, n)
			}
			sort.Strings(known)
			return nil, fmt.Errorf("--param %s: the pipeline has no such parameter (it has %s)", name, strings.Join(known, ", "))
		}
		v, err := kfp.ParseParam(s, d.ParameterType)
		if err != nil {
			return nil, fmt.Errorf("--param %s: %w", name, err)
		}
		out[name] = v.AsInterface()
	}
	for name, d := range defs {
		if _, ok := out[name]; !ok && d.DefaultValue == nil && !d.IsOptional {
			return nil, fmt.Errorf("pipeline parameter %s has no default: set it with --param %s=VALUE", name, name)
		}
	}
	return out, nil
}

// client holds the generated v2beta1 service clients.
type client struct {
	upload      *pipeline_upload_service.Client
	pipelines   *pipeline_service.Client
	experiments *experiment_service.Client
	runs        *run_service.Client
}

func newClient(o Options) (*client, error) {
	u, err := url.Parse(o.Host)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return nil, fmt.Errorf("KFP host %q: want http(s)://HOST[:PORT][/PATH]", o.Host)
	}
	base := o.HTTPClient
	if base == nil {
		base = &http.Client{Timeout: 2 * time.Minute}
	}
	hc := *base
	rt := hc.Transport
	if rt == nil {
		rt = http.DefaultTransport
	}
	hc.Transport = &transport{base: rt, auth: o.Auth}
	// A login redirect (Dex, oauth2-proxy) means missing or expired
	// credentials: report it instead of following it to an HTML page.
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	basePath := strings.TrimSuffix(u.Path, "/")
	if basePath == "" {
		basePath = "/"
	}
	tr := httptransport.NewWithClient(u.Host, basePath, []string{u.Scheme}, &hc)
	return &client{
		upload:      pipeline_upload_service.New(tr, strfmt.Default),
		pipelines:   pipeline_service.New(tr, strfmt.Default),
		experiments: experiment_service.New(tr, strfmt.Default),
		runs:        run_service.New(tr, strfmt.Default),
	}, nil
}

// nameFilter is a v2beta1 filter on display_name, as the KFP SDK writes it.
func nameFilter(name string) *string {
	b, _ := json.Marshal(map[string]any{"predicates": []map[string]any{{
		"operation": "EQUALS", "key": "display_name", "stringValue": name,
	}}})
	s := string(b)
	return &s
}

// pipeline returns the pipeline and version to run: the version named
// o.VersionName if it exists, else a new upload.
func (c *client) pipeline(ctx context.Context, o Options, yaml []byte) (pipelineID, versionID string, err error) {
	lp := pipeline_service.NewListPipelinesParamsWithContext(ctx).WithFilter(nameFilter(o.PipelineName))
	if o.PipelineNamespace != "" {
		lp.SetNamespace(&o.PipelineNamespace)
	}
	list, err := c.pipelines.ListPipelines(lp, nil)
	if err != nil {
		return "", "", apiError("list pipelines", err)
	}
	file := func() runtime.NamedReadCloser {
		return runtime.NamedReader(o.PipelineName+".yaml", bytes.NewReader(yaml))
	}
	if len(list.Payload.Pipelines) == 0 {
		up := pipeline_upload_service.NewUploadPipelineParamsWithContext(ctx).WithName(&o.PipelineName).WithUploadfile(file())
		if o.PipelineNamespace != "" {
			up.SetNamespace(&o.PipelineNamespace)
		}
		p, err := c.upload.UploadPipeline(up, nil)
		if err != nil {
			return "", "", apiError("upload pipeline", err)
		}
		pipelineID = p.Payload.PipelineID
		fmt.Fprintf(o.Out, "pipeline %s uploaded (%s)\n", o.PipelineName, pipelineID)
		// The upload created the pipeline's first version; run that one.
		vs, err := c.pipelines.ListPipelineVersions(pipeline_service.NewListPipelineVersionsParamsWithContext(ctx).WithPipelineID(pipelineID), nil)
		if err != nil {
			return "", "", apiError("list pipeline versions", err)
		}
		if len(vs.Payload.PipelineVersions) == 0 {
			return "", "", fmt.Errorf("pipeline %s uploaded but has no version", pipelineID)
		}
		return pipelineID, vs.Payload.PipelineVersions[0].PipelineVersionID, nil
	}
	if len(list.Payload.Pipelines) > 1 {
		return "", "", fmt.Errorf("%d pipelines are named %s: set --pipeline-name", len(list.Payload.Pipelines), o.PipelineName)
	}
	pipelineID = list.Payload.Pipelines[0].PipelineID
	vs, err := c.pipelines.ListPipelineVersions(pipeline_service.NewListPipelineVersionsParamsWithContext(ctx).
		WithPipelineID(pipelineID).WithFilter(nameFilter(o.VersionName)), nil)
	if err != nil {
		return "", "", apiError("list pipeline versions", err)
	}
	if len(vs.Payload.PipelineVersions) > 0 {
		fmt.Fprintf(o.Out, "pipeline %s version %s exists\n", o.PipelineName, o.VersionName)
		return pipelineID, vs.Payload.PipelineVersions[0].PipelineVersionID, nil
	}
	v, err := c.upload.UploadPipelineVersion(pipeline_upload_service.NewUploadPipelineVersionParamsWithContext(ctx).
		WithPipelineid(&pipelineID).WithName(&o.VersionName).WithUploadfile(file()), nil)
	if err != nil {
		return "", "", apiError("upload pipeline version", err)
	}
	fmt.Fprintf(o.Out, "pipeline %s: version %s uploaded\n", o.PipelineName, o.VersionName)
	return pipelineID, v.Payload.PipelineVersionID, nil
}

// experiment finds the experiment by name in the namespace or creates it.
func (c *client) experiment(ctx context.Context, o Options) (string, error) {
	le := experiment_service.NewListExperimentsParamsWithContext(ctx).WithFilter(nameFilter(o.Experiment))
	if o.Namespace != "" {
		le.SetNamespace(&o.Namespace)
	}
	list, err := c.experiments.ListExperiments(le)
	if err != nil {
		return "", apiError("list experiments", err)
	}
	if len(list.Payload.Experiments) > 0 {
		return list.Payload.Experiments[0].ExperimentID, nil
	}
	e, err := c.experiments.CreateExperiment(experiment_service.NewCreateExperimentParamsWithContext(ctx).
		WithBody(&experiment_model.V2beta1Experiment{DisplayName: o.Experiment, Namespace: o.Namespace}))
	if err != nil {
		return "", apiError("create experiment", err)
	}
	fmt.Fprintf(o.Out, "experiment %s created\n", o.Experiment)
	return e.Payload.ExperimentID, nil
}

// wait polls the run until it reaches a final state.
func (c *client) wait(ctx context.Context, o Options, res *Result) error {
	last := ""
	tick := time.NewTicker(o.PollInterval)
	defer tick.Stop()
	for {
		r, err := c.runs.GetRun(run_service.NewGetRunParamsWithContext(ctx).WithRunID(res.RunID), nil)
		if err != nil {
			return apiError("get run", err)
		}
		state := string(r.Payload.State)
		res.State = state
		if state != last {
			fmt.Fprintf(o.Out, "run %s: %s\n", res.RunID, state)
			last = state
		}
		switch r.Payload.State {
		case run_model.V2beta1RuntimeStateSUCCEEDED, run_model.V2beta1RuntimeStateSKIPPED:
			return nil
		case run_model.V2beta1RuntimeStateFAILED, run_model.V2beta1RuntimeStateCANCELED:
			msg := ""
			if r.Payload.Error != nil {
				msg = r.Payload.Error.Message
			}
			return &RunFailedError{RunID: res.RunID, State: state, Message: msg, URL: res.URL}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for run %s: %w", res.RunID, ctx.Err())
		case <-tick.C:
		}
	}
}

// runURL is the run's page in the KFP UI. Behind the Kubeflow gateway
// (a host ending in /pipeline) it is the central dashboard's embedded page.
func runURL(o Options, runID string) string {
	ui := strings.TrimSuffix(o.UIURL, "/")
	if ui == "" {
		h := strings.TrimSuffix(o.Host, "/")
		if base, ok := strings.CutSuffix(h, "/pipeline"); ok {
			q := ""
			if o.Namespace != "" {
				q = "?ns=" + url.QueryEscape(o.Namespace)
			}
			return base + "/_/pipeline/" + q + "#/runs/details/" + runID
		}
		ui = h
	}
	return ui + "/#/runs/details/" + runID
}

// apiError wraps an API failure with the operation and, for the statuses a
// missing login gives, what to check.
func apiError(op string, err error) error {
	code := 0
	var coder interface{ Code() int }
	var apiErr *runtime.APIError
	switch {
	case errors.As(err, &apiErr):
		code = apiErr.Code
	case errors.As(err, &coder):
		code = coder.Code()
	}
	switch {
	case code == http.StatusUnauthorized || code == http.StatusForbidden:
		return fmt.Errorf("%s: %w (HTTP %d: check --token / KF_PIPELINES_TOKEN or --session-cookie, and that the user may use the namespace)", op, err, code)
	case code >= 300 && code < 400:
		return fmt.Errorf("%s: %w (HTTP %d: redirected to a login page; pass --token or --session-cookie)", op, err, code)
	}
	return fmt.Errorf("%s: %w", op, err)
}
