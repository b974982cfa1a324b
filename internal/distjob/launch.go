package distjob

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"time"
)

// Launcher runs a [Plan] on a cluster.
type Launcher struct {
	Client *Client
	// Poll is how often the job's status is read (default 10 s).
	Poll time.Duration
	// Timeout bounds the wait for the job (0: no bound).
	Timeout time.Duration
	// Progress receives a line per status change (nil: none).
	Progress io.Writer
}

// ErrJobFailed is wrapped by the error of a job that ended without success
// or did not end in time.
var ErrJobFailed = errors.New("distributed job failed")

// Launch stages the plan's inputs on the shared claim, creates the job,
// waits for it and copies its outputs to the task's paths. Cancelled or
// timed out, it deletes the job (its pods go with it) before returning; a
// job that failed is kept, for its pods' logs, until the operator's TTL.
// The staging directory is removed at the end; the checkpoints stay.
func (l *Launcher) Launch(ctx context.Context, p Plan) (err error) {
	s := p.Spec
	job := fmt.Sprintf("%s %s/%s", s.Runtime.Kind(), s.Namespace, s.Name)
	defer func() {
		if rerr := os.RemoveAll(p.Dir); rerr != nil && err == nil {
			err = fmt.Errorf("remove staging %s: %w", p.Dir, rerr)
		}
	}()
	for _, m := range p.Inputs {
		if err := copyPath(m.From, m.To); err != nil {
			return fmt.Errorf("stage input for %s: %w", job, err)
		}
	}
	if err := os.MkdirAll(filepath.Join(p.Dir, "out"), 0o755); err != nil {
		return fmt.Errorf("stage outputs for %s: %w", job, err)
	}
	// A task retried after its pod was lost (node failure) left its job
	// running on the same checkpoints: only one job may write them.
	stale, err := l.Client.Running(ctx, s.Runtime, s.Namespace, s.Claim)
	if err != nil {
		return err
	}
	for _, name := range stale {
		if name == s.Name {
			continue
		}
		if err := l.Client.Delete(ctx, s.Runtime, s.Namespace, name); err != nil {
			return err
		}
		l.printf("finetune: deleted %s %s/%s, still running on claim %s (a lost earlier attempt)", s.Runtime.Kind(), s.Namespace, name, s.Claim)
	}
	if err := l.Client.Create(ctx, s); err != nil {
		var ae *APIError
		if !errors.As(err, &ae) || ae.Code != http.StatusConflict {
			return err
		}
		l.printf("finetune: %s exists already (this pod created it): waiting for it", job)
	} else {
		l.printf("finetune: created %s: %d workers running %s", job, s.Workers, s.Image)
	}
	if err := l.wait(ctx, s, job); err != nil {
		if errors.Is(err, ErrJobFailed) && !errors.Is(err, context.DeadlineExceeded) {
			return err
		}
		// Cancelled or out of time: the job must not outlive the task.
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		if derr := l.Client.Delete(dctx, s.Runtime, s.Namespace, s.Name); derr != nil {
			return errors.Join(err, derr)
		}
		l.printf("finetune: deleted %s", job)
		return err
	}
	for _, m := range p.Outputs {
		if err := copyPath(m.From, m.To); err != nil {
			return fmt.Errorf("copy output of %s: %w", job, err)
		}
	}
	return nil
}

func (l *Launcher) printf(format string, a ...any) {
	if l.Progress != nil {
		fmt.Fprintf(l.Progress, format+"\n", a...)
	}
}

// wait polls the job until it is done, ctx ends or the timeout passes.
func (l *Launcher) wait(ctx context.Context, s Spec, job string) error {
	poll := l.Poll
	if poll <= 0 {
		poll = 10 * time.Second
	}
	start := time.Now()
	var deadline <-chan time.Time
	if l.Timeout > 0 {
		t := time.NewTimer(l.Timeout)
		defer t.Stop()
		deadline = t.C
	}
	tick := time.NewTicker(poll)
	defer tick.Stop()
	last, lastErr := Status{Phase: "-"}, ""
	for {
		st, err := l.Client.Get(ctx, s.Runtime, s.Namespace, s.Name)
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case IsNotFound(err):
			return fmt.Errorf("%w: %s was deleted while running", ErrJobFailed, job)
		case err != nil:
			// The API server may blip; the timeout bounds the retries.
			if err.Error() != lastErr {
				l.printf("finetune: %s: %v (retrying)", job, err)
				lastErr = err.Error()
			}
		case st.Done && st.Failed:
			return fmt.Errorf("%w: %s: %s (the ranks' logs: kubectl logs -n %s -l training.kubeflow.org/job-name=%s or jobset.sigs.k8s.io/jobset-name=%s)",
				ErrJobFailed, job, st.Message, s.Namespace, s.Name, s.Name)
		case st.Done:
			l.printf("finetune: %s %s after %s", job, st.Phase, time.Since(start).Round(time.Second))
			return nil
		case st != last:
			line := st.Phase
			if line == "" {
				line = "waiting for the operator"
			}
			if st.Message != "" {
				line += ": " + st.Message
			}
			l.printf("finetune: %s: %s (%s)", job, line, time.Since(start).Round(time.Second))
			last, lastErr = st, ""
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-deadline:
			return fmt.Errorf("%w: %s did not finish within %s: %w", ErrJobFailed, job, l.Timeout, context.DeadlineExceeded)
		case <-tick.C:
		}
	}
}

// copyPath copies a file or a directory tree from src to dst through a
// temporary name beside dst, so dst is complete or absent. An existing
// empty directory at dst (an output path made by the KFP launcher) is
// replaced.
func copyPath(src, dst string) error {
	fi, err := os.Stat(src)
	if err != nil {
		return fmt.Errorf("copy %s: %w", src, err)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return fmt.Errorf("copy to %s: %w", dst, err)
	}
	tmp := dst + ".partial"
	if err := os.RemoveAll(tmp); err != nil {
		return fmt.Errorf("copy to %s: %w", dst, err)
	}
	if fi.IsDir() {
		err = os.CopyFS(tmp, os.DirFS(src))
	} else {
		err = copyFile(src, tmp, fi.Mode().Perm())
	}
	if err != nil {
		os.RemoveAll(tmp)
		return fmt.Errorf("copy %s to %s: %w", src, dst, err)
	}
	if d, err := os.ReadDir(dst); err == nil && len(d) == 0 {
		os.Remove(dst)
	}
	if err := os.Rename(tmp, dst); err != nil {
		os.RemoveAll(tmp)
		return fmt.Errorf("copy %s to %s: %w", src, dst, err)
	}
	return nil
}

func copyFile(src, dst string, perm fs.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
