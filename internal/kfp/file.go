package kfp

import (
	"fmt"
	"os"

	"github.com/google/renameio/v2"
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
	if err := renameio.WriteFile(path, b, 0o644); err != nil {
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
