// Package prompt holds THE prompt template of kfllm (docs/design.md §4), shared by
// tokenize (training) and serving (inference) so that a model is asked what
// it was trained on, and turns a question-answering record into the token ids
// and loss labels of one training example.
package prompt
