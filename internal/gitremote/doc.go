// Package gitremote publishes a model directory to a plain git remote: an
// http(s) URL served by any smart-HTTP git server (Gitea, GitLab, the Hugging
// Face Hub's git host, git-http-backend) or the path of a local bare
// repository, which is the offline default that `make demo` uses.
//
// Push builds one commit from the directory with go-git (no git binary is
// needed), on top of the remote branch when it exists, and pushes it. Files at
// or above a size threshold are stored as git-lfs pointer files and their
// contents go through the git-lfs batch API (basic transfer) before the commit
// is pushed; a remote without an LFS endpoint gets a clear refusal instead of
// a silently bloated history. For a local bare repository the LFS objects are
// written where git-lfs keeps them, <bare>/lfs/objects/<aa>/<bb>/<oid>.
//
// A rerun with unchanged files builds the same tree as the branch head and
// makes no new commit.
package gitremote
