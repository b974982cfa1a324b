package kfllm

import (
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
)

// TestRepositoryStandsAlone keeps the contracts readable by anyone who
// clones the repository: no tracked file points at a file outside it (such
// as a ../shared/ folder), and every "docs/design.md §N" citation names a
// section that docs/design.md has.
func TestRepositoryStandsAlone(t *testing.T) {
	out, err := exec.Command("git", "ls-files", "-z").Output()
	if err != nil {
		t.Skipf("not a git checkout: %v", err)
	}
	design, err := os.ReadFile("docs/design.md")
	if err != nil {
		t.Fatalf("the contracts must live in the repository: %v", err)
	}
	sections := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^## (\d+)\. `).FindAllStringSubmatch(string(design), -1) {
		sections[m[1]] = true
	}
	outside := regexp.MustCompile(`\.\./shared/|shared/DESIGN\.md`)
	cite := regexp.MustCompile(`docs/design\.md` + "`?" + ` ?((?:§\d+(?:, )?)+)`)
	num := regexp.MustCompile(`§(\d+)`)
	cited := 0
	for _, path := range strings.Split(strings.TrimRight(string(out), "\x00"), "\x00") {
		if path == "standalone_test.go" || strings.HasPrefix(path, "testdata/") {
			continue
		}
		b, err := os.ReadFile(path)
		if err != nil || strings.IndexByte(string(b), 0) >= 0 {
			continue // a deleted file in the work tree, or binary data
		}
		text := string(b)
		if loc := outside.FindStringIndex(text); loc != nil {
			line := strings.Count(text[:loc[0]], "\n") + 1
			t.Errorf("%s:%d points outside the repository: %q", path, line, text[loc[0]:loc[1]])
		}
		for _, m := range cite.FindAllStringSubmatch(text, -1) {
			for _, n := range num.FindAllStringSubmatch(m[1], -1) {
				cited++
				if !sections[n[1]] {
					t.Errorf("%s cites docs/design.md §%s, which does not exist", path, n[1])
				}
			}
		}
	}
	if cited == 0 {
		t.Error("found no docs/design.md citations: the check read nothing")
	}
}
