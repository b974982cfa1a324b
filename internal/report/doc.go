// Package report draws a fine-tuning run where its users look: loss curves
// and the learning-rate schedule as SVG, the evaluation table as Markdown,
// both in a self-contained HTML page, and a one-line text sparkline of the
// loss for a terminal.
//
// It reads what finetune leaves in the model directory (docs/design.md §3):
// training_log.jsonl, one JSON object a line, training lines
// {"step","epoch","loss","learning_rate","grad_norm","tokens_per_second"} and
// evaluation lines {"step","eval_loss","eval_perplexity"}; and metrics.json
// {"train_loss","eval_loss","eval_perplexity","qa":{"before","after"},
// "steps","train_runtime_seconds","tokens_per_second"}. Any field may be
// missing (a language-modelling run has no "qa", a short one no eval lines);
// what is missing is left out of the pictures, not drawn as zero.
//
// Where the pictures go:
//   - [WriteArtifacts]: finetune's KFP output artifacts, system.HTML (the
//     KFP UI's Visualizations tab) and system.Markdown;
//   - [WriteCardAssets]: training_curves.svg beside the model card, which
//     internal/modelcard links from README.md on the Hugging Face page;
//   - [Summary]: the table and sparkline at the end of `pipeline local` and
//     `make demo`, with the HTML report written to the run's directory.
//
// The package is pure Go with no dependencies beyond the standard library,
// so that the pipeline runner and the UI can use it without libtorch.
package report
