package distjob

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kfllm/kfllm/internal/tokenizer"
)

// The cluster tests run a real etcd and kube-apiserver on loopback
// (scripts/kubebins.sh fetches and builds them into ~/.cache/kfllm/kube;
// KFLLM_ETCD and KFLLM_KUBE_APISERVER point elsewhere), install the
// operators' CRDs from their Go modules, apply manifests/pipeline-runner,
// and run the finetune launcher as default-editor. The test then plays the
// operator: it reads the job the launcher created, runs its replicas'
// commands as local processes with the variables the operator sets, and
// writes the job's status. Without the binaries they skip; `make
// cluster-test` runs them.

const testNamespace = "kubeflow-user-example-com" // manifests/pipeline-runner's

func kubeBins(t *testing.T) (etcd, apiserver string) {
	t.Helper()
	home, _ := os.UserHomeDir()
	dir := filepath.Join(home, ".cache", "kfllm", "kube")
	etcd, apiserver = os.Getenv("KFLLM_ETCD"), os.Getenv("KFLLM_KUBE_APISERVER")
	if etcd == "" {
		etcd = filepath.Join(dir, "etcd")
	}
	if apiserver == "" {
		apiserver = filepath.Join(dir, "kube-apiserver")
	}
	for _, b := range []string{etcd, apiserver} {
		if _, err := os.Stat(b); err != nil {
			t.Skipf("%s absent (scripts/kubebins.sh, or make cluster-test): %v", b, err)
		}
	}
	return etcd, apiserver
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// cluster is an API server on loopback with an admin client.
type cluster struct {
	admin    *Client
	server   string
	caFile   string
	saTokens map[string]string // service account -> token
}

// startCluster starts etcd and kube-apiserver (static tokens, RBAC) and
// waits until the API server is ready.
func startCluster(t *testing.T) *cluster {
	etcdBin, apiBin := kubeBins(t)
	dir := t.TempDir()
	logs := func(name string) *os.File {
		f, err := os.Create(filepath.Join(dir, name+".log"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			f.Close()
			if t.Failed() {
				b, _ := os.ReadFile(f.Name())
				if len(b) > 4000 {
					b = b[len(b)-4000:]
				}
				t.Logf("%s log tail:\n%s", name, b)
			}
		})
		return f
	}
	start := func(name string, args ...string) {
		cmd := exec.Command(args[0], args[1:]...)
		cmd.Stdout, cmd.Stderr = logs(name), logs(name+".err")
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := cmd.Start(); err != nil {
			t.Fatalf("start %s: %v", name, err)
		}
		t.Cleanup(func() {
			syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
			done := make(chan struct{})
			go func() { cmd.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
				<-done
			}
		})
	}
	client, peer := freePort(t), freePort(t)
	start("etcd", etcdBin, "--data-dir", filepath.Join(dir, "etcd"), "--name", "default",
		"--listen-client-urls", fmt.Sprintf("http://127.0.0.1:%d", client),
		"--advertise-client-urls", fmt.Sprintf("http://127.0.0.1:%d", client),
		"--listen-peer-urls", fmt.Sprintf("http://127.0.0.1:%d", peer),
		"--initial-advertise-peer-urls", fmt.Sprintf("http://127.0.0.1:%d", peer),
		"--initial-cluster", fmt.Sprintf("default=http://127.0.0.1:%d", peer))

	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	saKey := write("sa.key", pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}))
	saPub := write("sa.pub", pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}))
	c := &cluster{saTokens: map[string]string{}}
	tokens := "admin-token,admin,1,system:masters\n"
	for i, sa := range []string{"default-editor", "pipeline-runner", "nobody"} {
		tok := fmt.Sprintf("%s-token-%d", sa, i)
		c.saTokens[sa] = tok
		tokens += fmt.Sprintf("%s,system:serviceaccount:%s:%s,sa-%d,\"system:serviceaccounts,system:serviceaccounts:%s,system:authenticated\"\n", tok, testNamespace, sa, i, testNamespace)
	}
	tokenFile := write("tokens.csv", []byte(tokens))
	port := freePort(t)
	certs := filepath.Join(dir, "certs")
	start("kube-apiserver", apiBin,
		"--etcd-servers", fmt.Sprintf("http://127.0.0.1:%d", client),
		"--bind-address", "127.0.0.1", "--advertise-address", "127.0.0.1", "--secure-port", strconv.Itoa(port),
		"--cert-dir", certs, "--token-auth-file", tokenFile, "--authorization-mode", "RBAC",
		"--service-account-issuer", "https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file", saPub, "--service-account-signing-key-file", saKey,
		"--service-cluster-ip-range", "10.0.0.0/24", "--enable-priority-and-fairness=false")
	c.server = fmt.Sprintf("https://127.0.0.1:%d", port)
	c.caFile = filepath.Join(certs, "apiserver.crt")
	adminTok := write("admin.token", []byte("admin-token"))
	deadline := time.Now().Add(3 * time.Minute)
	for {
		if _, err := os.Stat(c.caFile); err == nil {
			if c.admin == nil {
				if c.admin, err = NewClient(c.server, adminTok, c.caFile); err != nil {
					t.Fatal(err)
				}
			}
			if err := c.admin.do(context.Background(), "readyz", http.MethodGet, "/readyz", nil, nil); err == nil {
				break
			} else if time.Now().After(deadline) {
				t.Fatalf("kube-apiserver not ready after 3m: %v", err)
			}
		} else if time.Now().After(deadline) {
			t.Fatalf("kube-apiserver wrote no certificate in 3m")
		}
		time.Sleep(500 * time.Millisecond)
	}
	return c
}

// raw sends a YAML or JSON body as is.
func (c *Client) raw(ctx context.Context, method, path, contentType string, body []byte) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.Server+path, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	tok, err := os.ReadFile(c.TokenFile)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+string(tok))
	req.Header.Set("Content-Type", contentType)
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		return nil, fmt.Errorf("%s %s: %d: %s", method, path, resp.StatusCode, b)
	}
	return b, nil
}

// moduleFile is a file of a module in the module cache, downloaded if need
// be (the operators' CRDs: manifests/validate depends on the same versions).
func moduleFile(t *testing.T, mod, rel string) []byte {
	t.Helper()
	out, err := exec.Command("go", "mod", "download", "-json", mod).Output()
	if err != nil {
		t.Fatalf("go mod download %s: %v", mod, err)
	}
	var m struct{ Dir string }
	if err := json.Unmarshal(out, &m); err != nil || m.Dir == "" {
		t.Fatalf("go mod download %s: %s", mod, out)
	}
	b, err := os.ReadFile(filepath.Join(m.Dir, rel))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func repoRoot(t *testing.T) string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// setup installs the CRDs, the namespace, the service accounts, the
// pipeline-runner Role and RoleBinding, the trainjob-runtime TrainingRuntime,
// and the launcher's pod mounting claim at mount; it returns the pod's UID.
func (c *cluster) setup(t *testing.T, podName, claim, mount string) string {
	ctx := context.Background()
	yaml := "application/yaml"
	must := func(b []byte, err error) []byte {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	for _, crd := range [][]byte{
		moduleFile(t, "github.com/kubeflow/training-operator@v1.9.3", "manifests/base/crds/kubeflow.org_pytorchjobs.yaml"),
		moduleFile(t, "github.com/kubeflow/trainer/v2@v2.0.0", "manifests/base/crds/trainer.kubeflow.org_trainjobs.yaml"),
		moduleFile(t, "github.com/kubeflow/trainer/v2@v2.0.0", "manifests/base/crds/trainer.kubeflow.org_trainingruntimes.yaml"),
	} {
		must(c.admin.raw(ctx, http.MethodPost, "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", yaml, crd))
	}
	must(c.admin.raw(ctx, http.MethodPost, "/api/v1/namespaces", yaml, []byte("apiVersion: v1\nkind: Namespace\nmetadata: {name: "+testNamespace+"}\n")))
	for _, sa := range []string{"default-editor", "pipeline-runner", "nobody"} {
		must(c.admin.raw(ctx, http.MethodPost, "/api/v1/namespaces/"+testNamespace+"/serviceaccounts", yaml, []byte("apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: "+sa+"}\n")))
	}
	for f, res := range map[string]string{"role.yaml": "roles", "rolebinding.yaml": "rolebindings"} {
		b, err := os.ReadFile(filepath.Join(repoRoot(t), "manifests", "pipeline-runner", f))
		if err != nil {
			t.Fatal(err)
		}
		must(c.admin.raw(ctx, http.MethodPost, "/apis/rbac.authorization.k8s.io/v1/namespaces/"+testNamespace+"/"+res, yaml, b))
	}
	pod := map[string]any{"apiVersion": "v1", "kind": "Pod", "metadata": map[string]any{"name": podName},
		"spec": map[string]any{
			"serviceAccountName": "default-editor",
			"containers": []any{map[string]any{"name": "main", "image": "ghcr.io/kfllm/kfllm-finetune:dev",
				"volumeMounts": []any{map[string]any{"name": "ckpt", "mountPath": mount}}}},
			"volumes": []any{map[string]any{"name": "ckpt", "persistentVolumeClaim": map[string]any{"claimName": claim}}},
		}}
	b, _ := json.Marshal(pod)
	var created struct{ Metadata struct{ UID string } }
	if err := json.Unmarshal(must(c.admin.raw(ctx, http.MethodPost, "/api/v1/namespaces/"+testNamespace+"/pods", "application/json", b)), &created); err != nil {
		t.Fatal(err)
	}
	// CRDs take a moment to be served.
	for i := 0; ; i++ {
		_, err1 := c.admin.raw(ctx, http.MethodGet, "/apis/kubeflow.org/v1/namespaces/"+testNamespace+"/pytorchjobs", yaml, nil)
		_, err2 := c.admin.raw(ctx, http.MethodGet, "/apis/trainer.kubeflow.org/v1alpha1/namespaces/"+testNamespace+"/trainjobs", yaml, nil)
		if err1 == nil && err2 == nil {
			break
		}
		if i > 100 {
			t.Fatalf("CRDs not served: %v %v", err1, err2)
		}
		time.Sleep(200 * time.Millisecond)
	}
	// The TrainingRuntime the TrainJobs run on, as the CRD's schema takes it.
	rt, err := os.ReadFile(filepath.Join(repoRoot(t), "manifests", "trainjob-runtime", "trainingruntime.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; ; i++ {
		_, err := c.admin.raw(ctx, http.MethodPost, "/apis/trainer.kubeflow.org/v1alpha1/namespaces/"+testNamespace+"/trainingruntimes?fieldValidation=Strict", yaml, rt)
		if err == nil {
			break
		}
		if i > 100 || !strings.Contains(err.Error(), ": 404: ") {
			t.Fatalf("create the TrainingRuntime: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	return created.Metadata.UID
}

// saDir writes a service-account directory (token, ca.crt, namespace) for sa.
func (c *cluster) saDir(t *testing.T, sa string) string {
	dir := t.TempDir()
	ca, err := os.ReadFile(c.caFile)
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string]string{"token": c.saTokens[sa], "ca.crt": string(ca), "namespace": testNamespace} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// operator plays the training operator or Kubeflow Trainer for the one job
// the launcher creates: it waits for the job, runs each replica's command
// with the variables the operator gives the pod, and writes the outcome
// into the job's status.
type operator struct {
	c       *cluster
	rt      Runtime
	run     bool   // false: leave the job pending
	fail    string // with run: mark the job Failed with this message instead
	owner   string // the launcher's pod, which owns the job to run
	logs    io.Writer
	mu      sync.Mutex
	job     map[string]any
	created chan struct{}
}

type rankProc struct {
	command []string
	env     []string
}

func (o *operator) list(ctx context.Context) (map[string]any, error) {
	g, v, _, plural := o.rt.api()
	b, err := o.c.admin.raw(ctx, http.MethodGet, "/apis/"+g+"/"+v+"/namespaces/"+testNamespace+"/"+plural, "application/json", nil)
	if err != nil {
		return nil, err
	}
	var l struct{ Items []map[string]any }
	if err := json.Unmarshal(b, &l); err != nil {
		return nil, err
	}
	for _, it := range l.Items {
		refs, _ := get(it, "metadata", "ownerReferences").([]any)
		if len(refs) == 1 && get(refs[0], "name") == o.owner {
			return it, nil
		}
	}
	return nil, nil
}

func get(m any, path ...string) any {
	for _, p := range path {
		mm, ok := m.(map[string]any)
		if !ok {
			return nil
		}
		m = mm[p]
	}
	return m
}

func strList(v any) []string {
	var out []string
	for _, x := range v.([]any) {
		out = append(out, x.(string))
	}
	return out
}

// plainEnv is a container's env without secret references (no secret
// exists here; the operator's pods would get them optional).
func plainEnv(v any) []string {
	var out []string
	l, _ := v.([]any)
	for _, e := range l {
		e := e.(map[string]any)
		if val, ok := e["value"].(string); ok {
			out = append(out, e["name"].(string)+"="+val)
		}
	}
	return out
}

// ranks are the processes the job's pods would run, rank 0 first, with
// the variables the operator sets: the training operator's setPodEnv
// (WORLD_SIZE = replicas, RANK 0 for the Master and 1+i for Worker i,
// MASTER_ADDR, MASTER_PORT, PET_NNODES, PET_NODE_RANK,
// PYTHONUNBUFFERED), Kubeflow Trainer's torch plugin (PET_NNODES,
// PET_NPROC_PER_NODE, PET_NODE_RANK from the completion index,
// PET_MASTER_ADDR, PET_MASTER_PORT). The master address is loopback in
// place of the service name, the port a free one in place of 23456/29400.
func (o *operator) ranks(t *testing.T, job map[string]any) []rankProc {
	port := strconv.Itoa(freePort(t))
	var out []rankProc
	if o.rt == PyTorchJob {
		specs := get(job, "spec", "pytorchReplicaSpecs").(map[string]any)
		world := 0
		for _, r := range specs {
			world += int(get(r, "replicas").(float64))
		}
		for _, rt := range []string{"Master", "Worker"} {
			r := specs[rt]
			n := int(get(r, "replicas").(float64))
			c := get(r, "template", "spec", "containers").([]any)[0]
			for i := 0; i < n; i++ {
				rank := i
				if rt == "Worker" {
					rank = i + 1
				}
				env := append(plainEnv(get(c, "env")), "PYTHONUNBUFFERED=1", "MASTER_ADDR=127.0.0.1", "MASTER_PORT="+port,
					"WORLD_SIZE="+strconv.Itoa(world), "RANK="+strconv.Itoa(rank), "PET_NODE_RANK="+strconv.Itoa(rank), "PET_NNODES="+strconv.Itoa(world))
				out = append(out, rankProc{append(strList(get(c, "command")), strList(get(c, "args"))...), env})
			}
		}
		return out
	}
	tr := get(job, "spec", "trainer")
	n := int(get(tr, "numNodes").(float64))
	for i := 0; i < n; i++ {
		env := append(plainEnv(get(tr, "env")), "PET_NNODES="+strconv.Itoa(n), "PET_NPROC_PER_NODE=1",
			"PET_NODE_RANK="+strconv.Itoa(i), "PET_MASTER_ADDR=127.0.0.1", "PET_MASTER_PORT="+port)
		out = append(out, rankProc{append(strList(get(tr, "command")), strList(get(tr, "args"))...), env})
	}
	return out
}

// setCondition writes the job's status with one more true condition.
func (o *operator) setCondition(ctx context.Context, job map[string]any, typ, reason, msg string) (map[string]any, error) {
	now := time.Now().UTC().Format(time.RFC3339)
	cond := map[string]any{"type": typ, "status": "True", "reason": reason, "message": msg, "lastTransitionTime": now}
	if o.rt == PyTorchJob {
		cond["lastUpdateTime"] = now
	}
	st, _ := job["status"].(map[string]any)
	if st == nil {
		st = map[string]any{}
	}
	conds, _ := st["conditions"].([]any)
	for _, c := range conds {
		c.(map[string]any)["status"] = "False"
	}
	st["conditions"] = append(conds, cond)
	if o.rt == PyTorchJob && st["replicaStatuses"] == nil {
		st["replicaStatuses"] = map[string]any{}
	}
	job["status"] = st
	g, v, _, plural := o.rt.api()
	name := get(job, "metadata", "name").(string)
	b, _ := json.Marshal(job)
	out, err := o.c.admin.raw(ctx, http.MethodPut, "/apis/"+g+"/"+v+"/namespaces/"+testNamespace+"/"+plural+"/"+name+"/status", "application/json", b)
	if err != nil {
		return nil, err
	}
	var updated map[string]any
	return updated, json.Unmarshal(out, &updated)
}

// serve waits for the job and runs it; it returns when the job is done or
// ctx ends.
func (o *operator) serve(ctx context.Context, t *testing.T) error {
	var job map[string]any
	for job == nil {
		j, err := o.list(ctx)
		if err != nil {
			return err
		}
		if j != nil {
			job = j
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	o.mu.Lock()
	o.job = job
	o.mu.Unlock()
	close(o.created)
	if !o.run {
		return nil
	}
	job, err := o.setCondition(ctx, job, "Created", "JobCreated", "created")
	if err != nil {
		return err
	}
	if o.rt == PyTorchJob {
		if job, err = o.setCondition(ctx, job, "Running", "JobRunning", "ranks running"); err != nil {
			return err
		}
	}
	if o.fail != "" {
		_, err := o.setCondition(ctx, job, "Failed", "JobFailed", o.fail)
		return err
	}
	procs := o.ranks(t, job)
	errs := make([]error, len(procs))
	var wg sync.WaitGroup
	for i, p := range procs {
		cmd := exec.CommandContext(ctx, p.command[0], p.command[1:]...)
		cmd.Env = append(scrubbedEnv(), p.env...)
		cmd.Stdout, cmd.Stderr = o.logs, o.logs
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = cmd.Run() }()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		_, serr := o.setCondition(ctx, job, "Failed", "JobFailed", "a rank failed: "+err.Error())
		return serr
	}
	success := map[Runtime]string{PyTorchJob: "Succeeded", TrainJob: "Complete"}[o.rt]
	_, err = o.setCondition(ctx, job, success, "JobSucceeded", "all ranks exited 0")
	return err
}

// scrubbedEnv is this process's environment without what a job's pod
// would not have: the launcher's Kubernetes and KFP variables.
func scrubbedEnv() []string {
	var out []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch {
		case strings.HasPrefix(k, "KUBERNETES_"), strings.HasPrefix(k, "KFP_"), k == "KFLLM_SERVICE_ACCOUNT_DIR",
			k == "WORLD_SIZE", k == "RANK", k == "MASTER_ADDR", k == "MASTER_PORT", strings.HasPrefix(k, "PET_"):
			continue
		}
		out = append(out, kv)
	}
	return out
}

// buildFinetune builds components/finetune (cgo: the libtorch flags of
// .kfllm/env must be in the environment, as make sets them).
func buildFinetune(t *testing.T) string {
	if b := os.Getenv("KFLLM_FINETUNE_BIN"); b != "" {
		return b
	}
	bin := filepath.Join(t.TempDir(), "finetune")
	cmd := exec.Command("go", "build", "-o", bin, "github.com/kfllm/kfllm/components/finetune")
	cmd.Dir = repoRoot(t)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build finetune (source .kfllm/env first): %v\n%s", err, out)
	}
	return bin
}

// shards copies internal/train's parity shards and adds a tokenizer.
func shards(t *testing.T) string {
	dir := t.TempDir()
	for _, n := range []string{"train.safetensors", "eval.safetensors"} {
		b, err := os.ReadFile(filepath.Join(repoRoot(t), "internal", "train", "testdata", "parity", "shards", n))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, n), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	tok, err := tokenizer.TrainBPE([]string{"the context says where Ada was born", "Answer the question using the context."}, 260)
	if err != nil {
		t.Fatal(err)
	}
	if err := tok.Save(filepath.Join(dir, "tokenizer")); err != nil {
		t.Fatal(err)
	}
	return dir
}

type launchRun struct {
	cmd        *exec.Cmd
	stderr     *bytes.Buffer
	out, ckpt  string
	executor   string
	metrics    string
	podName    string
	operator   *operator
	operatorCh chan error
}

// startLaunch sets the cluster up and starts `finetune --workers 2` as the
// KFP task would run it, with an operator that runs the job, or not, or
// fails it with the message fail.
func startLaunch(t *testing.T, c *cluster, rt Runtime, runJob bool, fail string, pre func()) *launchRun {
	bin := buildFinetune(t)
	kfp := t.TempDir()
	r := &launchRun{stderr: &bytes.Buffer{}, podName: "kfllm-finetune-x7k2p-system-container-impl-1",
		ckpt: filepath.Join(t.TempDir(), "kfllm", "checkpoints"), out: filepath.Join(kfp, "output_model_dir"),
		executor: filepath.Join(kfp, "executor_output.json"), metrics: filepath.Join(kfp, "metrics")}
	if err := os.MkdirAll(r.ckpt, 0o755); err != nil {
		t.Fatal(err)
	}
	uid := c.setup(t, r.podName, "run-1-kfllm-checkpoints", r.ckpt)
	if pre != nil {
		pre()
	}
	r.cmd = exec.Command(bin, "--input-dataset", shards(t),
		"--base-model", filepath.Join(repoRoot(t), "internal", "train", "testdata", "parity", "base"),
		"--output-model-dir", r.out, "--metrics-output", r.metrics, "--checkpoint-dir", r.ckpt,
		"--max-steps", "2", "--batch-size", "2", "--save-steps", "1", "--device", "cpu", "--dtype", "float32",
		"--threads", "1", "--log-every", "1",
		"--workers", "2", "--distributed-runtime", string(rt), "--worker-image", "ghcr.io/kfllm/kfllm-finetune:dev",
		"--worker-command", bin, "--worker-hf-secret", "hf-secret", "--workers-poll", "200ms",
		"--executor-input", `{"outputs":{"outputFile":"`+r.executor+`"}}`)
	port := strings.TrimPrefix(c.server, "https://127.0.0.1:")
	r.cmd.Env = append(scrubbedEnv(), "KUBERNETES_SERVICE_HOST=127.0.0.1", "KUBERNETES_SERVICE_PORT="+port,
		"KFLLM_SERVICE_ACCOUNT_DIR="+c.saDir(t, "default-editor"), "KFP_POD_NAME="+r.podName, "KFP_POD_UID="+uid)
	r.operator = &operator{c: c, rt: rt, run: runJob, fail: fail, owner: r.podName, logs: &lockedWriter{w: r.stderr}, created: make(chan struct{})}
	r.cmd.Stderr = r.operator.logs
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	r.operatorCh = make(chan error, 1)
	go func() { r.operatorCh <- r.operator.serve(ctx, t) }()
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.cmd.Process.Kill() })
	return r
}

type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func (r *launchRun) output() string {
	lw := r.operator.logs.(*lockedWriter)
	lw.mu.Lock()
	defer lw.mu.Unlock()
	return r.stderr.String()
}

// TestLaunchRunsTwoRanksThroughTheJob: the launcher, as default-editor with
// only manifests/pipeline-runner's Role, finds its claim in its pod,
// stages the inputs, creates the job (strict field validation against the
// operator's CRD); the ranks the job describes train together; the
// launcher passes rank 0's model and metrics on as its own outputs and
// cleans the staging directory, leaving the checkpoints.
func TestLaunchRunsTwoRanksThroughTheJob(t *testing.T) {
	for _, rt := range []Runtime{PyTorchJob, TrainJob} {
		t.Run(string(rt), func(t *testing.T) {
			c := startCluster(t)
			r := startLaunch(t, c, rt, true, "", nil)
			err := r.cmd.Wait()
			if oerr := <-r.operatorCh; oerr != nil {
				t.Errorf("operator: %v", oerr)
			}
			if err != nil {
				t.Fatalf("launcher: %v\n%s", err, r.output())
			}
			t.Logf("launcher and ranks:\n%s", r.output())
			for _, f := range []string{"model.safetensors", "config.json", "metrics.json"} {
				if _, err := os.Stat(filepath.Join(r.out, f)); err != nil {
					t.Errorf("output model: %v", err)
				}
			}
			var m struct {
				WorldSize int `json:"world_size"`
				Steps     int `json:"steps"`
			}
			b, err := os.ReadFile(filepath.Join(r.out, "metrics.json"))
			if err == nil {
				err = json.Unmarshal(b, &m)
			}
			if err != nil || m.WorldSize != 2 || m.Steps != 2 {
				t.Errorf("metrics.json %s (%v): want world_size 2 after 2 steps", b, err)
			}
			for _, f := range []string{r.metrics, r.executor} {
				if _, err := os.Stat(f); err != nil {
					t.Errorf("KFP output: %v", err)
				}
			}
			if e, _ := os.ReadDir(filepath.Join(r.ckpt, StagingDir)); len(e) != 0 {
				t.Errorf("staging left: %v", e)
			}
			if _, err := os.Stat(filepath.Join(r.ckpt, "checkpoint-2")); err != nil {
				t.Errorf("rank 0's checkpoint on the claim: %v", err)
			}
		})
	}
}

// TestLaunchCancelDeletesTheJob: SIGTERM (a terminated run) makes the
// launcher delete the job it created and exit 130.
func TestLaunchCancelDeletesTheJob(t *testing.T) {
	c := startCluster(t)
	r := startLaunch(t, c, PyTorchJob, false, "", nil)
	select {
	case <-r.operator.created:
	case <-time.After(2 * time.Minute):
		t.Fatalf("no job created:\n%s", r.output())
	}
	name := get(r.operator.job, "metadata", "name").(string)
	time.Sleep(500 * time.Millisecond)
	r.cmd.Process.Signal(syscall.SIGTERM)
	err := r.cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 130 {
		t.Errorf("launcher exit %v, want 130\n%s", err, r.output())
	}
	_, err = c.admin.raw(context.Background(), http.MethodGet, "/apis/kubeflow.org/v1/namespaces/"+testNamespace+"/pytorchjobs/"+name, "application/json", nil)
	if err == nil || !strings.Contains(err.Error(), "404") {
		t.Errorf("job %s after cancel: %v, want 404", name, err)
	}
	if _, err := os.Stat(r.out); err == nil {
		t.Error("a cancelled launch wrote the output model")
	}
}

// TestLaunchNeedsTheRole: a service account without the Role gets a clear
// error naming the refused call, and creates nothing.
func TestLaunchNeedsTheRole(t *testing.T) {
	c := startCluster(t)
	c.setup(t, "pod-1", "claim", "/kfllm/checkpoints")
	cl, err := NewClient(c.server, filepath.Join(c.saDir(t, "nobody"), "token"), c.caFile)
	if err != nil {
		t.Fatal(err)
	}
	s := base("/kfllm/checkpoints")
	s.Namespace = testNamespace
	err = cl.Create(context.Background(), s)
	var ae *APIError
	if !errors.As(err, &ae) || ae.Code != http.StatusForbidden {
		t.Fatalf("create as nobody: %v, want 403", err)
	}
	t.Logf("%v", err)
	ed, err := NewClient(c.server, filepath.Join(c.saDir(t, "default-editor"), "token"), c.caFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := ed.Create(context.Background(), s); err != nil {
		t.Fatalf("create as default-editor: %v", err)
	}
	if claim, _, err := ed.PodClaim(context.Background(), testNamespace, "pod-1", "/kfllm/checkpoints"); err != nil || claim != "claim" {
		t.Errorf("PodClaim = %q, %v", claim, err)
	}
}

// TestLaunchFailedJobFailsTheTask: a job that ends Failed fails the
// launcher (exit 1) with the operator's message; it writes no output and
// leaves the job for its pods' logs.
func TestLaunchFailedJobFailsTheTask(t *testing.T) {
	c := startCluster(t)
	r := startLaunch(t, c, PyTorchJob, true, "Master-0 exited with code 3", nil)
	err := r.cmd.Wait()
	if oerr := <-r.operatorCh; oerr != nil {
		t.Errorf("operator: %v", oerr)
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 || !strings.Contains(r.output(), "Master-0 exited with code 3") {
		t.Errorf("launcher exit %v, want 1 with the operator's message:\n%s", err, r.output())
	}
	if _, err := os.Stat(r.out); err == nil {
		t.Error("a failed job's launcher wrote the output model")
	}
	name := get(r.operator.job, "metadata", "name").(string)
	if _, err := c.admin.raw(context.Background(), http.MethodGet, "/apis/kubeflow.org/v1/namespaces/"+testNamespace+"/pytorchjobs/"+name, "application/json", nil); err != nil {
		t.Errorf("the failed job is gone: %v", err)
	}
}

// TestLaunchReplacesAStaleJob: a job still running on the same claim (a
// lost earlier attempt's) is deleted before the new one starts, so one job
// writes the checkpoints; a finished one is left alone.
func TestLaunchReplacesAStaleJob(t *testing.T) {
	c := startCluster(t)
	stale, done := base("/kfllm/checkpoints"), base("/kfllm/checkpoints")
	for i, s := range []*Spec{&stale, &done} {
		s.Namespace, s.Claim, s.Name = testNamespace, "run-1-kfllm-checkpoints", fmt.Sprintf("kfllm-ft-old-%d", i)
	}
	r := startLaunch(t, c, PyTorchJob, true, "", func() {
		for _, s := range []Spec{stale, done} {
			if err := c.admin.Create(context.Background(), s); err != nil {
				t.Fatal(err)
			}
		}
		o := &operator{c: c, rt: PyTorchJob}
		b, err := c.admin.raw(context.Background(), http.MethodGet, "/apis/kubeflow.org/v1/namespaces/"+testNamespace+"/pytorchjobs/"+done.Name, "application/json", nil)
		if err != nil {
			t.Fatal(err)
		}
		var job map[string]any
		if err := json.Unmarshal(b, &job); err != nil {
			t.Fatal(err)
		}
		if _, err := o.setCondition(context.Background(), job, "Succeeded", "JobSucceeded", "done"); err != nil {
			t.Fatal(err)
		}
	})
	err := r.cmd.Wait()
	if oerr := <-r.operatorCh; oerr != nil {
		t.Errorf("operator: %v", oerr)
	}
	if err != nil {
		t.Fatalf("launcher: %v\n%s", err, r.output())
	}
	if !strings.Contains(r.output(), "deleted PyTorchJob "+testNamespace+"/"+stale.Name) {
		t.Errorf("no line about the stale job:\n%s", r.output())
	}
	_, err = c.admin.raw(context.Background(), http.MethodGet, "/apis/kubeflow.org/v1/namespaces/"+testNamespace+"/pytorchjobs/"+stale.Name, "application/json", nil)
	if err == nil || !strings.Contains(err.Error(), "404") {
		t.Errorf("stale job after the launch: %v, want 404", err)
	}
	if _, err := c.admin.raw(context.Background(), http.MethodGet, "/apis/kubeflow.org/v1/namespaces/"+testNamespace+"/pytorchjobs/"+done.Name, "application/json", nil); err != nil {
		t.Errorf("the finished job was deleted: %v", err)
	}
}
