package server

// upstreamStatus maps errors from remote backends (issue 13) to 502/504.
// The local backend has none, so it reports false.
func upstreamStatus(err error) (int, string, bool) {
	return 0, "", false
}
