package tokenizer

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// Expected values are Python's bytes.decode("utf-8", errors="replace"),
// which HF's Python users feed the library; Go's strings.ToValidUTF8 differs.
func TestValidUTF8(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"\x61\xf1\x80\x80\xe1\x80\xc2\x62\x80\x63\x80\xbf\x64", "a\ufffd\ufffd\ufffdb\ufffdc\ufffd\ufffdd"},
		{"\xe0\x80\xaf", "\ufffd\ufffd\ufffd"},
		{"\xed\xa0\x80\x78", "\ufffd\ufffd\ufffdx"},
		{"\xf4\x90\x80\x80", "\ufffd\ufffd\ufffd\ufffd"},
		{"\xf0\x9f\x98", "\ufffd"},
		{"\xe2\x82", "\ufffd"},
		{"\xc0\xaf\xff\xfe", "\ufffd\ufffd\ufffd\ufffd"},
		{"\x6f\x6b\x20\xf0\x9f\x98\x80", "ok \U0001f600"},
		{"\xf0\x9f\x98\xe2\x82\xac", "\ufffd\u20ac"},
		{"\x80", "\ufffd"},
	} {
		if got := ValidUTF8(c.in); got != c.want {
			t.Errorf("ValidUTF8(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func FuzzValidUTF8(f *testing.F) {
	f.Add("caf\xe9 \xf0\x9f\x98")
	f.Fuzz(func(t *testing.T, s string) {
		got := ValidUTF8(s)
		if !utf8.ValidString(got) {
			t.Fatalf("ValidUTF8(%q) = %q is not valid", s, got)
		}
		if utf8.ValidString(s) && got != s {
			t.Fatalf("valid input changed")
		}
		// Replacement never merges more than a whole run of invalid bytes.
		if strings.Count(got, "\ufffd") < strings.Count(strings.ToValidUTF8(s, "\ufffd"), "\ufffd") {
			t.Fatalf("fewer replacements than runs of invalid bytes: %q -> %q", s, got)
		}
	})
}
