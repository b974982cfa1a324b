package server

import (
	"errors"
	"fmt"
	"net/http"
)

// UpstreamError is a failure of a remote backend (issue 13): an HTTP error
// answer, a timeout, or no answer at all.
type UpstreamError struct {
	// Provider names the backend ("huggingface", "openai").
	Provider string
	// Status is the upstream's HTTP status, 0 when there was no answer.
	Status int
	// Message is what the upstream said (its error message), or the
	// transport error.
	Message string
	// Timeout is true when the upstream did not answer in time.
	Timeout bool
}

func (e *UpstreamError) Error() string {
	switch {
	case e.Timeout:
		return fmt.Sprintf("upstream %s timed out: %s", e.Provider, e.Message)
	case e.Status > 0:
		return fmt.Sprintf("upstream %s answered %d: %s", e.Provider, e.Status, e.Message)
	}
	return fmt.Sprintf("upstream %s unreachable: %s", e.Provider, e.Message)
}

// upstreamStatus maps remote-backend failures: 504 for a timeout, 502 with
// the upstream's message for anything else.
func upstreamStatus(err error) (int, string, bool) {
	var ue *UpstreamError
	if !errors.As(err, &ue) {
		return 0, "", false
	}
	if ue.Timeout {
		return http.StatusGatewayTimeout, ue.Error(), true
	}
	return http.StatusBadGateway, ue.Error(), true
}
