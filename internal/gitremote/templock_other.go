//go:build !unix

package gitremote

// lockTemps does nothing where flock is missing: stale temporary files are
// then left for the user to remove.
func lockTemps(string) (func(), error) { return func() {}, nil }
