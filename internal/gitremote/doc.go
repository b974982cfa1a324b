// Package gitremote publishes a model directory to a plain git remote: an
// http(s) URL served by any smart-HTTP git server (Gitea, GitLab, the Hugging
// Face Hub's git host, git-http-backend) or the path of a local bare
// repository, which is the offline default that `make demo` uses.
//
// Push builds one commit from the directory with go-git (no git binary is
// needed), on top of the remote branch when it exists, and pushes it. Without
// a branch it commits to the one the remote's HEAD names, also in an empty
// repository (protocol v2 ls-refs "unborn" over http), so that `git clone`
// checks the files out; "main" when the remote does not say. Files at or
// above a size threshold are stored as git-lfs pointer files and their
// contents go through the git-lfs batch API (basic transfer) before the commit
// is pushed; a remote without an LFS endpoint gets a clear refusal instead of
// a silently bloated history. For a local bare repository the LFS objects are
// written where git-lfs keeps them, <bare>/lfs/objects/<aa>/<bb>/<oid>,
// through fsynced temporary files in <bare>/lfs/tmp that the next upload
// removes when a killed one left them.
//
// The branch is only ever moved from the head the commit was built on: under
// git's <ref>.lock for a local repository, by a fast-forward push that
// requires the fetched head on a remote. When another upload moved the branch
// meanwhile, Push commits the same tree again on top of the new head, as the
// Hub applies a commit made without parentCommit to the branch's current head:
// both commits stay in the history, the later one's files are the tip, and no
// update is lost silently. After pushAttempts such rounds it gives up with
// ErrBranchMoved.
//
// A rerun with unchanged files builds the same tree as the branch head and
// makes no new commit.
package gitremote
