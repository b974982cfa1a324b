package validate

// An evaluator of Istio AuthorizationPolicies for sidecar workloads, so that
// the question "who reaches llm-api?" can be answered over the rendered
// manifests together with the policies a Kubeflow profile namespace already
// holds, without a cluster.
//
// Each rule follows an Istio document (istio.io, the pages as of Istio 1.27,
// whose API types this module decodes into):
//
//   - [AP] "Authorization Policy" reference
//     (docs/reference/config/security/authorization-policy/), which is the
//     comment text of istio.io/api security/v1beta1/authorization_policy.proto.
//   - [PREC] "Security" concepts, sections "Authorization policy precedence"
//     and "Allow-nothing, deny-all and allow-all policy"
//     (docs/concepts/security/#authorization).
//   - [COND] "Authorization Policy Conditions"
//     (docs/reference/config/security/conditions/).
//   - [TD] "Authorization Policy Trust Domain Migration"
//     (docs/tasks/security/authorization/authz-td-migration/), section "Best
//     practices": cluster.local in a policy points to the mesh's trust domain
//     and its aliases.
//
// It evaluates HTTP requests only (every caller of llm-api and llm-ui speaks
// HTTP), and refuses, with an error, any field or condition it does not
// model, rather than ignoring it: a policy it cannot read fully is a policy
// it cannot vouch for.

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	securityapi "istio.io/api/security/v1beta1"
	istiosecurity "istio.io/client-go/pkg/apis/security/v1"
	istiosecurityv1beta1 "istio.io/client-go/pkg/apis/security/v1beta1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

// AuthzPolicy is one AuthorizationPolicy as the evaluator sees it. The spec
// type is the same for security.istio.io/v1 and v1beta1 (v1's is an alias).
type AuthzPolicy struct {
	Namespace, Name string
	// DryRun is the istio.io/dry-run annotation: the policy is reported but
	// not enforced [AP].
	DryRun bool
	Spec   *securityapi.AuthorizationPolicy
}

func (p AuthzPolicy) String() string { return p.Namespace + "/" + p.Name }

// Mesh is the part of the mesh's configuration that authorization reads.
type Mesh struct {
	// RootNamespace holds mesh-wide policies (default istio-system) [AP].
	RootNamespace string
	// TrustDomain is meshConfig.trustDomain (default cluster.local), and
	// TrustDomainAliases its aliases [TD].
	TrustDomain        string
	TrustDomainAliases []string
	// ExtAuthz answers for CUSTOM policies: whether the named extension
	// provider allows the request. When nil, a CUSTOM policy that matches a
	// request is an error, since the verdict is not the evaluator's to make.
	ExtAuthz func(provider string, r Request) bool
}

// Workload is a destination pod with an Istio sidecar.
type Workload struct {
	Namespace string
	Labels    map[string]string
}

// Request is what the destination's sidecar knows of one HTTP request.
type Request struct {
	To   Workload
	Port int
	// Principal is the peer identity from the client's mTLS certificate,
	// TRUST_DOMAIN/ns/NAMESPACE/sa/SERVICE_ACCOUNT; empty for plain text.
	// Headers never change it: that is what makes it the identity.
	Principal string
	Method    string
	Path      string
	Host      string
	// Headers by name; names match case-insensitively.
	Headers map[string]string
}

// Verdict is the outcome and what decided it.
type Verdict struct {
	Allow bool
	// By names the deciding policies ("DENY ns/name", "ALLOW ns/a, ns/b")
	// or the default that applied ("no ALLOW policy", "no ALLOW policy
	// matches").
	By string
}

func (v Verdict) String() string {
	if v.Allow {
		return "allow (" + v.By + ")"
	}
	return "deny (" + v.By + ")"
}

const (
	defaultRootNamespace = "istio-system"
	defaultTrustDomain   = "cluster.local"
	// clusterLocal in a policy's principal stands for the mesh's trust
	// domain and its aliases [TD].
	clusterLocal = "cluster.local"
)

// ErrUnsupported is wrapped by the errors for policy fields the evaluator
// does not model.
var ErrUnsupported = errors.New("not modelled by this evaluator")

// Evaluate decides a request as the destination's sidecar would [PREC]:
//  1. a CUSTOM policy that matches asks its provider, and denies if it does;
//  2. a DENY policy that matches denies;
//  3. with no ALLOW policy for the workload, allow;
//  4. an ALLOW policy that matches allows;
//  5. otherwise deny.
//
// AUDIT policies do not affect the outcome [AP]. Every policy is checked for
// fields the evaluator cannot model before anything is decided.
func (m Mesh) Evaluate(policies []AuthzPolicy, r Request) (Verdict, error) {
	for _, p := range policies {
		if err := supported(p); err != nil {
			return Verdict{}, err
		}
	}
	sorted := slices.Clone(policies)
	slices.SortFunc(sorted, func(a, b AuthzPolicy) int { return strings.Compare(a.String(), b.String()) })
	var applicable []AuthzPolicy
	for _, p := range sorted {
		if !p.DryRun && m.applies(p, r.To) {
			applicable = append(applicable, p)
		}
	}
	byAction := func(a securityapi.AuthorizationPolicy_Action) (out []AuthzPolicy) {
		for _, p := range applicable {
			if p.Spec.GetAction() == a {
				out = append(out, p)
			}
		}
		return out
	}
	for _, p := range byAction(securityapi.AuthorizationPolicy_CUSTOM) {
		if !m.matches(p, r) {
			continue
		}
		provider := p.Spec.GetProvider().GetName()
		if m.ExtAuthz == nil {
			return Verdict{}, fmt.Errorf("AuthorizationPolicy %s: CUSTOM provider %q matches the request; give Mesh.ExtAuthz its verdict", p, provider)
		}
		if !m.ExtAuthz(provider, r) {
			return Verdict{Allow: false, By: "CUSTOM " + p.String() + " (" + provider + ")"}, nil
		}
	}
	for _, p := range byAction(securityapi.AuthorizationPolicy_DENY) {
		if m.matches(p, r) {
			return Verdict{Allow: false, By: "DENY " + p.String()}, nil
		}
	}
	allows := byAction(securityapi.AuthorizationPolicy_ALLOW)
	if len(allows) == 0 {
		return Verdict{Allow: true, By: "no ALLOW policy"}, nil
	}
	var matched []string
	for _, p := range allows {
		if m.matches(p, r) {
			matched = append(matched, p.String())
		}
	}
	if len(matched) > 0 {
		return Verdict{Allow: true, By: "ALLOW " + strings.Join(matched, ", ")}, nil
	}
	return Verdict{Allow: false, By: "no ALLOW policy matches"}, nil
}

func (m Mesh) root() string {
	if m.RootNamespace == "" {
		return defaultRootNamespace
	}
	return m.RootNamespace
}

// trustDomains is the mesh's trust domain, then its aliases [TD].
func (m Mesh) trustDomains() []string {
	td := m.TrustDomain
	if td == "" {
		td = defaultTrustDomain
	}
	return append([]string{td}, m.TrustDomainAliases...)
}

// applies: a policy applies to the workloads of its namespace, or of every
// namespace when it sits in the root namespace; a selector narrows that to
// the workloads carrying all its labels, and no selector means all of them
// [AP "selector"].
func (m Mesh) applies(p AuthzPolicy, w Workload) bool {
	if p.Namespace != w.Namespace && p.Namespace != m.root() {
		return false
	}
	for k, v := range p.Spec.GetSelector().GetMatchLabels() {
		if got, ok := w.Labels[k]; !ok || got != v {
			return false
		}
	}
	return true
}

// matches: a policy matches when at least one of its rules does; a policy
// without rules never matches [AP "rules"] (so an ALLOW policy without rules
// allows nothing, [PREC] "allow-nothing").
func (m Mesh) matches(p AuthzPolicy, r Request) bool {
	for _, rule := range p.Spec.GetRules() {
		if m.ruleMatches(rule, r) {
			return true
		}
	}
	return false
}

// ruleMatches: at least one source, one operation and all conditions; an
// unset from, to or when matches anything, so an empty rule always matches
// [AP "Rule"].
func (m Mesh) ruleMatches(rule *securityapi.Rule, r Request) bool {
	if from := rule.GetFrom(); len(from) > 0 && !slices.ContainsFunc(from, func(f *securityapi.Rule_From) bool {
		return m.sourceMatches(f.GetSource(), r)
	}) {
		return false
	}
	if to := rule.GetTo(); len(to) > 0 && !slices.ContainsFunc(to, func(t *securityapi.Rule_To) bool {
		return operationMatches(t.GetOperation(), r)
	}) {
		return false
	}
	for _, c := range rule.GetWhen() {
		if !m.conditionMatches(c, r) {
			return false
		}
	}
	return true
}

// sourceMatches: the fields of a source are ANDed; a list matches when one
// of its entries does, a not-list when none does, an unset list always
// [AP "Source"]. principals and namespaces come from the peer certificate,
// so a plain-text request has neither: it matches no principals or
// namespaces list and every notPrincipals or notNamespaces list.
func (m Mesh) sourceMatches(s *securityapi.Source, r Request) bool {
	ns := principalNamespace(r.Principal)
	return listMatches(m.expandPrincipals(s.GetPrincipals()), m.expandPrincipals(s.GetNotPrincipals()), r.Principal, stringMatch) &&
		listMatches(s.GetNamespaces(), s.GetNotNamespaces(), ns, stringMatch)
}

// operationMatches: the fields of an operation are ANDed [AP "Operation"];
// hosts match case-insensitively, ports exactly.
func operationMatches(o *securityapi.Operation, r Request) bool {
	port := strconv.Itoa(r.Port)
	return listMatches(o.GetHosts(), o.GetNotHosts(), strings.ToLower(r.Host), func(p, v string) bool {
		return stringMatch(strings.ToLower(p), v)
	}) &&
		listMatches(o.GetPorts(), o.GetNotPorts(), port, func(p, v string) bool { return p == v }) &&
		listMatches(o.GetMethods(), o.GetNotMethods(), r.Method, stringMatch) &&
		listMatches(o.GetPaths(), o.GetNotPaths(), r.Path, stringMatch)
}

// conditionMatches: a condition matches when the attribute matches one of
// values (if set) and none of notValues [AP "Condition"]. The keys are those
// of [COND]: request.headers[NAME] (the header's value; an absent header is
// an empty value), source.namespace and source.principal (from the peer
// certificate, so empty for plain text), destination.port.
func (m Mesh) conditionMatches(c *securityapi.Condition, r Request) bool {
	key := c.GetKey()
	values, notValues := c.GetValues(), c.GetNotValues()
	var got string
	switch {
	case key == "source.namespace":
		got = principalNamespace(r.Principal)
	case key == "source.principal":
		got = r.Principal
		values, notValues = m.expandPrincipals(values), m.expandPrincipals(notValues)
	case key == "destination.port":
		got = strconv.Itoa(r.Port)
	default:
		name, _ := headerKey(key)
		got = header(r.Headers, name)
	}
	return listMatches(values, notValues, got, stringMatch)
}

// listMatches applies a list and its negative list to one value: the value
// must match one entry of in (when in is set) and no entry of notIn.
func listMatches(in, notIn []string, value string, match func(pattern, value string) bool) bool {
	if len(in) > 0 && !slices.ContainsFunc(in, func(p string) bool { return match(p, value) }) {
		return false
	}
	return !slices.ContainsFunc(notIn, func(p string) bool { return match(p, value) })
}

// stringMatch is the match every string field of a rule supports [AP
// "Rule"]: "abc" exact, "abc*" prefix (matches "abc" and "abcd"), "*abc"
// suffix (matches "abc" and "xabc"), "*" presence (any non-empty value).
func stringMatch(pattern, value string) bool {
	switch {
	case pattern == "*":
		return value != ""
	case strings.HasPrefix(pattern, "*"):
		return strings.HasSuffix(value, pattern[1:])
	case strings.HasSuffix(pattern, "*"):
		return strings.HasPrefix(value, pattern[:len(pattern)-1])
	default:
		return value == pattern
	}
}

// expandPrincipals rewrites the trust domain of each principal as Istio
// does [TD]: a principal TD/ns/N/sa/S whose TD is cluster.local, the mesh's
// trust domain or one of its aliases stands for the same account in the
// trust domain and in each alias; a principal whose trust domain is a
// pattern (starting with "*") or that is not in that form is kept as is.
func (m Mesh) expandPrincipals(principals []string) []string {
	var out []string
	domains := m.trustDomains()
	for _, p := range principals {
		parts := strings.Split(p, "/")
		if len(parts) != 5 || strings.HasPrefix(parts[0], "*") || (parts[0] != clusterLocal && !slices.Contains(domains, parts[0])) {
			out = append(out, p)
			continue
		}
		for _, td := range domains {
			q := td + "/" + strings.Join(parts[1:], "/")
			if !slices.Contains(out, q) {
				out = append(out, q)
			}
		}
	}
	return out
}

// principalNamespace is the namespace of a peer identity
// TD/ns/NAMESPACE/sa/SA, or "" (plain text, or not that form).
func principalNamespace(principal string) string {
	parts := strings.Split(principal, "/")
	if len(parts) != 5 || parts[1] != "ns" || parts[3] != "sa" {
		return ""
	}
	return parts[2]
}

func headerKey(key string) (string, bool) {
	rest, ok := strings.CutPrefix(key, "request.headers[")
	if !ok || !strings.HasSuffix(rest, "]") || len(rest) < 2 {
		return "", false
	}
	return strings.TrimSuffix(rest, "]"), true
}

func header(h map[string]string, name string) string {
	for k, v := range h {
		if strings.EqualFold(k, name) {
			return v
		}
	}
	return ""
}

// supported returns an error wrapping ErrUnsupported for the first field of
// the policy the evaluator does not model.
func supported(p AuthzPolicy) error {
	bad := func(what string) error {
		return fmt.Errorf("AuthorizationPolicy %s: %s: %w", p, what, ErrUnsupported)
	}
	if p.Spec == nil {
		return fmt.Errorf("AuthorizationPolicy %s: no spec", p)
	}
	if p.Spec.GetTargetRef() != nil || len(p.Spec.GetTargetRefs()) > 0 {
		return bad("targetRef(s) (policies for gateways and waypoints, not sidecars)")
	}
	switch p.Spec.GetAction() {
	case securityapi.AuthorizationPolicy_ALLOW, securityapi.AuthorizationPolicy_DENY, securityapi.AuthorizationPolicy_AUDIT:
		if p.Spec.GetProvider() != nil {
			return fmt.Errorf("AuthorizationPolicy %s: provider is only for action CUSTOM", p)
		}
	case securityapi.AuthorizationPolicy_CUSTOM:
		if p.Spec.GetProvider().GetName() == "" {
			return fmt.Errorf("AuthorizationPolicy %s: action CUSTOM needs provider.name", p)
		}
	default:
		return bad("action " + p.Spec.GetAction().String())
	}
	for i, rule := range p.Spec.GetRules() {
		for _, f := range rule.GetFrom() {
			s := f.GetSource()
			if len(s.GetRequestPrincipals())+len(s.GetNotRequestPrincipals()) > 0 {
				return bad(fmt.Sprintf("rule %d: requestPrincipals (JWT)", i))
			}
			if len(s.GetServiceAccounts())+len(s.GetNotServiceAccounts()) > 0 {
				return bad(fmt.Sprintf("rule %d: serviceAccounts", i))
			}
			if len(s.GetIpBlocks())+len(s.GetNotIpBlocks())+len(s.GetRemoteIpBlocks())+len(s.GetNotRemoteIpBlocks()) > 0 {
				return bad(fmt.Sprintf("rule %d: IP blocks", i))
			}
		}
		for _, t := range rule.GetTo() {
			o := t.GetOperation()
			for _, path := range append(slices.Clone(o.GetPaths()), o.GetNotPaths()...) {
				if strings.ContainsAny(path, "{}") {
					return bad(fmt.Sprintf("rule %d: path template %q", i, path))
				}
			}
			for _, port := range append(slices.Clone(o.GetPorts()), o.GetNotPorts()...) {
				if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
					return fmt.Errorf("AuthorizationPolicy %s: rule %d: port %q is not a port number", p, i, port)
				}
			}
		}
		for _, c := range rule.GetWhen() {
			if len(c.GetValues())+len(c.GetNotValues()) == 0 {
				return fmt.Errorf("AuthorizationPolicy %s: rule %d: condition %s has neither values nor notValues", p, i, c.GetKey())
			}
			switch k := c.GetKey(); k {
			case "source.namespace", "source.principal", "destination.port":
			default:
				if _, ok := headerKey(k); !ok {
					return bad(fmt.Sprintf("rule %d: condition key %q", i, k))
				}
			}
		}
	}
	return nil
}

// AuthzPolicies returns the bundle's AuthorizationPolicies for Evaluate.
func (b *Bundle) AuthzPolicies() []AuthzPolicy {
	var out []AuthzPolicy
	for _, o := range b.AuthorizationPolicies {
		out = append(out, AuthzPolicy{Namespace: o.Namespace, Name: o.Name,
			DryRun: o.Annotations["istio.io/dry-run"] == "true", Spec: &o.Spec})
	}
	return out
}

// DecodeAuthzPolicies decodes a YAML stream of AuthorizationPolicies, in
// security.istio.io/v1 or v1beta1 (what Kubeflow's profile controller
// writes), strictly as Bundle.Add does; any other kind is an error.
func DecodeAuthzPolicies(data []byte, source string) ([]AuthzPolicy, error) {
	docs, err := SplitYAML(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", source, err)
	}
	var out []AuthzPolicy
	for i, doc := range docs {
		var tm metav1.TypeMeta
		if err := yaml.Unmarshal(doc, &tm); err != nil {
			return nil, fmt.Errorf("%s: document %d: read apiVersion/kind: %w", source, i+1, err)
		}
		var meta metav1.ObjectMeta
		var spec *securityapi.AuthorizationPolicy
		switch tm.APIVersion + "/" + tm.Kind {
		case "security.istio.io/v1/AuthorizationPolicy":
			o := &istiosecurity.AuthorizationPolicy{}
			err = strictIstio(doc, &o.TypeMeta, &o.ObjectMeta, &o.Spec)
			meta, spec = o.ObjectMeta, &o.Spec
		case "security.istio.io/v1beta1/AuthorizationPolicy":
			o := &istiosecurityv1beta1.AuthorizationPolicy{}
			err = strictIstio(doc, &o.TypeMeta, &o.ObjectMeta, &o.Spec)
			meta, spec = o.ObjectMeta, &o.Spec
		default:
			return nil, fmt.Errorf("%s: document %d: %s/%s is not a security.istio.io AuthorizationPolicy", source, i+1, tm.APIVersion, tm.Kind)
		}
		if err != nil {
			return nil, fmt.Errorf("%s: document %d: %w", source, i+1, err)
		}
		if meta.Name == "" || meta.Namespace == "" {
			return nil, fmt.Errorf("%s: document %d: an AuthorizationPolicy in a cluster has metadata.name and metadata.namespace", source, i+1)
		}
		out = append(out, AuthzPolicy{Namespace: meta.Namespace, Name: meta.Name,
			DryRun: meta.Annotations["istio.io/dry-run"] == "true", Spec: spec})
	}
	return out, nil
}
