package langsmith

// Clip is clip, for tests that quote user input.
var Clip = clip
