package validate

import (
	"slices"
	"testing"
)

func TestComponentsAreTheMakefilesImages(t *testing.T) {
	got, err := MakefileImages(repoPath("Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, Components) {
		t.Errorf("make images builds %v, the manifests are checked against %v", got, Components)
	}
}
