package server

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"
)

// maxQuoted bounds how much of the API's own error text is quoted to the
// person, so that a stack trace or a huge body never fills the page.
const maxQuoted = 300

// humanError maps an error from the API client to the HTTP status this
// server answers with and a sentence a person understands. It is the one
// place where errors meet the browser. The text is plain: the page shows it
// with textContent, so any markup in the API's message stays literal.
func humanError(err error, timeout time.Duration, model string) (int, string) {
	var ae *APIError
	switch {
	case errors.Is(err, ErrAPITimeout):
		return http.StatusGatewayTimeout, fmt.Sprintf(
			"The model took too long to answer (no answer within %s). Try again, perhaps with a shorter context or fewer new tokens.", roundDuration(timeout))
	case errors.Is(err, ErrAPIUnreachable):
		return http.StatusBadGateway, "Could not reach the model API. It may be starting or down; try again in a minute."
	case errors.Is(err, ErrAPIProtocol):
		return http.StatusBadGateway, "The model API sent an answer this page cannot read. Try again; if it keeps happening, the API and UI versions may not match."
	case errors.As(err, &ae):
		return apiErrorStatus(ae), apiErrorText(ae, model)
	default:
		return http.StatusBadGateway, "The connection to the model broke while it was answering. Try again."
	}
}

func apiErrorStatus(e *APIError) int {
	switch {
	case e.Status == 0:
		return http.StatusBadGateway
	case e.Status == http.StatusTooManyRequests, e.Status == http.StatusServiceUnavailable, e.Status == http.StatusGatewayTimeout:
		return e.Status
	case e.Status == http.StatusBadRequest, e.Status == http.StatusRequestEntityTooLarge:
		// The API refused what the person typed (a context longer than the
		// model takes): their input, not a gateway failure.
		return e.Status
	default:
		return http.StatusBadGateway
	}
}

func apiErrorText(e *APIError, model string) string {
	msg := quote(e.Message)
	switch {
	case e.Status == 0:
		return "The model stopped while answering" + suffix(msg)
	case e.Status == http.StatusServiceUnavailable && (strings.Contains(e.Message, "not ready") || e.RetryAfter == 0):
		// KServe's "Model with name X is not ready." (serving sends it with
		// a Retry-After while the weights load).
		return "The model is still loading. Try again in a minute."
	case e.Status == http.StatusTooManyRequests, e.Status == http.StatusServiceUnavailable:
		return "The model is busy answering other questions. " + retryIn(e.RetryAfter)
	case e.Status == http.StatusNotFound:
		return fmt.Sprintf("The API has no model named %q. The UI's MODEL_NAME setting may not match the deployed model.", model)
	case e.Status == http.StatusBadRequest:
		return "The API could not accept this request" + suffix(msg)
	case e.Status == http.StatusRequestEntityTooLarge:
		return "The context and question are too long for the API. Shorten the context and try again."
	case e.Status == http.StatusUnauthorized, e.Status == http.StatusForbidden:
		return "The API refused the UI's request (access denied). Its access policy may not admit this UI."
	case e.Status == http.StatusGatewayTimeout:
		return "The model took too long to answer. Try again, perhaps with a shorter context."
	case e.Status >= 500:
		return fmt.Sprintf("The model failed while answering (API error %d)", e.Status) + suffix(msg)
	default:
		return fmt.Sprintf("The API answered with an unexpected error (HTTP %d)", e.Status) + suffix(msg)
	}
}

func retryIn(d time.Duration) string {
	if d <= 0 {
		return "Try again in a few seconds."
	}
	s := int((d + time.Second - 1) / time.Second)
	if s == 1 {
		return "Try again in 1 second."
	}
	return fmt.Sprintf("Try again in %d seconds.", s)
}

// suffix ends a sentence with the API's message when there is one.
func suffix(msg string) string {
	if msg == "" {
		return "."
	}
	if last, _ := utf8.DecodeLastRuneInString(msg); !strings.ContainsRune(".!?…", last) {
		msg += "."
	}
	return ": " + msg
}

// quote trims the API's message to one readable line of bounded length.
func quote(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	if utf8.RuneCountInString(s) > maxQuoted {
		r := []rune(s)
		s = string(r[:maxQuoted]) + "…"
	}
	return s
}

func roundDuration(d time.Duration) time.Duration {
	if d >= time.Second {
		return d.Round(time.Second)
	}
	return d.Round(time.Millisecond)
}
