// Package nextauth is a Traefik middleware plugin that protects applications with a nextAuth IdP session
// without asking the IdP on every request.
//
// It makes the decision the IdP's forward-auth endpoint (/auth/forward) makes, in the same order
// (idp/forwardauth/decision.py), from what the IdP publishes: the session keys (/auth/keys), the policy
// (/auth/policy: cookie name, issuer, header names, access rules) and the ended sessions (/auth/ended).
// Whenever it cannot be sure (a key it has not seen, an ended list older than maxStaleSeconds, a rule it
// does not understand) it asks /auth/forward exactly as Traefik's forwardAuth middleware would, and
// answers what the IdP answers.
//
// Traefik runs it with its Go interpreter (Yaegi); it uses the standard library only.
package nextauth

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

const (
	maxOriginalURL = 2048
	forbiddenHTML  = "<!doctype html>\n<html lang=\"en\"><meta charset=\"utf-8\"><title>Not allowed</title>\n" +
		"<h1>Not allowed</h1>\n<p>You are logged in, but your account may not open this page.</p>\n</html>\n"
)

// Hop-by-hop headers (RFC 9110 section 7.6.1) stay between this proxy and its peers.
var hopHeaders = []string{
	"Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization", "Proxy-Connection", "Te",
	"Trailer", "Transfer-Encoding", "Upgrade",
}

// Config is the middleware's dynamic configuration.
type Config struct {
	// IdpURL is the address this plugin reaches the IdP at (e.g. http://idp:8000), not necessarily its
	// public one.
	IdpURL string `json:"idpUrl,omitempty"`
	// Token is NEXTAUTH_IDP_FORWARD_AUTH_PLUGIN_TOKEN when the IdP has one.
	Token string `json:"token,omitempty"`
	// RefreshSeconds: how old the ended-session list may be before a request with a session waits for a
	// fresh one; a logout at the IdP counts within this time (plus the IdP's 1.5 s cache).
	RefreshSeconds int `json:"refreshSeconds,omitempty"`
	// MaxStaleSeconds: an ended list older than this is not trusted; the IdP decides instead.
	MaxStaleSeconds int `json:"maxStaleSeconds,omitempty"`
	// PolicyRefreshSeconds: how often the keys and the policy are fetched.
	PolicyRefreshSeconds int `json:"policyRefreshSeconds,omitempty"`
	// TimeoutSeconds bounds every call to the IdP.
	TimeoutSeconds int `json:"timeoutSeconds,omitempty"`
}

// CreateConfig returns the defaults.
func CreateConfig() *Config {
	return &Config{RefreshSeconds: 2, MaxStaleSeconds: 10, PolicyRefreshSeconds: 30, TimeoutSeconds: 5}
}

// Middleware is one instance of the plugin in a router's chain.
type Middleware struct {
	next         http.Handler
	name         string
	state        *idpState
	endedEvery   int64 // nanoseconds, as the times on the request path
	maxStale     time.Duration
	policyEvery  int64 // nanoseconds
	policyMaxAge int64 // nanoseconds
}

// New checks the configuration and starts reading from the IdP.
func New(ctx context.Context, next http.Handler, config *Config, name string) (http.Handler, error) {
	base := strings.TrimRight(strings.TrimSpace(config.IdpURL), "/")
	parsed, err := url.Parse(base)
	if err != nil || (parsed.Scheme != "http" && parsed.Scheme != "https") || parsed.Host == "" {
		return nil, fmt.Errorf("nextauth: idpUrl %q: expected the http(s) address of the IdP", config.IdpURL)
	}
	if config.RefreshSeconds < 1 || config.PolicyRefreshSeconds < 1 || config.TimeoutSeconds < 1 {
		return nil, fmt.Errorf("nextauth: refreshSeconds, policyRefreshSeconds and timeoutSeconds must be at least 1")
	}
	if config.MaxStaleSeconds < config.RefreshSeconds {
		return nil, fmt.Errorf("nextauth: maxStaleSeconds must be at least refreshSeconds")
	}
	m := &Middleware{
		next:        next,
		name:        name,
		state:       stateFor(base, config.Token, time.Duration(config.TimeoutSeconds)*time.Second),
		endedEvery:  int64(config.RefreshSeconds) * int64(time.Second),
		maxStale:    time.Duration(config.MaxStaleSeconds) * time.Second,
		policyEvery: int64(config.PolicyRefreshSeconds) * int64(time.Second),
	}
	// Rules and keys may lag the IdP by a few refreshes, never by much more.
	m.policyMaxAge = 3*m.policyEvery + int64(m.maxStale)
	refresh(m.state, time.Now().UnixNano(), m.policyEvery)
	return m, nil
}

func (m *Middleware) ServeHTTP(rw http.ResponseWriter, req *http.Request) {
	// Times on the request path are Unix nanoseconds: each method call on a time.Time is a reflected call
	// into native code under Yaegi, an int64 comparison is not.
	// The request path calls functions, not methods: Yaegi calls an interpreted method through a
	// reflected function value made for each call, several times the cost of a function call. Each call
	// also allocates a frame and every value the function's body names, whichever branch runs: a
	// remembered request makes three calls (refresh, remembered, stripIdentity) and is passed on here,
	// as pass would (the other requests go through decideAndServe).
	now := time.Now().UnixNano()
	snap := refresh(m.state, now, m.policyEvery)
	key, who := remembered(m, snap, req, now)
	if who == nil {
		m.decideAndServe(rw, req, snap, now, key)
		return
	}
	p := snap.policy
	stripIdentity(req.Header, p)
	for i, name := range p.headerKeys {
		req.Header[name] = []string{who.values[i]} // a slice of its own: later handlers may change it
	}
	m.next.ServeHTTP(rw, req)
}

// remembered: the session of a request let through under this snapshot with the same token and request
// line, if its token has not expired, the ended list is current and its session is not on it; else nil,
// with the key to remember the request by if it passes now ("" when there is no cookie).
func remembered(m *Middleware, snap *snapshot, req *http.Request, now int64) (string, *session) {
	p := snap.policy
	if p == nil {
		return "", nil
	}
	cookie, cookieErr := req.Cookie(p.Cookie)
	if cookieErr != nil {
		return "", nil
	}
	scheme := "http"
	if req.TLS != nil {
		scheme = "https"
	}
	// NUL occurs in none of the parts (net/http refuses it in request lines, hosts and cookie values).
	key := scheme + "\x00" + req.Method + "\x00" + req.Host + "\x00" + req.URL.RequestURI() + "\x00" + cookie.Value
	snap.passes.mu.Lock()
	found, known := snap.passes.passes[key]
	snap.passes.mu.Unlock()
	if !known || now >= found.until || now-snap.policyAt > m.policyMaxAge ||
		!snap.haveEnded || now-snap.endedAt > m.endedEvery {
		return key, nil
	}
	if _, isEnded := snap.ended[found.who.Sid]; isEnded {
		return key, nil
	}
	return key, found.who
}

// decideAndServe makes the decision /auth/forward would make, or asks it.
func (m *Middleware) decideAndServe(rw http.ResponseWriter, req *http.Request, snap *snapshot, now int64, key string) {
	if snap.policy == nil {
		snap = m.state.ensurePolicy()
	}
	if snap.policy == nil {
		// Without the policy even the header names to strip are unknown: refuse rather than guess.
		answerJSON(rw, http.StatusServiceUnavailable, map[string]string{"error": "unavailable"})
		return
	}
	p := snap.policy
	stripIdentity(req.Header, p)
	if now-snap.policyAt > m.policyMaxAge {
		m.askIdp(rw, req, p)
		return
	}
	if p.Known != nil && p.Known.opaque {
		m.askIdp(rw, req, p)
		return
	}
	d := decide(snap, req)
	if !d.admitted {
		log.Printf("nextauth plugin: refused the unconfigured host %q", req.Host)
		forbid(rw, req)
		return
	}
	r := d.rule
	if r.opaque {
		m.askIdp(rw, req, p)
		return
	}
	if r.Policy == "deny" {
		forbid(rw, req)
		return
	}
	who, result := m.sessionOf(req, snap, now)
	if result == tokenUnsure {
		m.state.askForKeys(now)
	}
	if result == tokenUnsure || result == listStale {
		m.askIdp(rw, req, p)
		return
	}
	switch {
	case r.Policy == "public":
		remember(snap, key, who)
		pass(m.next, rw, req, p, who)
	case who == nil:
		sendToLogin(rw, req, p)
	case !r.admits(who.Sub, who.Groups):
		log.Printf("nextauth plugin: %s may not %s %q%q", who.Sub, req.Method, req.Host, req.URL.Path)
		forbid(rw, req)
	default:
		remember(snap, key, who)
		pass(m.next, rw, req, p, who)
	}
}

// remember: this request passes with this session under this snapshot until the token expires (an exp
// too far to count in nanoseconds wraps below now and is simply not remembered).
func remember(snap *snapshot, key string, who *session) {
	if key != "" && who != nil {
		snap.passes.put(key, passed{who: who, until: who.Exp * int64(time.Second)})
	}
}

// decide: whether the policy protects the request's host, and the rule for the request, as remembered
// for its request line under this snapshot's policy or worked out now.
func decide(snap *snapshot, req *http.Request) decided {
	scheme := requestScheme(req)
	uri := req.URL.RequestURI()
	key := scheme + "\x00" + req.Method + "\x00" + req.Host + "\x00" + uri
	if found, known := snap.decisions.get(key); known {
		return found
	}
	p := snap.policy
	d := decided{admitted: p.Known.admits(req.Host, scheme)}
	if d.admitted {
		r := p.decide(normalizeHost(req.Host), normalizePath(uri), req.Method)
		d.rule = &r
	}
	snap.decisions.put(key, d)
	return d
}

// sessionOf reads the session cookie. Only a valid token needs the ended list, so only then can a stale
// list make the plugin unsure.
func (m *Middleware) sessionOf(req *http.Request, snap *snapshot, now int64) (*session, verdict) {
	cookie, cookieErr := req.Cookie(snap.policy.Cookie)
	if cookieErr != nil {
		return nil, tokenNone
	}
	found, result := m.state.checkToken(cookie.Value, snap, now)
	if result != tokenValid {
		return nil, result
	}
	ended := snap.ended
	if !snap.haveEnded || now-snap.endedAt > m.endedEvery {
		list, usable := m.state.endedList(time.Duration(m.endedEvery), m.maxStale)
		if !usable {
			return nil, listStale
		}
		ended = list
	}
	if _, isEnded := ended[found.Sid]; isEnded {
		return nil, tokenNone
	}
	return found, tokenValid
}

// stripIdentity drops every header the client sent under an identity header's name or an alias of it:
// servers that turn header names into variables (CGI, WSGI, PHP) read Remote_User, Remote.User and
// Remote~User all as REMOTE_USER, and Go keeps them apart.
//
// Folding keeps a name's length (net/http takes only ASCII token characters in header names), so a name
// whose length modulo 64 is no identity header's is left without folding it: most of a request's headers.
func stripIdentity(header http.Header, p *policy) {
	for name := range header {
		if p.stripLengths[len(name)&63] && p.strip[fold(name)] {
			delete(header, name)
		}
	}
}

func fold(name string) string {
	return foldReplacer.Replace(strings.ToLower(name))
}

// Replacers run natively in Traefik, where a strings.Map callback is interpreted once per character.
// Header names are ASCII (net/http refuses others), so byte-wise replacement is rune-wise replacement.
var (
	foldReplacer    = strings.NewReplacer(foldPairs()...)
	controlReplacer = strings.NewReplacer(controlPairs()...)
)

// foldPairs maps every ASCII character but a-z, A-Z and 0-9 to "-" (upper case is lowered before).
func foldPairs() []string {
	var pairs []string
	for c := 0; c < 0x80; c++ {
		if ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z') || ('0' <= c && c <= '9') || c == '-' {
			continue
		}
		pairs = append(pairs, string(rune(c)), "-")
	}
	return pairs
}

// controlPairs removes the C0 controls and DEL, which never occur inside a multi-byte UTF-8 sequence.
func controlPairs() []string {
	var pairs []string
	for c := 0; c < 0x20; c++ {
		pairs = append(pairs, string(rune(c)), "")
	}
	return append(pairs, "\x7f", "")
}

// pass sends the request on with every identity header set: the session's values, or empty ones.
func pass(next http.Handler, rw http.ResponseWriter, req *http.Request, p *policy, who *session) {
	for i, key := range p.headerKeys {
		value := ""
		if who != nil {
			value = who.values[i]
		}
		req.Header[key] = []string{value} // a slice of its own: later handlers may change it
	}
	next.ServeHTTP(rw, req)
}

func authMethod(who *session) string {
	for _, factor := range []string{"pin", "bio"} {
		for _, amr := range who.Amr {
			if amr == factor {
				return who.Method + "+" + factor
			}
		}
	}
	return who.Method
}

func headerValue(text string) string {
	return strings.ToValidUTF8(controlReplacer.Replace(text), "\uFFFD")
}

func sendToLogin(rw http.ResponseWriter, req *http.Request, p *policy) {
	back := p.ReturnPath + "?" + url.Values{"url": {originalURL(req)}}.Encode()
	login := p.LoginURL + "?" + url.Values{"next": {back}}.Encode()
	if wantsHTML(req.Header.Values("Accept")) {
		rw.Header().Set("Location", login)
		rw.Header().Set("Cache-Control", "no-store")
		rw.WriteHeader(http.StatusFound)
		return
	}
	answerJSON(rw, http.StatusUnauthorized, map[string]string{"error": "unauthenticated", "login": login})
}

func forbid(rw http.ResponseWriter, req *http.Request) {
	if wantsHTML(req.Header.Values("Accept")) {
		rw.Header().Set("Content-Type", "text/html; charset=utf-8")
		rw.Header().Set("Cache-Control", "no-store")
		rw.WriteHeader(http.StatusForbidden)
		_, _ = io.WriteString(rw, forbiddenHTML)
		return
	}
	answerJSON(rw, http.StatusForbidden, map[string]string{"error": "forbidden"})
}

func answerJSON(rw http.ResponseWriter, status int, body map[string]string) {
	var out bytes.Buffer
	encoder := json.NewEncoder(&out)
	encoder.SetEscapeHTML(false)
	_ = encoder.Encode(body)
	rw.Header().Set("Content-Type", "application/json")
	rw.Header().Set("Cache-Control", "no-store")
	rw.WriteHeader(status)
	_, _ = rw.Write(out.Bytes())
}

// originalURL is what Traefik's forwardAuth reports as X-Forwarded-Proto/Host/Uri, joined as
// idp/forwardauth/urls.py joins them.
func originalURL(req *http.Request) string {
	scheme := requestScheme(req)
	host := strings.TrimSpace(req.Host)
	uri := req.URL.RequestURI()
	if !strings.HasPrefix(uri, "/") {
		uri = "/"
	}
	full := scheme + "://" + host + uri
	if len(full) > maxOriginalURL {
		return scheme + "://" + host + "/"
	}
	return full
}

func requestScheme(req *http.Request) string {
	if req.TLS != nil {
		return "https"
	}
	return "http"
}

// wantsHTML: a browser navigating (Accept names text/html with a non-zero quality), not an API client.
func wantsHTML(accept []string) bool {
	for _, element := range strings.Split(strings.Join(accept, ","), ",") {
		params := strings.Split(element, ";")
		if strings.ToLower(strings.TrimSpace(params[0])) != "text/html" {
			continue
		}
		quality := "1"
		for _, param := range params[1:] {
			key, value, _ := strings.Cut(param, "=")
			if strings.ToLower(strings.TrimSpace(key)) == "q" {
				quality = strings.TrimSpace(value)
			}
		}
		if !zeroQuality(quality) {
			return true
		}
	}
	return false
}

func zeroQuality(q string) bool {
	if q == "0" {
		return true
	}
	if !strings.HasPrefix(q, "0.") || len(q) > 5 {
		return false
	}
	return strings.Trim(q[2:], "0") == ""
}

// askIdp does what Traefik's forwardAuth middleware does (trustForwardHeader false): ask /auth/forward
// with the request's headers and X-Forwarded-*, then pass on with its identity headers or answer with
// its answer.
func (m *Middleware) askIdp(rw http.ResponseWriter, req *http.Request, p *policy) {
	// Distinct error names: Yaegi mixes up redeclared multi-value results.
	ask, newErr := http.NewRequest(http.MethodGet, m.state.base+"/auth/forward", nil)
	if newErr != nil {
		answerJSON(rw, http.StatusServiceUnavailable, map[string]string{"error": "unavailable"})
		return
	}
	for name, values := range req.Header {
		ask.Header[name] = append([]string(nil), values...)
	}
	for _, name := range req.Header.Values("Connection") {
		for _, listed := range strings.Split(name, ",") {
			ask.Header.Del(strings.TrimSpace(listed))
		}
	}
	for _, name := range hopHeaders {
		ask.Header.Del(name)
	}
	ip, _, splitErr := net.SplitHostPort(req.RemoteAddr)
	if splitErr == nil {
		ask.Header.Set("X-Forwarded-For", ip)
	}
	// The plugin describes the request itself, in the X-Forwarded-* form; a client's X-Original-* (the
	// other form the IdP reads) would only contradict it.
	ask.Header.Del("X-Original-URL")
	ask.Header.Del("X-Original-Method")
	ask.Header.Set("X-Forwarded-Method", req.Method)
	ask.Header.Set("X-Forwarded-Proto", requestScheme(req))
	ask.Header.Set("X-Forwarded-Host", req.Host)
	ask.Header.Set("X-Forwarded-Uri", req.URL.RequestURI())
	status, header, body, callErr := m.state.call(ask)
	if callErr != nil {
		log.Printf("nextauth plugin: forward-auth at %s did not answer: %v", m.state.base, callErr)
		answerJSON(rw, http.StatusServiceUnavailable, map[string]string{"error": "unavailable"})
		return
	}
	if status >= 200 && status < 300 {
		for _, name := range p.Headers.all() {
			key := http.CanonicalHeaderKey(name)
			req.Header.Del(key)
			if values := header.Values(key); len(values) > 0 {
				req.Header[key] = append([]string(nil), values...)
			}
		}
		m.next.ServeHTTP(rw, req)
		return
	}
	for name, values := range header {
		rw.Header()[name] = append([]string(nil), values...)
	}
	for _, name := range hopHeaders {
		rw.Header().Del(name)
	}
	rw.Header().Del("Content-Length")
	rw.WriteHeader(status)
	_, _ = rw.Write(body)
}
