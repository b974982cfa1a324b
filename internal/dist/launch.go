package dist

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os/exec"
	"strconv"
	"syscall"
	"time"
)

// LaunchOptions say how Launch starts a node's ranks.
type LaunchOptions struct {
	Procs  int      // ranks to start, 2 or more
	Path   string   // the program (os.Executable())
	Args   []string // its arguments, without the launcher's own flag
	Env    []string // the environment each rank inherits, before its rank's variables
	Stdout io.Writer
	Stderr io.Writer
	// MasterPort is the TCPStore's port on 127.0.0.1; 0 picks a free one.
	MasterPort int
	// Grace is how long the other ranks get, after SIGTERM, to exit once
	// one rank has failed or ctx is done, before SIGKILL (default 10 s).
	Grace time.Duration
}

// RankError is a rank's failure as Launch reports it.
type RankError struct {
	Rank int
	Code int // exit status; -1 when killed by a signal
	Err  error
}

func (e *RankError) Error() string { return fmt.Sprintf("rank %d: %v", e.Rank, e.Err) }
func (e *RankError) Unwrap() error { return e.Err }

// Launch runs Procs copies of Path on this machine as ranks 0..Procs-1 of
// one group (RANK, LOCAL_RANK, WORLD_SIZE, MASTER_ADDR=127.0.0.1,
// MASTER_PORT), as torchrun --nproc-per-node does, and waits for them. When
// one fails, or ctx is done, the others are stopped (SIGTERM, then SIGKILL
// after Grace); the error is the first failure, a *RankError.
func Launch(ctx context.Context, o LaunchOptions) error {
	if o.Procs < 2 {
		return fmt.Errorf("launch: %d processes: want 2 or more", o.Procs)
	}
	if o.Grace <= 0 {
		o.Grace = 10 * time.Second
	}
	port := o.MasterPort
	if port == 0 {
		var err error
		if port, err = freePort(); err != nil {
			return fmt.Errorf("launch: %w", err)
		}
	}
	type exit struct {
		rank int
		err  error
	}
	done := make(chan exit, o.Procs)
	cmds := make([]*exec.Cmd, 0, o.Procs)
	exited := make([]bool, o.Procs) // read and written by this goroutine only
	stop := func(sig syscall.Signal) {
		for r, c := range cmds {
			if !exited[r] {
				c.Process.Signal(sig)
			}
		}
	}
	for r := 0; r < o.Procs; r++ {
		e := Env{Rank: r, LocalRank: r, WorldSize: o.Procs, MasterAddr: "127.0.0.1", MasterPort: port}
		c := exec.Command(o.Path, o.Args...)
		c.Env = append(append([]string(nil), o.Env...), e.Vars()...)
		c.Stdout, c.Stderr = o.Stdout, o.Stderr
		if err := c.Start(); err != nil {
			stop(syscall.SIGKILL)
			for range cmds {
				<-done
			}
			return fmt.Errorf("launch rank %d: %w", r, err)
		}
		cmds = append(cmds, c)
		go func() { done <- exit{r, c.Wait()} }()
	}
	var first error
	var kill <-chan time.Time
	ctxDone := ctx.Done()
	for left := o.Procs; left > 0; {
		select {
		case x := <-done:
			left--
			exited[x.rank] = true
			if x.err != nil && first == nil {
				code := -1
				var ee *exec.ExitError
				if errors.As(x.err, &ee) {
					code = ee.ExitCode()
				}
				first = &RankError{Rank: x.rank, Code: code, Err: x.err}
				stop(syscall.SIGTERM)
				kill = time.After(o.Grace)
			}
		case <-ctxDone:
			ctxDone = nil
			if first == nil {
				first = fmt.Errorf("launch: %w", ctx.Err())
			}
			stop(syscall.SIGTERM)
			kill = time.After(o.Grace)
		case <-kill:
			stop(syscall.SIGKILL)
		}
	}
	return first
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("pick a master port: %w", err)
	}
	defer l.Close()
	_, p, _ := net.SplitHostPort(l.Addr().String())
	return strconv.Atoi(p)
}
