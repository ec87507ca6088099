// Package passthrough is a Traefik middleware plugin that passes every request on unchanged. The
// benchmark runs it beside the nextAuth plugin: Traefik with it against Traefik without middleware is
// what any plugin costs a request (Yaegi calling into the plugin and back), and the nextAuth plugin
// against it is what the plugin's own work costs.
package passthrough

import (
	"context"
	"net/http"
)

// Config is empty: the plugin has nothing to configure.
type Config struct{}

// CreateConfig returns the empty configuration.
func CreateConfig() *Config {
	return &Config{}
}

type passThrough struct {
	next http.Handler
}

// New returns the middleware in front of next.
func New(_ context.Context, next http.Handler, _ *Config, _ string) (http.Handler, error) {
	return &passThrough{next: next}, nil
}

func (p *passThrough) ServeHTTP(rw http.ResponseWriter, req *http.Request) {
	p.next.ServeHTTP(rw, req)
}
