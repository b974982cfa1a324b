package langsmith

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// BaggageHeader carries a trace's metadata from one service to the next, as
// the LangSmith SDK's distributed tracing does (RunTree.to_headers and
// from_headers): a W3C baggage header whose member langsmith-metadata is the
// metadata as percent-encoded JSON. The UI sends the signed-in user's id this
// way; the serving API puts it in its trace's metadata.
const BaggageHeader = "baggage"

const baggageMetadata = "langsmith-metadata"

// maxBaggageBytes bounds a baggage header this package reads or writes
// (the W3C baggage limit is 8192 bytes).
const maxBaggageBytes = 8192

// Baggage encodes metadata as the value of a [BaggageHeader].
func Baggage(metadata map[string]any) (string, error) {
	b, err := json.Marshal(metadata)
	if err != nil {
		return "", fmt.Errorf("encode baggage metadata: %w", err)
	}
	v := baggageMetadata + "=" + url.PathEscape(string(b))
	if len(v) > maxBaggageBytes {
		return "", fmt.Errorf("encode baggage metadata: %d bytes, over %d", len(v), maxBaggageBytes)
	}
	return v, nil
}

// MetadataFromBaggage reads the langsmith-metadata member of a
// [BaggageHeader] value; it returns nil when there is none or it does not
// decode. Only a caller that trusts the sender (the API trusts the UI, the
// one identity its mesh policy admits) should put it in a trace.
func MetadataFromBaggage(header string) map[string]any {
	if header == "" || len(header) > maxBaggageBytes {
		return nil
	}
	for _, member := range strings.Split(header, ",") {
		member, _, _ = strings.Cut(member, ";") // drop W3C properties
		k, v, ok := strings.Cut(strings.TrimSpace(member), "=")
		if !ok || strings.TrimSpace(k) != baggageMetadata {
			continue
		}
		raw, err := url.PathUnescape(strings.TrimSpace(v))
		if err != nil {
			return nil
		}
		var md map[string]any
		if json.Unmarshal([]byte(raw), &md) != nil {
			return nil
		}
		return md
	}
	return nil
}

// AddMetadata sets extra.metadata[k] = v for each entry of md.
func (r *Run) AddMetadata(md map[string]any) {
	for k, v := range md {
		r.SetMetadata(k, v)
	}
}

type metadataKey struct{}

// ContextWithBaggage returns ctx carrying the metadata of h's
// [BaggageHeader], for a server to read back with [MetadataFromContext] when
// it starts the request's trace. ctx is returned as is when there is none.
func ContextWithBaggage(ctx context.Context, h http.Header) context.Context {
	md := MetadataFromBaggage(h.Get(BaggageHeader))
	if len(md) == 0 {
		return ctx
	}
	return context.WithValue(ctx, metadataKey{}, md)
}

// MetadataFromContext returns what [ContextWithBaggage] stored, or nil;
// pass it to [Run.AddMetadata] on the trace's root.
func MetadataFromContext(ctx context.Context) map[string]any {
	md, _ := ctx.Value(metadataKey{}).(map[string]any)
	return md
}
