package serve

import (
	"context"
	"strings"
	"testing"

	"github.com/kfllm/kfllm/internal/server"
)

// A mistyped --backend, or a local backend without a loader, fails at
// once, before a port is opened.
func TestRunRefusesBadBackend(t *testing.T) {
	load := func(context.Context) (*server.Backend, error) { t.Fatal("loaded"); return nil, nil }
	for _, tc := range []struct {
		o    Options
		want string
	}{
		{Options{Backend: "olama", Local: load, Addr: "127.0.0.1:1"}, `unknown backend "olama"`},
		{Options{Backend: "local", Addr: "127.0.0.1:1"}, "no model loader"},
	} {
		tc.o.Server.ModelName = "m"
		if err := Run(context.Background(), tc.o); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Run(backend %q) = %v, want %q", tc.o.Backend, err, tc.want)
		}
	}
	if !IsLocal("") || !IsLocal("local") || IsLocal("openai") {
		t.Error("IsLocal")
	}
}
