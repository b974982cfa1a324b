// Command ui serves kfllm's web UI: a page to ask the fine-tuned model a
// question about a context, which it answers by calling the serving API.
//
//	ui [--port 8081] [--api-url URL] [--model-name NAME] [--timeout 2m]
//	   [--max-new-tokens 512] [--rate-limit 1 --rate-burst 10]
//	   [--max-concurrent-per-client 2 --max-concurrent 16]
//	   [--trusted-proxies CIDR,...] [--trusted-gateway-id SPIFFE-ID]
//	   [--user-header kubeflow-userid] [--require-user]
//
// Environment (ConfigMap llm-ui-config): API_URL, MODEL_NAME, MAX_NEW_TOKENS,
// RATE_LIMIT, RATE_BURST, MAX_CONCURRENT_PER_CLIENT, MAX_CONCURRENT,
// TRUSTED_PROXIES, TRUSTED_GATEWAY_ID, USER_HEADER, REQUIRE_USER; a flag wins
// over its variable. They are read here and nowhere else.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"github.com/kfllm/kfllm/ui/server"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Getenv))
}

// run parses the command line, serves until ctx ends and returns the exit
// code: 0 after a clean shutdown, 1 when serving fails, 2 for bad usage.
func run(ctx context.Context, args []string, getenv func(string) string) int {
	opts, port, err := parse(args, getenv)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "ui: %v\n", err)
		return 2
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	opts.Logger = log
	srv, err := server.New(opts)
	if err != nil {
		fmt.Fprintf(os.Stderr, "ui: %v (set --api-url/API_URL and --model-name/MODEL_NAME)\n", err)
		return 2
	}
	ln, err := net.Listen("tcp", fmt.Sprintf(":%d", port))
	if err != nil {
		fmt.Fprintf(os.Stderr, "ui: listen: %v\n", err)
		return 1
	}
	log.Info("ui listening", "addr", ln.Addr().String(), "model", opts.ModelName, "max_new_tokens", opts.MaxNewTokens,
		"trusted_proxies", len(opts.TrustedProxies), "require_user", opts.RequireUser)
	if err := srv.Serve(ctx, ln); err != nil {
		fmt.Fprintf(os.Stderr, "ui: %v\n", err)
		return 1
	}
	return 0
}

// parse reads the flags, each defaulting to its environment variable.
func parse(args []string, getenv func(string) string) (server.Options, int, error) {
	var o server.Options
	fs := flag.NewFlagSet("ui", flag.ContinueOnError)
	envOr := func(name, def string) string {
		if v := getenv(name); v != "" {
			return v
		}
		return def
	}
	port := fs.Int("port", 8081, "TCP port to listen on")
	fs.StringVar(&o.APIURL, "api-url", getenv("API_URL"), "base URL of the serving API (env API_URL)")
	fs.StringVar(&o.ModelName, "model-name", getenv("MODEL_NAME"), "model name on the serving API (env MODEL_NAME)")
	fs.DurationVar(&o.Timeout, "timeout", server.DefaultTimeout, "longest time one answer may take")
	maxTokens := fs.String("max-new-tokens", envOr("MAX_NEW_TOKENS", strconv.Itoa(server.DefaultMaxNewTokens)),
		"largest max_new_tokens the page offers; the serving API's --max-new-tokens (env MAX_NEW_TOKENS)")
	rateLimit := fs.String("rate-limit", envOr("RATE_LIMIT", fmt.Sprint(server.DefaultRatePerClient)),
		"API requests per second one client address may make on average; negative: no limit (env RATE_LIMIT)")
	rateBurst := fs.String("rate-burst", envOr("RATE_BURST", strconv.Itoa(server.DefaultRateBurst)),
		"API requests one client address may make in a row (env RATE_BURST)")
	perClient := fs.String("max-concurrent-per-client", envOr("MAX_CONCURRENT_PER_CLIENT", strconv.Itoa(server.DefaultMaxConcurrentPerClient)),
		"generations one client address may have in flight; negative: no cap (env MAX_CONCURRENT_PER_CLIENT)")
	total := fs.String("max-concurrent", envOr("MAX_CONCURRENT", strconv.Itoa(server.DefaultMaxConcurrent)),
		"generations in flight for all clients together; negative: no cap (env MAX_CONCURRENT)")
	proxies := fs.String("trusted-proxies", getenv("TRUSTED_PROXIES"),
		"comma-separated CIDRs or addresses of proxies whose X-Forwarded-For and user header are believed; in the cluster the Istio sidecar, 127.0.0.6/32; empty: believe none (env TRUSTED_PROXIES)")
	fs.StringVar(&o.GatewayID, "trusted-gateway-id", getenv("TRUSTED_GATEWAY_ID"),
		"SPIFFE id of the ingress gateway; when set, a trusted proxy's headers are believed only if its X-Forwarded-Client-Cert names this peer (env TRUSTED_GATEWAY_ID)")
	fs.StringVar(&o.UserHeader, "user-header", envOr("USER_HEADER", server.DefaultUserHeader),
		"header with the signed-in user's id, set by Kubeflow's auth at the gateway (env USER_HEADER)")
	requireUser := fs.String("require-user", envOr("REQUIRE_USER", "false"),
		"refuse requests without a believed user header (env REQUIRE_USER)")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), "ui serves the kfllm web UI and calls the serving API for it.\n\nUsage: ui [flags]\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return o, 0, err
	}
	if fs.NArg() > 0 {
		return o, 0, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	var err error
	num := func(name, s string, dst *int) {
		if err == nil {
			if *dst, err = strconv.Atoi(strings.TrimSpace(s)); err != nil {
				err = fmt.Errorf("--%s %q: %w", name, s, err)
			}
		}
	}
	num("max-new-tokens", *maxTokens, &o.MaxNewTokens)
	num("rate-burst", *rateBurst, &o.RateBurst)
	num("max-concurrent-per-client", *perClient, &o.MaxConcurrentPerClient)
	num("max-concurrent", *total, &o.MaxConcurrent)
	if err != nil {
		return o, 0, err
	}
	if o.RatePerClient, err = strconv.ParseFloat(strings.TrimSpace(*rateLimit), 64); err != nil || o.RatePerClient == 0 {
		return o, 0, fmt.Errorf("--rate-limit %q: want a non-zero number (negative: no limit)", *rateLimit)
	}
	if o.RequireUser, err = strconv.ParseBool(strings.TrimSpace(*requireUser)); err != nil {
		return o, 0, fmt.Errorf("--require-user %q: %w", *requireUser, err)
	}
	if o.TrustedProxies, err = parsePrefixes(*proxies); err != nil {
		return o, 0, fmt.Errorf("--trusted-proxies: %w", err)
	}
	return o, *port, nil
}

// parsePrefixes reads "10.0.0.0/8, 127.0.0.6"; a bare address is its /32 or /128.
func parsePrefixes(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if p, err := netip.ParsePrefix(f); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(f)
		if err != nil {
			return nil, fmt.Errorf("%q is neither a CIDR nor an address", f)
		}
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}
