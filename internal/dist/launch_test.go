package dist

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Launch gives each child its rank's variables; when one rank fails the
// others are stopped and the failure comes back with its rank and status.
func TestLaunchStopsTheOthersOnFailure(t *testing.T) {
	dir := t.TempDir()
	// Rank 1 exits 3 once every rank has written its variables; the others
	// would sleep for a minute unless stopped.
	script := `echo "$RANK $LOCAL_RANK $WORLD_SIZE $MASTER_ADDR $MASTER_PORT" > "$DIR/rank$RANK"
if [ "$RANK" = 1 ]; then
  while [ "$(ls "$DIR" | wc -l)" -lt 3 ]; do sleep 0.05; done
  exit 3
fi
exec sleep 60`
	start := time.Now()
	err := Launch(context.Background(), LaunchOptions{Procs: 3, Path: "/bin/sh", Args: []string{"-c", script},
		Env: append(os.Environ(), "DIR="+dir), Stdout: os.Stderr, Stderr: os.Stderr, MasterPort: 29555, Grace: 5 * time.Second})
	var re *RankError
	if !errors.As(err, &re) || re.Rank != 1 || re.Code != 3 {
		t.Fatalf("Launch = %v, want rank 1's exit status 3", err)
	}
	if d := time.Since(start); d > 30*time.Second {
		t.Errorf("Launch took %v: the sleeping ranks were not stopped", d)
	}
	for r, want := range []string{"0 0 3 127.0.0.1 29555", "1 1 3 127.0.0.1 29555", "2 2 3 127.0.0.1 29555"} {
		b, err := os.ReadFile(filepath.Join(dir, "rank"+string(rune('0'+r))))
		if err != nil || strings.TrimSpace(string(b)) != want {
			t.Errorf("rank %d saw %q (%v), want %q", r, b, err, want)
		}
	}
}

func TestLaunchAllSucceed(t *testing.T) {
	if err := Launch(context.Background(), LaunchOptions{Procs: 2, Path: "/bin/true"}); err != nil {
		t.Fatalf("Launch of two successful ranks = %v", err)
	}
	if err := Launch(context.Background(), LaunchOptions{Procs: 1, Path: "/bin/true"}); err == nil {
		t.Fatal("Launch of one process: no error")
	}
}
