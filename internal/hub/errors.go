package hub

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// Sentinel errors. An *Error unwraps to the one that matches the Hub's
// X-Error-Code header, or failing that its HTTP status, so callers branch with
// errors.Is(err, hub.ErrRepoNotFound).
var (
	// ErrRepoNotFound: the repository does not exist, or it is private and the
	// token (if any) cannot see it; the Hub does not tell the two apart.
	ErrRepoNotFound = errors.New("repository not found")
	// ErrRevisionNotFound: the repository exists but the branch, tag or
	// commit does not.
	ErrRevisionNotFound = errors.New("revision not found")
	// ErrEntryNotFound: the repository and revision exist but the file does not.
	ErrEntryNotFound = errors.New("file not found")
	// ErrGatedRepo: the repository is gated and the token has not been
	// granted access.
	ErrGatedRepo = errors.New("gated repository")
	// ErrDisabledRepo: the repository has been disabled by its owner or the Hub.
	ErrDisabledRepo = errors.New("repository disabled")
	// ErrUnauthorized: HTTP 401 without a more specific code.
	ErrUnauthorized = errors.New("unauthorized")
	// ErrForbidden: HTTP 403 without a more specific code.
	ErrForbidden = errors.New("forbidden")
	// ErrNotFound: HTTP 404 without a more specific code.
	ErrNotFound = errors.New("not found")
	// ErrBadRequest: HTTP 400 without a more specific code.
	ErrBadRequest = errors.New("bad request")
	// ErrConflict: HTTP 409 (for example a branch or repository that already exists).
	ErrConflict = errors.New("conflict")
	// ErrTooManyRequests: HTTP 429 still returned after the retries ran out.
	ErrTooManyRequests = errors.New("too many requests")
	// ErrServer: HTTP 5xx still returned after the retries ran out.
	ErrServer = errors.New("server error")
)

// Error is a failed HTTP exchange with the Hub (or a host it redirected to).
// Its text never holds the token, request headers or a URL's query string
// (CDN redirects carry signatures there).
type Error struct {
	Method     string // HTTP method of the request
	URL        string // request URL without query string or user info
	StatusCode int    // HTTP status
	Code       string // X-Error-Code, e.g. "RepoNotFound", "GatedRepo"
	Message    string // X-Error-Message, or the "error" field of a JSON body
	RequestID  string // X-Request-Id (or X-Amzn-Trace-Id)
	// Authenticated tells whether a token was sent with the request; it
	// decides the hint added to not-found and gated errors.
	Authenticated bool
}

// Error implements error with a message a user can act on.
func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s: %d %s", e.Method, e.URL, e.StatusCode, http.StatusText(e.StatusCode))
	if e.Code != "" {
		fmt.Fprintf(&b, " (%s)", e.Code)
	}
	if e.Message != "" {
		fmt.Fprintf(&b, ": %s", e.Message)
	}
	if h := e.hint(); h != "" {
		fmt.Fprintf(&b, "; %s", h)
	}
	if e.RequestID != "" {
		fmt.Fprintf(&b, " [request id %s]", e.RequestID)
	}
	return b.String()
}

func (e *Error) hint() string {
	switch e.sentinel() {
	case ErrRepoNotFound:
		if e.Authenticated {
			return "check the repository id, and that the token in HF_TOKEN can read it"
		}
		return "check the repository id; if it is private, set HF_TOKEN to a token that can read it"
	case ErrGatedRepo:
		if e.Authenticated {
			return "the repository is gated: request access on its Hub page with the account that owns HF_TOKEN"
		}
		return "the repository is gated: request access on its Hub page, then set HF_TOKEN"
	case ErrRevisionNotFound:
		return "check the branch, tag or commit given as revision"
	case ErrEntryNotFound:
		return "the file does not exist at this revision"
	case ErrUnauthorized:
		if e.Authenticated {
			return "the token in HF_TOKEN was refused"
		}
		return "set HF_TOKEN"
	}
	return ""
}

// Unwrap returns the sentinel matching the error code or status.
func (e *Error) Unwrap() error { return e.sentinel() }

func (e *Error) sentinel() error {
	switch e.Code {
	case "RepoNotFound":
		return ErrRepoNotFound
	case "RevisionNotFound":
		return ErrRevisionNotFound
	case "EntryNotFound":
		return ErrEntryNotFound
	case "GatedRepo":
		return ErrGatedRepo
	}
	if e.Message == "Access to this resource is disabled." {
		return ErrDisabledRepo
	}
	switch {
	case e.StatusCode == http.StatusBadRequest:
		return ErrBadRequest
	case e.StatusCode == http.StatusUnauthorized:
		return ErrUnauthorized
	case e.StatusCode == http.StatusForbidden:
		return ErrForbidden
	case e.StatusCode == http.StatusNotFound:
		return ErrNotFound
	case e.StatusCode == http.StatusConflict:
		return ErrConflict
	case e.StatusCode == http.StatusTooManyRequests:
		return ErrTooManyRequests
	case e.StatusCode >= 500:
		return ErrServer
	}
	return nil
}

// maxErrorBody bounds how much of an error response is read for its message.
const maxErrorBody = 64 << 10

// newError builds an *Error from a response whose status is >= 400 and
// closes its body.
func newError(resp *http.Response, authenticated bool) *Error {
	defer resp.Body.Close()
	e := &Error{
		Method:        resp.Request.Method,
		URL:           redactURL(resp.Request.URL),
		StatusCode:    resp.StatusCode,
		Code:          resp.Header.Get("X-Error-Code"),
		Message:       resp.Header.Get("X-Error-Message"),
		RequestID:     resp.Header.Get("X-Request-Id"),
		Authenticated: authenticated,
	}
	if e.RequestID == "" {
		e.RequestID = resp.Header.Get("X-Amzn-Trace-Id")
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	if e.Message == "" {
		e.Message = bodyMessage(body)
	}
	return e
}

// bodyMessage extracts {"error": "..."} (or a list of errors) from a JSON
// error body; a short plain-text body is used as is.
func bodyMessage(body []byte) string {
	var v struct {
		Error  json.RawMessage `json:"error"`
		Errors []string        `json:"errors"`
	}
	if json.Unmarshal(body, &v) == nil {
		var s string
		if json.Unmarshal(v.Error, &s) == nil && s != "" {
			return s
		}
		var list []string
		if json.Unmarshal(v.Error, &list) == nil && len(list) > 0 {
			return strings.Join(list, "; ")
		}
		if len(v.Errors) > 0 {
			return strings.Join(v.Errors, "; ")
		}
		return ""
	}
	s := strings.TrimSpace(string(body))
	if len(s) > 200 || strings.HasPrefix(s, "<") {
		return ""
	}
	return s
}

// redactURL renders u without user info, query or fragment.
func redactURL(u *url.URL) string {
	if u == nil {
		return ""
	}
	c := *u
	c.User = nil
	c.RawQuery = ""
	c.ForceQuery = false
	c.Fragment = ""
	c.RawFragment = ""
	return c.String()
}
