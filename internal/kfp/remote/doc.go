// Package remote submits a compiled pipeline to a Kubeflow Pipelines API
// server through the v2beta1 REST API (KFP's own generated go_http_client):
// it uploads the pipeline, or a new version of it when the name exists,
// finds or creates the experiment, creates the run, and optionally waits for
// it to end.
//
// Authentication for a multi-user Kubeflow reached from outside the cluster:
// a bearer token (a Kubernetes service-account token that the Kubeflow
// gateway accepts) and/or a session cookie (authservice_session for Dex with
// oidc-authservice, oauth2_proxy_kubeflow for oauth2-proxy). The
// kubeflow-userid header is never set here: the gateway sets it from the
// verified identity, and a client that forges it would be impersonating.
package remote
