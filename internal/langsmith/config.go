package langsmith

import "strings"

// DefaultEndpoint is LangSmith's public API.
const DefaultEndpoint = "https://api.smith.langchain.com"

// Config says where traces go and whether they are sent at all.
type Config struct {
	// Tracing is true when traces are to be sent.
	Tracing bool
	// Endpoint is the API base URL, without a trailing slash.
	Endpoint string
	// APIKey goes in the x-api-key header. It is never logged or traced.
	APIKey string
	// Project is the tracing project (session_name), "default" if unset.
	Project string
	// WorkspaceID, when set, goes in the x-tenant-id header.
	WorkspaceID string
}

// ConfigFromEnv reads the configuration as the LangSmith SDK does: for each
// setting, LANGSMITH_<NAME> wins over LANGCHAIN_<NAME>. Tracing is enabled
// only when TRACING_V2 (or, if that is unset, TRACING) is exactly "true".
// getenv is os.Getenv in a binary, a map lookup in tests.
func ConfigFromEnv(getenv func(string) string) Config {
	get := func(name string) string {
		if v := getenv("LANGSMITH_" + name); v != "" {
			return v
		}
		return getenv("LANGCHAIN_" + name)
	}
	tracing := get("TRACING_V2")
	if tracing == "" {
		tracing = get("TRACING")
	}
	c := Config{
		Tracing:     tracing == "true",
		Endpoint:    strings.TrimRight(get("ENDPOINT"), "/"),
		APIKey:      get("API_KEY"),
		Project:     get("PROJECT"),
		WorkspaceID: get("WORKSPACE_ID"),
	}
	if c.Endpoint == "" {
		c.Endpoint = DefaultEndpoint
	}
	if c.Project == "" {
		c.Project = getenv("LANGCHAIN_SESSION")
	}
	if c.Project == "" {
		c.Project = "default"
	}
	return c
}
