package remote

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// Auth is how requests prove who is calling.
type Auth struct {
	// Token is sent as "Authorization: Bearer TOKEN".
	Token string
	// Cookie is a session cookie, "NAME=VALUE"; a bare value is taken as
	// authservice_session (Dex with oidc-authservice).
	Cookie string
}

// DefaultCookieName is the session cookie of Kubeflow's Dex + oidc-authservice.
const DefaultCookieName = "authservice_session"

// transport adds the credentials to every request.
type transport struct {
	base http.RoundTripper
	auth Auth
}

func (t *transport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	if t.auth.Token != "" {
		r.Header.Set("Authorization", "Bearer "+t.auth.Token)
	}
	if c := t.auth.Cookie; c != "" {
		name, value, ok := strings.Cut(c, "=")
		if !ok {
			name, value = DefaultCookieName, c
		}
		r.AddCookie(&http.Cookie{Name: strings.TrimSpace(name), Value: strings.TrimSpace(value)})
	}
	// The gateway derives the user from the credentials above; never forward
	// an identity header of our own.
	r.Header.Del("kubeflow-userid")
	resp, err := t.base.RoundTrip(r)
	if err != nil || resp.StatusCode < 300 || strings.Contains(resp.Header.Get("Content-Type"), "json") {
		return resp, err
	}
	// A login redirect or a proxy's HTML error page: give the generated
	// client the JSON error body the API server would have sent, so that the
	// status survives into the error.
	msg := fmt.Sprintf("HTTP %d %s", resp.StatusCode, http.StatusText(resp.StatusCode))
	if loc, err := resp.Location(); err == nil {
		msg += " (redirect to " + loc.Scheme + "://" + loc.Host + loc.Path + ")"
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	b, _ := json.Marshal(map[string]any{"code": 16, "message": msg})
	resp.Body = io.NopCloser(bytes.NewReader(b))
	resp.ContentLength = int64(len(b))
	resp.Header = resp.Header.Clone()
	resp.Header.Set("Content-Type", "application/json")
	resp.Header.Del("Content-Length")
	return resp, nil
}
