package validate

import (
	"errors"
	"strings"
	"testing"
)

// The evaluator's own semantics, each case against the Istio document its
// rule follows (see authz.go: [AP] "Authorization Policy" reference, [PREC]
// "Security" concepts: authorization policy precedence, [COND]
// "Authorization Policy Conditions", [TD] trust domain migration). Policies
// are written as YAML and go through the same strict decoding as the
// cluster's.

const testNS = "foo"

var httpbin = Workload{Namespace: testNS, Labels: map[string]string{"app": "httpbin"}}

func policies(t *testing.T, yamls ...string) []AuthzPolicy {
	t.Helper()
	var out []AuthzPolicy
	for _, y := range yamls {
		ps, err := DecodeAuthzPolicies([]byte(y), "test")
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, ps...)
	}
	return out
}

func policyYAML(name, ns, spec string) string {
	return "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata:\n  name: " + name +
		"\n  namespace: " + ns + "\nspec:\n" + spec
}

func req(principal, method, path string) Request {
	return Request{To: httpbin, Port: 8000, Principal: principal, Method: method, Path: path}
}

func TestEvaluatePrecedence(t *testing.T) {
	allowAll := policyYAML("allow-all", testNS, "  rules:\n  - {}\n")
	allowNothing := policyYAML("allow-nothing", testNS, "  {}\n")
	denyPost := policyYAML("deny-post", testNS, "  action: DENY\n  rules:\n  - to:\n    - operation:\n        methods: [POST]\n")
	allowSleep := policyYAML("allow-sleep", testNS, "  rules:\n  - from:\n    - source:\n        principals: [cluster.local/ns/foo/sa/sleep]\n")
	audit := policyYAML("audit-all", testNS, "  action: AUDIT\n  rules:\n  - {}\n")
	sleep := "cluster.local/ns/foo/sa/sleep"
	cases := []struct {
		name     string
		policies []string
		r        Request
		want     Verdict
	}{
		// [PREC] 3: no ALLOW policy for the workload: allow.
		{"no policy at all", nil, req(sleep, "GET", "/"), Verdict{true, "no ALLOW policy"}},
		{"only a DENY that does not match", []string{denyPost}, req(sleep, "GET", "/"), Verdict{true, "no ALLOW policy"}},
		// [AP] "allow-nothing": spec {} is an ALLOW policy with no rules,
		// which matches nothing, so every request is denied.
		{"ALLOW with no rules matches nothing", []string{allowNothing}, req(sleep, "GET", "/"), Verdict{false, "no ALLOW policy matches"}},
		// [AP] "allow-all": rules [{}]; an empty rule always matches.
		{"empty rule matches all", []string{allowAll}, req("", "GET", "/"), Verdict{true, "ALLOW foo/allow-all"}},
		{"allow-all beside allow-nothing", []string{allowAll, allowNothing}, req("", "GET", "/"), Verdict{true, "ALLOW foo/allow-all"}},
		// [PREC] 2: a matching DENY wins over any ALLOW.
		{"DENY wins over ALLOW", []string{allowAll, denyPost}, req(sleep, "POST", "/"), Verdict{false, "DENY foo/deny-post"}},
		{"DENY that does not match leaves ALLOW", []string{allowAll, denyPost}, req(sleep, "GET", "/"), Verdict{true, "ALLOW foo/allow-all"}},
		// [PREC] 4-5: ALLOW policies add up; none matching is a deny.
		{"ALLOWs add up", []string{allowSleep, allowNothing}, req(sleep, "GET", "/"), Verdict{true, "ALLOW foo/allow-sleep"}},
		{"no ALLOW matches", []string{allowSleep}, req("cluster.local/ns/foo/sa/other", "GET", "/"), Verdict{false, "no ALLOW policy matches"}},
		// [AP] AUDIT does not affect the decision, not even as an ALLOW.
		{"AUDIT is not ALLOW", []string{audit, allowSleep}, req("cluster.local/ns/foo/sa/other", "GET", "/"), Verdict{false, "no ALLOW policy matches"}},
		{"AUDIT alone", []string{audit}, req("", "GET", "/"), Verdict{true, "no ALLOW policy"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := Mesh{}.Evaluate(policies(t, c.policies...), c.r)
			if err != nil {
				t.Fatal(err)
			}
			if got != c.want {
				t.Errorf("got %v, want %v", got, c.want)
			}
		})
	}
}

// TestEvaluateCustom: [PREC] 1: CUSTOM comes first and its provider's deny
// stands against any ALLOW; its allow still leaves DENY and ALLOW to decide.
func TestEvaluateCustom(t *testing.T) {
	ps := policies(t,
		policyYAML("ext", testNS, "  action: CUSTOM\n  provider:\n    name: authz\n  rules:\n  - to:\n    - operation:\n        paths: [/admin/*]\n"),
		policyYAML("allow-all", testNS, "  rules:\n  - {}\n"),
		policyYAML("deny-delete", testNS, "  action: DENY\n  rules:\n  - to:\n    - operation:\n        methods: [DELETE]\n"))
	asked := 0
	m := Mesh{ExtAuthz: func(provider string, r Request) bool {
		asked++
		return provider == "authz" && r.Headers["x-ok"] == "1"
	}}
	for _, c := range []struct {
		r    Request
		want Verdict
	}{
		{Request{To: httpbin, Method: "GET", Path: "/admin/x"}, Verdict{false, "CUSTOM foo/ext (authz)"}},
		{Request{To: httpbin, Method: "GET", Path: "/admin/x", Headers: map[string]string{"x-ok": "1"}}, Verdict{true, "ALLOW foo/allow-all"}},
		{Request{To: httpbin, Method: "DELETE", Path: "/admin/x", Headers: map[string]string{"x-ok": "1"}}, Verdict{false, "DENY foo/deny-delete"}},
		{Request{To: httpbin, Method: "GET", Path: "/public"}, Verdict{true, "ALLOW foo/allow-all"}},
	} {
		got, err := m.Evaluate(ps, c.r)
		if err != nil || got != c.want {
			t.Errorf("%s %s: got %v, %v; want %v", c.r.Method, c.r.Path, got, err, c.want)
		}
	}
	if asked != 3 {
		t.Errorf("provider asked %d times, want 3 (only for requests the CUSTOM rule matches)", asked)
	}
	// Without a provider's answer, a matching CUSTOM policy is an error,
	// not a guess.
	if _, err := (Mesh{}).Evaluate(ps, Request{To: httpbin, Path: "/admin/x"}); err == nil {
		t.Error("a CUSTOM policy was decided without its provider")
	}
}

// TestStringMatch: [AP] "Rule": exact, prefix, suffix and presence.
func TestStringMatch(t *testing.T) {
	for _, c := range []struct {
		pattern, value string
		want           bool
	}{
		{"abc", "abc", true}, {"abc", "abcd", false},
		{"abc*", "abc", true}, {"abc*", "abcd", true}, {"abc*", "xabc", false},
		{"*abc", "abc", true}, {"*abc", "xabc", true}, {"*abc", "abcd", false},
		{"*", "x", true}, {"*", "", false},
		{"/info*", "/info/1", true}, {"*/api/kernels", "/notebook/ns/nb/api/kernels", true},
		{"*/api/kernels", "/notebook/ns/nb/api/kernels/1", false},
		{"a*c", "abc", false}, // a * inside is no wildcard
	} {
		if got := stringMatch(c.pattern, c.value); got != c.want {
			t.Errorf("stringMatch(%q, %q) = %v, want %v", c.pattern, c.value, got, c.want)
		}
	}
}

// TestSourceAndOperation: the fields of a source and of an operation are
// ANDed, a list needs one match, a not-list none [AP "Source",
// "Operation"]; principals and namespaces come from the peer certificate,
// so plain text matches none of them and every not-list.
func TestSourceAndOperation(t *testing.T) {
	sleep, other := "cluster.local/ns/foo/sa/sleep", "cluster.local/ns/bar/sa/sleep"
	cases := []struct {
		name, rule string
		r          Request
		want       bool
	}{
		{"principal exact", "from:\n    - source:\n        principals: [cluster.local/ns/foo/sa/sleep]", req(sleep, "GET", "/"), true},
		{"principal other", "from:\n    - source:\n        principals: [cluster.local/ns/foo/sa/sleep]", req(other, "GET", "/"), false},
		{"principal prefix", "from:\n    - source:\n        principals: [cluster.local/ns/foo/*]", req(sleep, "GET", "/"), true},
		{"principal suffix", "from:\n    - source:\n        principals: [\"*/sa/sleep\"]", req(other, "GET", "/"), true},
		{"presence needs mTLS", "from:\n    - source:\n        principals: [\"*\"]", req("", "GET", "/"), false},
		{"presence with mTLS", "from:\n    - source:\n        principals: [\"*\"]", req(sleep, "GET", "/"), true},
		{"notPrincipals * is plain text only", "from:\n    - source:\n        notPrincipals: [\"*\"]", req("", "GET", "/"), true},
		{"notPrincipals * excludes identities", "from:\n    - source:\n        notPrincipals: [\"*\"]", req(sleep, "GET", "/"), false},
		{"notPrincipals matches plain text", "from:\n    - source:\n        notPrincipals: [cluster.local/ns/foo/sa/sleep]", req("", "GET", "/"), true},
		{"notPrincipals spares the one named", "from:\n    - source:\n        notPrincipals: [cluster.local/ns/foo/sa/sleep]", req(sleep, "GET", "/"), false},
		{"namespaces", "from:\n    - source:\n        namespaces: [bar]", req(other, "GET", "/"), true},
		{"namespaces need mTLS", "from:\n    - source:\n        namespaces: [\"*\"]", req("", "GET", "/"), false},
		{"notNamespaces matches plain text", "from:\n    - source:\n        notNamespaces: [foo]", req("", "GET", "/"), true},
		{"source fields ANDed", "from:\n    - source:\n        principals: [\"*/sa/sleep\"]\n        namespaces: [foo]", req(other, "GET", "/"), false},
		{"one of several sources", "from:\n    - source:\n        namespaces: [foo]\n    - source:\n        namespaces: [bar]", req(other, "GET", "/"), true},
		{"path prefix", "to:\n    - operation:\n        paths: [/info*]", req(sleep, "GET", "/info/x"), true},
		{"notPaths", "to:\n    - operation:\n        notPaths: [/admin*]", req(sleep, "GET", "/admin/x"), false},
		{"method and path ANDed", "to:\n    - operation:\n        methods: [POST]\n        paths: [/data]", req(sleep, "GET", "/data"), false},
		{"one of several operations", "to:\n    - operation:\n        methods: [GET]\n        paths: [/info*]\n    - operation:\n        methods: [POST]\n        paths: [/data]", req(sleep, "POST", "/data"), true},
		{"ports", "to:\n    - operation:\n        ports: [\"8000\"]", req(sleep, "GET", "/"), true},
		{"notPorts", "to:\n    - operation:\n        notPorts: [\"8000\"]", req(sleep, "GET", "/"), false},
		{"from and to ANDed", "from:\n    - source:\n        namespaces: [foo]\n    to:\n    - operation:\n        methods: [POST]", req(sleep, "GET", "/"), false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ps := policies(t, policyYAML("p", testNS, "  rules:\n  - "+c.rule+"\n"))
			got, err := Mesh{}.Evaluate(ps, c.r)
			if err != nil {
				t.Fatal(err)
			}
			if got.Allow != c.want {
				t.Errorf("got %v, want match %v", got, c.want)
			}
		})
	}
}

// TestConditions: [COND] request.headers[NAME], source.namespace,
// source.principal and destination.port; values needs one match, notValues
// none, all conditions of a rule must hold [AP "Condition", "Rule"].
func TestConditions(t *testing.T) {
	sleep := "cluster.local/ns/foo/sa/sleep"
	withHeader := func(r Request, k, v string) Request { r.Headers = map[string]string{k: v}; return r }
	cases := []struct {
		name, when string
		r          Request
		want       bool
	}{
		{"header exact", "key: request.headers[kubeflow-userid]\n      values: [user@example.com]", withHeader(req(sleep, "GET", "/"), "Kubeflow-Userid", "user@example.com"), true},
		{"header other value", "key: request.headers[kubeflow-userid]\n      values: [user@example.com]", withHeader(req(sleep, "GET", "/"), "kubeflow-userid", "mallory@example.com"), false},
		{"header absent", "key: request.headers[kubeflow-userid]\n      values: [\"*\"]", req(sleep, "GET", "/"), false},
		{"header suffix", "key: request.headers[kubeflow-userid]\n      values: [\"*@example.com\"]", withHeader(req(sleep, "GET", "/"), "kubeflow-userid", "a@example.com"), true},
		{"header notValues", "key: request.headers[kubeflow-userid]\n      notValues: [user@example.com]", req(sleep, "GET", "/"), true},
		{"source.namespace", "key: source.namespace\n      values: [foo]", req(sleep, "GET", "/"), true},
		{"source.namespace plain text", "key: source.namespace\n      values: [foo]", req("", "GET", "/"), false},
		{"source.namespace notValues plain text", "key: source.namespace\n      notValues: [foo]", req("", "GET", "/"), true},
		{"source.principal", "key: source.principal\n      values: [cluster.local/ns/foo/sa/sleep]", req(sleep, "GET", "/"), true},
		{"destination.port", "key: destination.port\n      values: [\"8000\", \"9000\"]", req(sleep, "GET", "/"), true},
		{"all conditions", "key: source.namespace\n      values: [foo]\n    - key: request.headers[x]\n      values: [\"1\"]", req(sleep, "GET", "/"), false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ps := policies(t, policyYAML("p", testNS, "  rules:\n  - when:\n    - "+c.when+"\n"))
			got, err := Mesh{}.Evaluate(ps, c.r)
			if err != nil {
				t.Fatal(err)
			}
			if got.Allow != c.want {
				t.Errorf("got %v, want match %v", got, c.want)
			}
		})
	}
}

// TestScope: a policy applies to its namespace's workloads, or to every
// namespace's from the root namespace; a selector narrows it to workloads
// with all its labels; a dry-run policy is not enforced [AP].
func TestScope(t *testing.T) {
	deny := "  action: DENY\n  rules:\n  - {}\n"
	cases := []struct {
		name   string
		policy string
		want   bool // allowed
	}{
		{"same namespace, no selector", policyYAML("p", testNS, deny), false},
		{"other namespace", policyYAML("p", "bar", deny), true},
		{"root namespace", policyYAML("p", "istio-system", deny), false},
		{"selector matches", policyYAML("p", testNS, "  selector:\n    matchLabels:\n      app: httpbin\n"+deny), false},
		{"selector needs every label", policyYAML("p", testNS, "  selector:\n    matchLabels:\n      app: httpbin\n      version: v2\n"+deny), true},
		{"root namespace with selector", policyYAML("p", "istio-system", "  selector:\n    matchLabels:\n      app: sleep\n"+deny), true},
		{"dry run", strings.Replace(policyYAML("p", testNS, deny), "metadata:\n", "metadata:\n  annotations:\n    istio.io/dry-run: \"true\"\n", 1), true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := Mesh{}.Evaluate(policies(t, c.policy), req("", "GET", "/"))
			if err != nil {
				t.Fatal(err)
			}
			if got.Allow != c.want {
				t.Errorf("got %v, want allowed %v", got, c.want)
			}
		})
	}
}

// TestTrustDomain: [TD] cluster.local in a policy stands for the mesh's
// trust domain and its aliases; another trust domain is taken literally.
func TestTrustDomain(t *testing.T) {
	allow := func(p string) []AuthzPolicy {
		return policies(t, policyYAML("p", testNS, "  rules:\n  - from:\n    - source:\n        principals: ["+p+"]\n"))
	}
	mesh := Mesh{TrustDomain: "new-td", TrustDomainAliases: []string{"old-td"}}
	for _, c := range []struct {
		policy, caller string
		want           bool
	}{
		{"cluster.local/ns/foo/sa/sleep", "new-td/ns/foo/sa/sleep", true},
		{"cluster.local/ns/foo/sa/sleep", "old-td/ns/foo/sa/sleep", true},
		{"old-td/ns/foo/sa/sleep", "new-td/ns/foo/sa/sleep", true},
		{"new-td/ns/foo/sa/sleep", "new-td/ns/foo/sa/sleep", true},
		{"other-td/ns/foo/sa/sleep", "new-td/ns/foo/sa/sleep", false},
		{"cluster.local/ns/foo/sa/sleep", "new-td/ns/bar/sa/sleep", false},
		{`"*/ns/foo/sa/sleep"`, "any-td/ns/foo/sa/sleep", true},
	} {
		got, err := mesh.Evaluate(allow(c.policy), req(c.caller, "GET", "/"))
		if err != nil {
			t.Fatal(err)
		}
		if got.Allow != c.want {
			t.Errorf("policy %s, caller %s: got %v, want allowed %v", c.policy, c.caller, got, c.want)
		}
	}
	// Without aliases, a policy naming the mesh's old trust domain stops
	// matching: what the trust domain migration task shows.
	got, err := Mesh{TrustDomain: "new-td"}.Evaluate(allow("old-td/ns/foo/sa/sleep"), req("new-td/ns/foo/sa/sleep", "GET", "/"))
	if err != nil || got.Allow {
		t.Errorf("old trust domain without alias: %v, %v; want deny", got, err)
	}
}

// TestUnsupportedIsAnError: a field the evaluator does not model is an
// error, never silently ignored (ignoring a DENY's ipBlocks would widen it).
func TestUnsupportedIsAnError(t *testing.T) {
	for name, spec := range map[string]string{
		"ipBlocks":          "  action: DENY\n  rules:\n  - from:\n    - source:\n        ipBlocks: [10.0.0.0/8]\n",
		"requestPrincipals": "  rules:\n  - from:\n    - source:\n        requestPrincipals: [\"*\"]\n",
		"serviceAccounts":   "  rules:\n  - from:\n    - source:\n        serviceAccounts: [foo/sleep]\n",
		"path template":     "  rules:\n  - to:\n    - operation:\n        paths: [\"/foo/{*}\"]\n",
		"JWT claim":         "  rules:\n  - when:\n    - key: request.auth.claims[iss]\n      values: [x]\n",
		"targetRefs":        "  targetRefs:\n  - kind: Gateway\n    group: gateway.networking.k8s.io\n    name: gw\n  rules:\n  - {}\n",
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Mesh{}.Evaluate(policies(t, policyYAML("p", "elsewhere", spec)), req("", "GET", "/"))
			if !errors.Is(err, ErrUnsupported) {
				t.Errorf("err %v, want ErrUnsupported", err)
			}
		})
	}
	for name, spec := range map[string]string{
		"bad port":           "  rules:\n  - to:\n    - operation:\n        ports: [http]\n",
		"condition no value": "  rules:\n  - when:\n    - key: source.namespace\n",
		"CUSTOM no provider": "  action: CUSTOM\n  rules:\n  - {}\n",
	} {
		if _, err := (Mesh{}).Evaluate(policies(t, policyYAML("p", testNS, spec)), req("", "GET", "/")); err == nil {
			t.Errorf("%s: evaluated without error", name)
		}
	}
}

// TestDecodeAuthzPoliciesIsStrict: v1 and v1beta1 decode alike; a misspelt
// field, another kind or a policy without namespace is an error.
func TestDecodeAuthzPoliciesIsStrict(t *testing.T) {
	good := policyYAML("p", testNS, "  rules:\n  - from:\n    - source:\n        notPrincipals: [\"*\"]\n")
	for _, y := range []string{good, strings.Replace(good, "security.istio.io/v1", "security.istio.io/v1beta1", 1)} {
		ps, err := DecodeAuthzPolicies([]byte(y), "test")
		if err != nil || len(ps) != 1 || ps[0].Spec.GetRules()[0].GetFrom()[0].GetSource().GetNotPrincipals()[0] != "*" {
			t.Errorf("decode %q: %v, %v", y, ps, err)
		}
	}
	for name, y := range map[string]string{
		"typo in spec":     strings.Replace(good, "notPrincipals", "notPrincipal", 1),
		"typo in metadata": strings.Replace(good, "namespace:", "namespaces:", 1),
		"no namespace":     strings.Replace(good, "  namespace: foo\n", "", 1),
		"other kind":       strings.Replace(good, "AuthorizationPolicy", "PeerAuthentication", 1),
	} {
		if _, err := DecodeAuthzPolicies([]byte(y), "test"); err == nil {
			t.Errorf("%s: decoded without error", name)
		}
	}
}
