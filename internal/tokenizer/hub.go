package tokenizer

import (
	"context"
	"fmt"

	"github.com/kfllm/kfllm/internal/hub"
)

// HubFilePatterns are the files of a Hub repository that Load may read.
var HubFilePatterns = []string{"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
	"added_tokens.json", "tokenizer.model", "vocab.json", "merges.txt", "encoder.json", "vocab.bpe"}

// HubDownloader returns a Downloader that fetches HubFilePatterns of a
// repository into the Hub cache with c (a snapshot at the revision's commit).
func HubDownloader(ctx context.Context, c *hub.Client, progress func(file string, done, total int64)) Downloader {
	return func(ref string) (string, error) {
		repo, rev, err := hub.ParseRepoRef(ref)
		if err != nil {
			return "", err
		}
		dir, err := c.Snapshot(ctx, repo, rev, hub.SnapshotOptions{AllowPatterns: HubFilePatterns, Progress: progress})
		if err != nil {
			return "", fmt.Errorf("snapshot %s: %w", ref, err)
		}
		return dir, nil
	}
}
