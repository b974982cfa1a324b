package records

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

// plainServer is an ordinary web server (not the Hub) serving fixed files.
type plainServer struct {
	*httptest.Server
	mu   sync.Mutex
	auth string
}

func newPlainServer(t *testing.T, files map[string][]byte) *plainServer {
	p := &plainServer{}
	p.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		p.auth = r.Header.Get("Authorization")
		p.mu.Unlock()
		b, ok := files[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(b))
	}))
	t.Cleanup(p.Close)
	return p
}

func (p *plainServer) lastAuth() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.auth
}
