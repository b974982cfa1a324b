package validate

import (
	"slices"
	"testing"
)

func TestComponentsAreTheListsImages(t *testing.T) {
	got, err := ListedImages(repoPath("components.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, Components) {
		t.Errorf("components.txt lists the images %v, the manifests are checked against %v", got, Components)
	}
}
