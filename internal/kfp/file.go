package kfp

import (
	"fmt"
	"os"
	"path/filepath"
)

// WriteFile compiles p and writes its YAML to path, through a temporary file
// renamed into place so that a failed write never leaves a partial pipeline.
func WriteFile(path string, p *Pipeline) error {
	c, err := Compile(p)
	if err != nil {
		return fmt.Errorf("compile pipeline: %w", err)
	}
	b, err := Marshal(c)
	if err != nil {
		return err
	}
	if path == "-" {
		_, err := os.Stdout.Write(b)
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("write pipeline %s: %w", path, err)
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return fmt.Errorf("write pipeline %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write pipeline %s: %w", path, err)
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return fmt.Errorf("write pipeline %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write pipeline %s: %w", path, err)
	}
	return nil
}

// ReadFile reads a compiled pipeline YAML.
func ReadFile(path string) (*Compiled, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read pipeline: %w", err)
	}
	c, err := Unmarshal(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}
