package server

import (
	"errors"
	"strings"
	"testing"
)

// TestReadStream covers the parts of the SSE format a server may use:
// CRLF line ends, comments, event names and ids, data split over lines,
// and a last event without its blank line.
func TestReadStream(t *testing.T) {
	cases := []struct {
		name, in   string
		wantTokens []string
		wantPred   string
		wantErr    error
	}{
		{"plain", "data: {\"token\":\"a\"}\n\ndata: {\"token\":\"b\"}\n\ndata: {\"done\":true,\"prediction\":\"ab\",\"run_id\":\"r1\"}\n\n",
			[]string{"a", "b"}, "ab", nil},
		{"crlf, comments, event names", ": hello\r\nevent: message\r\nid: 1\r\ndata: {\"token\":\"x\"}\r\n\r\n: keepalive\r\n\r\ndata:{\"done\":true}\r\n\r\n",
			[]string{"x"}, "x", nil},
		{"data over two lines", "data: {\"token\":\ndata: \"y\"}\n\ndata: {\"done\":true,\"prediction\":\"y\"}",
			[]string{"y"}, "y", nil},
		{"error event", "data: {\"token\":\"a\"}\n\ndata: {\"error\":\"boom\"}\n\n", []string{"a"}, "", &APIError{}},
		{"no done", "data: {\"token\":\"a\"}\n\n", []string{"a"}, "", ErrAPIProtocol},
		{"not json", "data: <html>\n\n", nil, "", ErrAPIProtocol},
		{"empty", "", nil, "", ErrAPIProtocol},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var tokens []string
			done, err := readStream(strings.NewReader(tc.in), func(s string) error { tokens = append(tokens, s); return nil })
			if strings.Join(tokens, "|") != strings.Join(tc.wantTokens, "|") {
				t.Errorf("tokens %q, want %q", tokens, tc.wantTokens)
			}
			switch want := tc.wantErr.(type) {
			case nil:
				if err != nil || !done.Done || done.Prediction != tc.wantPred {
					t.Errorf("done %+v, err %v; want prediction %q", done, err, tc.wantPred)
				}
			case *APIError:
				var ae *APIError
				if !errors.As(err, &ae) || ae.Message != "boom" || ae.Status != 0 {
					t.Errorf("err %v, want the stream's error event", err)
				}
			default:
				if !errors.Is(err, want) {
					t.Errorf("err %v, want %v", err, want)
				}
			}
		})
	}
}

// TestReadStreamLimits: one over-long line fails cleanly instead of
// growing without bound.
func TestReadStreamLimits(t *testing.T) {
	in := "data: {\"token\":\"" + strings.Repeat("a", maxSSELine) + "\"}\n\n"
	_, err := readStream(strings.NewReader(in), func(string) error { return nil })
	if !errors.Is(err, ErrAPIProtocol) {
		t.Errorf("err %v, want a line-length error", err)
	}
}
