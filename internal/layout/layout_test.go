package layout

import (
	"bytes"
	"fmt"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/forumads/forumads/internal/testenv"
)

// module is this repository's module path.
const module = "github.com/forumads/forumads"

// rule is one dependency rule over the packages matching under.
type rule struct {
	name string
	// under is the `go list` pattern of the packages checked, relative to the module root.
	under string
	// tests also checks each package's test binary: everything `go test` links for it.
	tests bool
	// direct checks only the packages' own imports; otherwise everything they link.
	direct bool
	// forbidden are the import paths the packages must not import (direct) or link; "x/..."
	// matches x and every package below it.
	forbidden []string
	// allowed are the checked packages exempt from the rule (the adapters), as patterns.
	allowed []string
	// enforced fails the test on a violation. A rule not enforced yet logs its violations only:
	// it waits for the branch that removes them.
	enforced bool
}

// rules are the repository's dependency rules (issue 12, "Done when").
var rules = []rule{
	{
		name:  "the Celery library and its test binaries link no sqlx, lib/pq or ads code",
		under: "./celery/...",
		tests: true,
		forbidden: []string{
			"github.com/jmoiron/sqlx/...",
			"github.com/lib/pq/...",
			module, // schema.go: the ads schema
			module + "/ads/...",
			module + "/web/...",
			module + "/tasks", // registers the ads tasks (tasks/diag, the diagnostic tasks, is not ads code)
			module + "/tasks/ads/...",
			module + "/manage/...",
			module + "/internal/testdb/...",
		},
		enforced: true,
	},
	{
		name:      "amqp091-go is imported only by the AMQP adapter",
		under:     "./celery/...",
		direct:    true,
		forbidden: []string{"github.com/rabbitmq/amqp091-go/..."},
		allowed:   []string{module + "/celery/broker/amqpbroker/..."},
		enforced:  true,
	},
	{
		name:      "go-redis is imported only by the Redis adapters",
		under:     "./celery/...",
		direct:    true,
		forbidden: []string{"github.com/redis/go-redis/..."},
		allowed: []string{
			module + "/celery/backend/redisbackend/...",
			module + "/celery/broker/redisbroker/...",
			module + "/celery/beat/redisbeat/...",
			module + "/celery/revoke/redisrevoke/...",
			// Every Redis user's client (redis://, sentinel://) is built there, once, for the
			// adapters above and for Go users wiring them.
			module + "/celery/redisconn/...",
		},
		enforced: true,
	},
}

// TestDependencyRules checks every rule against the repository as `go list` sees it, naming each
// violation with the import chain that causes it.
func TestDependencyRules(t *testing.T) {
	for _, r := range rules {
		t.Run(r.under+" "+r.name, func(t *testing.T) {
			g := load(t, r.under, r.tests)
			vs := check(g, r)
			report := t.Logf
			if r.enforced {
				report = t.Errorf
			}
			for _, v := range vs {
				report("%s", strings.ReplaceAll(v, module+"/", "")) // module-relative, to read
			}
			if len(vs) > 0 && !r.enforced {
				t.Logf("%d violation(s) of a rule not enforced yet: set enforced once they are gone", len(vs))
			}
		})
	}
}

// TestCheckNamesTheChain proves the checker on a graph made up here: a forbidden package reached
// through a test binary is reported with its chain, a direct rule looks at direct imports only, and
// an allowed package is exempt.
func TestCheckNamesTheChain(t *testing.T) {
	g := &graph{
		roots: []string{"a", "a.test", "b", "c"},
		imports: map[string][]string{
			"a.test":       {"a [a.test]"},
			"a [a.test]":   {"fmt", "testenv"},
			"a":            {"fmt"},
			"testenv":      {"x/pq/sub"},
			"b":            {"x/amqp", "c"},
			"c":            {"x/amqp"},
			"x/amqp":       nil,
			"x/pq/sub":     nil,
			"fmt":          nil,
			"unreachable":  {"x/pq"},
			"x/pq":         nil,
			"x/unrelated/": nil,
		},
	}
	got := check(g, rule{forbidden: []string{"x/pq/..."}, tests: true})
	want := []string{"a.test links x/pq/sub: a.test → a [a.test] → testenv → x/pq/sub"}
	if !slices.Equal(got, want) {
		t.Errorf("transitive rule: got %q, want %q", got, want)
	}
	got = check(g, rule{forbidden: []string{"x/amqp"}, direct: true, allowed: []string{"c"}})
	want = []string{"b imports x/amqp"}
	if !slices.Equal(got, want) {
		t.Errorf("direct rule with c allowed: got %q, want %q", got, want)
	}
}

// graph is a package import graph from `go list -deps`.
type graph struct {
	// roots are the checked packages (and their test binaries, "p.test"), sorted.
	roots []string
	// imports are each package's direct imports, by import path as `go list` names it (a package
	// compiled for a test binary is "p [q.test]").
	imports map[string][]string
}

// load lists the packages matching pattern, with their test binaries when tests is set, and
// everything they import.
func load(t *testing.T, pattern string, tests bool) *graph {
	t.Helper()
	args := []string{"list", "-deps", "-f", "{{.ImportPath}}\t{{join .Imports \",\"}}"}
	if tests {
		args = append(args, "-test")
	}
	g := &graph{imports: map[string][]string{}}
	for _, line := range goList(t, append(args, pattern)...) {
		path, imps, _ := strings.Cut(line, "\t")
		g.imports[path] = nil
		if imps != "" {
			g.imports[path] = strings.Split(imps, ",")
		}
	}
	for _, p := range goList(t, "list", pattern) {
		g.roots = append(g.roots, p)
		if _, ok := g.imports[p+".test"]; ok && tests {
			g.roots = append(g.roots, p+".test")
		}
	}
	slices.Sort(g.roots)
	return g
}

// goList runs the go command in the repository's root and returns its output's lines.
func goList(t *testing.T, args ...string) []string {
	t.Helper()
	cmd := exec.Command(goTool(), args...)
	cmd.Dir = testenv.RepoRoot()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	var lines []string
	for _, l := range strings.Split(string(out), "\n") {
		if l != "" {
			lines = append(lines, l)
		}
	}
	return lines
}

// goTool is the go command of the toolchain that built this test.
func goTool() string {
	return filepath.Join(runtime.GOROOT(), "bin", "go") //lint:ignore SA1019 the toolchain running `go test` is the one to ask
}

// check returns the violations of r in g, one line each: the checked package, what it must not
// import or link, and (for a linked package) the import chain from the root to it.
func check(g *graph, r rule) []string {
	var vs []string
	for _, root := range g.roots {
		if strings.HasSuffix(root, ".test") && !r.tests {
			continue
		}
		if matchAny(r.allowed, strings.TrimSuffix(root, ".test")) {
			continue
		}
		if r.direct {
			for _, imp := range g.imports[root] {
				if matchAny(r.forbidden, plain(imp)) {
					vs = append(vs, fmt.Sprintf("%s imports %s", root, plain(imp)))
				}
			}
			continue
		}
		for _, chain := range forbiddenChains(g, root, r.forbidden) {
			last := plain(chain[len(chain)-1])
			vs = append(vs, fmt.Sprintf("%s links %s: %s", root, last, strings.Join(chain, " → ")))
		}
	}
	return vs
}

// forbiddenChains walks everything root links, breadth first, and returns the shortest import chain
// to each forbidden package it reaches, without walking on from a forbidden package.
func forbiddenChains(g *graph, root string, forbidden []string) [][]string {
	from := map[string]string{root: ""}
	queue := []string{root}
	var chains [][]string
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		if p != root && matchAny(forbidden, plain(p)) {
			var chain []string
			for q := p; q != ""; q = from[q] {
				chain = append(chain, q)
			}
			slices.Reverse(chain)
			chains = append(chains, chain)
			continue
		}
		for _, imp := range g.imports[p] {
			if _, seen := from[imp]; !seen {
				from[imp] = p
				queue = append(queue, imp)
			}
		}
	}
	return chains
}

// plain is the import path of a package `go list -test` names "p [q.test]".
func plain(p string) string {
	p, _, _ = strings.Cut(p, " ")
	return p
}

// matchAny reports whether path matches one of patterns: "x/..." matches x and every package below
// it, anything else only itself.
func matchAny(patterns []string, path string) bool {
	for _, pat := range patterns {
		if base, ok := strings.CutSuffix(pat, "/..."); ok {
			if path == base || strings.HasPrefix(path, base+"/") {
				return true
			}
		} else if path == pat {
			return true
		}
	}
	return false
}
