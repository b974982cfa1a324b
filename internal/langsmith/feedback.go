package langsmith

import (
	"errors"
	"fmt"
	"math"
	"regexp"
	"unicode/utf8"

	"github.com/google/uuid"
)

// Limits feedback is held to before it is queued. LangSmith stores a key
// per feedback item and groups by it, so a key is a short name
// ("user_score", "correctness"), not free text: free text goes in the comment.
const (
	MaxFeedbackKeyLen       = 64
	MaxFeedbackCommentBytes = 4096
)

// ErrInvalidFeedback is wrapped by every error [ParseFeedback] and
// [ParseRunID] return: the caller's input, to be answered with 400.
var ErrInvalidFeedback = errors.New("invalid feedback")

// feedbackKeyRE is a short name: letters and digits first, then also '_', '.' and '-'.
var feedbackKeyRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]*$`)

// ParseRunID accepts a run id in any form uuid.Parse knows (8-4-4-4-12 in
// either case, {braced}, urn:uuid:, 32 hex digits) and returns the canonical
// lowercase 8-4-4-4-12 form, which is how runs are created and stored: a run
// id forwarded in another form would name no run.
func ParseRunID(s string) (string, error) {
	id, err := uuid.Parse(s)
	if err != nil {
		return "", fmt.Errorf("%w: run id %q is not a UUID", ErrInvalidFeedback, clip(s))
	}
	return id.String(), nil
}

// ParseFeedback checks a feedback request and returns it ready to queue,
// with a fresh id, source "api" and the run id in canonical form.
func ParseFeedback(runID, key string, score float64, comment string) (Feedback, error) {
	id, err := ParseRunID(runID)
	if err != nil {
		return Feedback{}, err
	}
	if err := checkKey(key); err != nil {
		return Feedback{}, err
	}
	if math.IsNaN(score) || math.IsInf(score, 0) {
		return Feedback{}, fmt.Errorf("%w: score must be a finite number", ErrInvalidFeedback)
	}
	if len(comment) > MaxFeedbackCommentBytes || !utf8.ValidString(comment) {
		return Feedback{}, fmt.Errorf("%w: comment must be UTF-8 of at most %d bytes", ErrInvalidFeedback, MaxFeedbackCommentBytes)
	}
	fb := Feedback{ID: newRunID(), RunID: id, Key: key, Score: &score, Comment: comment}
	fb.Source.Type = "api"
	return fb, nil
}

func checkKey(key string) error {
	if len(key) > MaxFeedbackKeyLen || !feedbackKeyRE.MatchString(key) {
		return fmt.Errorf("%w: key %q must be 1 to %d letters, digits, '_', '.' or '-', starting with a letter or digit",
			ErrInvalidFeedback, clip(key), MaxFeedbackKeyLen)
	}
	return nil
}

// validate is ParseFeedback's check on an already built Feedback, for
// [Tracer.Feedback]: nothing malformed leaves for LangSmith.
func (fb Feedback) validate() error {
	if fb.Score == nil {
		_, err := ParseFeedback(fb.RunID, fb.Key, 0, fb.Comment)
		return err
	}
	parsed, err := ParseFeedback(fb.RunID, fb.Key, *fb.Score, fb.Comment)
	if err != nil {
		return err
	}
	if parsed.RunID != fb.RunID {
		return fmt.Errorf("%w: run id %q is not in canonical form", ErrInvalidFeedback, clip(fb.RunID))
	}
	if _, err := uuid.Parse(fb.ID); err != nil {
		return fmt.Errorf("%w: feedback id %q is not a UUID", ErrInvalidFeedback, clip(fb.ID))
	}
	return nil
}

// clip shortens user input quoted in an error.
func clip(s string) string {
	const n = 80
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
