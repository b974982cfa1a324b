package langsmith

import "testing"

func TestConfigFromEnv(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		want Config
	}{
		{"nothing set: off, defaults", nil,
			Config{Endpoint: DefaultEndpoint, Project: "default"}},
		{"LANGCHAIN_ names as in langsmith-secret", map[string]string{
			"LANGCHAIN_TRACING_V2": "true", "LANGCHAIN_ENDPOINT": "http://ls:1984/",
			"LANGCHAIN_API_KEY": "k1", "LANGCHAIN_PROJECT": "p1"},
			Config{Tracing: true, Endpoint: "http://ls:1984", APIKey: "k1", Project: "p1"}},
		{"LANGSMITH_ wins over LANGCHAIN_", map[string]string{
			"LANGSMITH_TRACING": "true", "LANGCHAIN_TRACING_V2": "false",
			"LANGSMITH_API_KEY": "new", "LANGCHAIN_API_KEY": "old",
			"LANGSMITH_PROJECT": "a", "LANGCHAIN_PROJECT": "b"},
			// TRACING_V2 (from LANGCHAIN_) is set, so it decides, as in the SDK.
			Config{Tracing: false, Endpoint: DefaultEndpoint, APIKey: "new", Project: "a"}},
		{"TRACING used when TRACING_V2 unset", map[string]string{"LANGSMITH_TRACING": "true"},
			Config{Tracing: true, Endpoint: DefaultEndpoint, Project: "default"}},
		{"only exactly true enables", map[string]string{"LANGSMITH_TRACING_V2": "1"},
			Config{Endpoint: DefaultEndpoint, Project: "default"}},
		{"workspace and session", map[string]string{"LANGSMITH_WORKSPACE_ID": "w", "LANGCHAIN_SESSION": "s"},
			Config{Endpoint: DefaultEndpoint, Project: "s", WorkspaceID: "w"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := ConfigFromEnv(func(k string) string { return tt.env[k] })
			if got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}
