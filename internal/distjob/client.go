package distjob

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// ServiceAccountDir is where Kubernetes mounts a pod's service-account
// token, CA certificate and namespace.
const ServiceAccountDir = "/var/run/secrets/kubernetes.io/serviceaccount"

// Client creates, reads and deletes jobs through the API server's REST
// interface with a bearer token.
type Client struct {
	// Server is the API server's base URL (https://host:port).
	Server string
	// TokenFile is read on every request: bound service-account tokens
	// are rotated by the kubelet.
	TokenFile string
	// HTTP carries the requests (its TLS configuration trusts the
	// cluster's CA).
	HTTP *http.Client
}

// InCluster returns a client for the API server of the pod it runs in
// (KUBERNETES_SERVICE_HOST, KUBERNETES_SERVICE_PORT, the service-account
// files under dir, default [ServiceAccountDir]) and the pod's namespace.
func InCluster(getenv func(string) string, dir string) (*Client, string, error) {
	if dir == "" {
		dir = ServiceAccountDir
	}
	host, port := getenv("KUBERNETES_SERVICE_HOST"), getenv("KUBERNETES_SERVICE_PORT")
	if host == "" || port == "" {
		return nil, "", errors.New("kubernetes: KUBERNETES_SERVICE_HOST/PORT not set: not running in a pod")
	}
	ns, err := os.ReadFile(filepath.Join(dir, "namespace"))
	if err != nil {
		return nil, "", fmt.Errorf("kubernetes: read namespace: %w", err)
	}
	c, err := NewClient("https://"+net.JoinHostPort(host, port), filepath.Join(dir, "token"), filepath.Join(dir, "ca.crt"))
	if err != nil {
		return nil, "", err
	}
	return c, strings.TrimSpace(string(ns)), nil
}

// NewClient returns a client for server that trusts the CA certificates in
// caFile and authenticates with the token in tokenFile.
func NewClient(server, tokenFile, caFile string) (*Client, error) {
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("kubernetes: read CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("kubernetes: %s holds no PEM certificate", caFile)
	}
	if _, err := os.Stat(tokenFile); err != nil {
		return nil, fmt.Errorf("kubernetes: token: %w", err)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	return &Client{Server: strings.TrimRight(server, "/"), TokenFile: tokenFile,
		HTTP: &http.Client{Transport: tr, Timeout: time.Minute}}, nil
}

// APIError is a response from the API server other than success: its
// status code and the Status object's reason and message.
type APIError struct {
	Op      string
	Code    int
	Reason  string
	Message string
}

func (e *APIError) Error() string {
	return fmt.Sprintf("%s: %d %s: %s", e.Op, e.Code, e.Reason, e.Message)
}

// IsNotFound reports whether err is a 404 from the API server.
func IsNotFound(err error) bool {
	var ae *APIError
	return errors.As(err, &ae) && ae.Code == http.StatusNotFound
}

func (c *Client) path(r Runtime, ns, name string) string {
	g, v, _, plural := r.api()
	p := "/apis/" + g + "/" + v + "/namespaces/" + url.PathEscape(ns) + "/" + plural
	if name != "" {
		p += "/" + url.PathEscape(name)
	}
	return p
}

func (c *Client) do(ctx context.Context, op, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return fmt.Errorf("%s: encode: %w", op, err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.Server+path, rd)
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	tok, err := os.ReadFile(c.TokenFile)
	if err != nil {
		return fmt.Errorf("%s: read token: %w", op, err)
	}
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(tok)))
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return fmt.Errorf("%s: read response: %w", op, err)
	}
	if resp.StatusCode/100 != 2 {
		var st struct{ Reason, Message string }
		if json.Unmarshal(data, &st) != nil || st.Message == "" {
			st.Message = strings.TrimSpace(string(data))
			if len(st.Message) > 300 {
				st.Message = st.Message[:300] + "..."
			}
		}
		return &APIError{Op: op, Code: resp.StatusCode, Reason: st.Reason, Message: st.Message}
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("%s: decode response: %w", op, err)
		}
	}
	return nil
}

// Create creates the job s describes, with field validation Strict: the
// API server refuses a field the operator's schema does not know.
func (c *Client) Create(ctx context.Context, s Spec) error {
	o, err := s.Object()
	if err != nil {
		return err
	}
	op := fmt.Sprintf("create %s %s/%s", s.Runtime.Kind(), s.Namespace, s.Name)
	return c.do(ctx, op, http.MethodPost, c.path(s.Runtime, s.Namespace, "")+"?fieldValidation=Strict", o, nil)
}

// Get reads a job's status.
func (c *Client) Get(ctx context.Context, r Runtime, ns, name string) (Status, error) {
	var o struct {
		Status struct {
			Conditions []Condition `json:"conditions"`
		} `json:"status"`
	}
	op := fmt.Sprintf("get %s %s/%s", r.Kind(), ns, name)
	if err := c.do(ctx, op, http.MethodGet, c.path(r, ns, name), nil, &o); err != nil {
		return Status{}, err
	}
	return statusOf(r, o.Status.Conditions), nil
}

// Running lists the jobs of runtime r in ns labelled [LabelClaim] =
// ClaimLabel(claim) that have not finished.
func (c *Client) Running(ctx context.Context, r Runtime, ns, claim string) ([]string, error) {
	var l struct {
		Items []struct {
			Metadata struct {
				Name string `json:"name"`
			} `json:"metadata"`
			Status struct {
				Conditions []Condition `json:"conditions"`
			} `json:"status"`
		} `json:"items"`
	}
	op := fmt.Sprintf("list %s in %s", r.Kind(), ns)
	q := "?labelSelector=" + url.QueryEscape(LabelClaim+"="+ClaimLabel(claim))
	if err := c.do(ctx, op, http.MethodGet, c.path(r, ns, "")+q, nil, &l); err != nil {
		return nil, err
	}
	var out []string
	for _, it := range l.Items {
		if !statusOf(r, it.Status.Conditions).Done {
			out = append(out, it.Metadata.Name)
		}
	}
	return out, nil
}

// Delete deletes a job and, in the background, its pods; a job already
// gone is not an error.
func (c *Client) Delete(ctx context.Context, r Runtime, ns, name string) error {
	op := fmt.Sprintf("delete %s %s/%s", r.Kind(), ns, name)
	body := map[string]any{"apiVersion": "v1", "kind": "DeleteOptions", "propagationPolicy": "Background"}
	if err := c.do(ctx, op, http.MethodDelete, c.path(r, ns, name), body, nil); err != nil && !IsNotFound(err) {
		return err
	}
	return nil
}

// Condition is one entry of a job's status.conditions (the fields both
// operators' condition types share).
type Condition struct {
	Type    string `json:"type"`
	Status  string `json:"status"`
	Reason  string `json:"reason"`
	Message string `json:"message"`
}

// Status is where a job stands: Done when it has finished, Failed when it
// finished without success, Phase the latest true condition ("" before the
// operator's first update) and its message.
type Status struct {
	Phase   string
	Message string
	Done    bool
	Failed  bool
}

// statusOf reads the conditions: a PyTorchJob ends with Succeeded or
// Failed, a TrainJob with Complete or Failed.
func statusOf(r Runtime, conds []Condition) Status {
	var st Status
	success := "Succeeded"
	if r == TrainJob {
		success = "Complete"
	}
	for _, c := range conds {
		if c.Status != "True" {
			continue
		}
		st.Phase, st.Message = c.Type, c.Message
		switch c.Type {
		case success:
			st.Done, st.Failed = true, false
			return st
		case "Failed":
			st.Done, st.Failed = true, true
			return st
		}
	}
	return st
}

// PodClaim returns the PersistentVolumeClaim mounted at mountPath in a
// container of pod ns/name, and the pod's UID.
func (c *Client) PodClaim(ctx context.Context, ns, name, mountPath string) (claim, uid string, err error) {
	var pod struct {
		Metadata struct {
			UID string `json:"uid"`
		} `json:"metadata"`
		Spec struct {
			Containers []struct {
				VolumeMounts []struct {
					Name      string `json:"name"`
					MountPath string `json:"mountPath"`
				} `json:"volumeMounts"`
			} `json:"containers"`
			Volumes []struct {
				Name                  string `json:"name"`
				PersistentVolumeClaim *struct {
					ClaimName string `json:"claimName"`
				} `json:"persistentVolumeClaim"`
			} `json:"volumes"`
		} `json:"spec"`
	}
	op := fmt.Sprintf("get pod %s/%s", ns, name)
	if err := c.do(ctx, op, http.MethodGet, "/api/v1/namespaces/"+url.PathEscape(ns)+"/pods/"+url.PathEscape(name), nil, &pod); err != nil {
		return "", "", err
	}
	for _, ct := range pod.Spec.Containers {
		for _, m := range ct.VolumeMounts {
			if filepath.Clean(m.MountPath) != filepath.Clean(mountPath) {
				continue
			}
			for _, v := range pod.Spec.Volumes {
				if v.Name == m.Name && v.PersistentVolumeClaim != nil {
					return v.PersistentVolumeClaim.ClaimName, pod.Metadata.UID, nil
				}
			}
		}
	}
	return "", "", fmt.Errorf("%s: no PersistentVolumeClaim mounted at %s", op, mountPath)
}
