package nextauth

// Access rules as the IdP publishes them at /auth/policy, evaluated as idp/forwardauth/rules.py does:
// the first rule whose host, path and method match decides, else the default. A rule this code does
// not fully understand (a key or a policy a newer IdP added) is "opaque": reaching it means asking the
// IdP instead of guessing.

import (
	"encoding/json"
	"net/http"
	"strings"
)

const policyVersion = 1

var knownRuleKeys = map[string]bool{
	"policy": true, "hosts": true, "paths": true, "methods": true, "users": true, "groups": true,
}

var knownPolicies = map[string]bool{"public": true, "authenticated": true, "deny": true}

type rule struct {
	Policy  string   `json:"policy"`
	Hosts   []string `json:"hosts"`
	Paths   []string `json:"paths"`
	Methods []string `json:"methods"`
	Users   []string `json:"users"`
	Groups  []string `json:"groups"`
	opaque  bool
}

type headerNames struct {
	User   string `json:"user"`
	Name   string `json:"name"`
	Email  string `json:"email"`
	Groups string `json:"groups"`
	Method string `json:"method"`
}

func (h headerNames) all() []string {
	return []string{h.User, h.Name, h.Email, h.Groups, h.Method}
}

type policy struct {
	Issuer     string
	Audience   string
	TokenType  string
	Cookie     string
	LoginURL   string
	ReturnPath string
	Headers    headerNames
	Default    rule
	Rules      []rule
	Known      *knownHosts
	// Made once per policy for every request: the identity headers' names as net/http keys them, and
	// folded (see fold) for stripping their aliases.
	headerKeys   []string
	strip        map[string]bool
	stripLengths [64]bool // stripLengths[n % 64]: some identity header's name has a length of n modulo 64
}

type policyDocument struct {
	Version    int               `json:"version"`
	Issuer     string            `json:"issuer"`
	Audience   string            `json:"audience"`
	TokenType  string            `json:"token_type"`
	Cookie     string            `json:"cookie"`
	LoginURL   string            `json:"login_url"`
	ReturnPath string            `json:"return_path"`
	Headers    headerNames       `json:"headers"`
	Default    json.RawMessage   `json:"default"`
	Rules      []json.RawMessage `json:"rules"`
	// UnknownHosts "deny": only KnownHosts are protected; others are refused (403).
	UnknownHosts string   `json:"unknown_hosts"`
	KnownHosts   []string `json:"known_hosts"`
}

// parsePolicy reads /auth/policy; nil when the document is not one this code can use at all.
func parsePolicy(body []byte) *policy {
	var doc policyDocument
	if err := json.Unmarshal(body, &doc); err != nil {
		return nil
	}
	if doc.Version != policyVersion || doc.Issuer == "" || doc.Audience == "" || doc.Cookie == "" ||
		doc.LoginURL == "" || doc.ReturnPath == "" || doc.TokenType == "" {
		return nil
	}
	for _, name := range doc.Headers.all() {
		if name == "" {
			return nil
		}
	}
	p := &policy{
		Issuer:     doc.Issuer,
		Audience:   doc.Audience,
		TokenType:  doc.TokenType,
		Cookie:     doc.Cookie,
		LoginURL:   doc.LoginURL,
		ReturnPath: doc.ReturnPath,
		Headers:    doc.Headers,
		Default:    parseRule(doc.Default),
		Rules:      make([]rule, 0, len(doc.Rules)),
		Known:      parseKnownHosts(doc.UnknownHosts, doc.KnownHosts),
	}
	for _, raw := range doc.Rules {
		p.Rules = append(p.Rules, parseRule(raw))
	}
	p.strip = map[string]bool{}
	for _, name := range doc.Headers.all() {
		p.headerKeys = append(p.headerKeys, http.CanonicalHeaderKey(name))
		p.strip[fold(name)] = true
		p.stripLengths[len(name)&63] = true
	}
	return p
}

func parseRule(raw json.RawMessage) rule {
	var keys map[string]json.RawMessage
	if err := json.Unmarshal(raw, &keys); err != nil {
		return rule{opaque: true}
	}
	var r rule
	if err := json.Unmarshal(raw, &r); err != nil {
		return rule{opaque: true}
	}
	for key := range keys {
		if !knownRuleKeys[key] {
			r.opaque = true
		}
	}
	if !knownPolicies[r.Policy] {
		r.opaque = true
	}
	return r
}

// decide returns the rule for a normalised host and path.
func (p *policy) decide(host, path, method string) rule {
	for _, r := range p.Rules {
		if r.opaque || r.matches(host, path, method) {
			// An opaque rule might match; only the IdP knows.
			return r
		}
	}
	return p.Default
}

func (r rule) matches(host, path, method string) bool {
	if len(r.Hosts) > 0 && !anyMatch(r.Hosts, func(pattern string) bool { return hostMatches(pattern, host) }) {
		return false
	}
	if len(r.Paths) > 0 && !anyMatch(r.Paths, func(prefix string) bool { return pathMatches(prefix, path) }) {
		return false
	}
	upper := strings.ToUpper(method)
	if len(r.Methods) > 0 && !anyMatch(r.Methods, func(m string) bool { return m == upper }) {
		return false
	}
	return true
}

func (r rule) admits(user string, groups []string) bool {
	if len(r.Users) == 0 && len(r.Groups) == 0 {
		return true
	}
	for _, u := range r.Users {
		if u == user {
			return true
		}
	}
	for _, g := range groups {
		for _, wanted := range r.Groups {
			if g == wanted {
				return true
			}
		}
	}
	return false
}

func anyMatch(items []string, match func(string) bool) bool {
	for _, item := range items {
		if match(item) {
			return true
		}
	}
	return false
}

func hostMatches(pattern, host string) bool {
	if strings.HasPrefix(pattern, "*.") {
		suffix := pattern[1:]
		return strings.HasSuffix(host, suffix) && len(host) > len(suffix)
	}
	return host == pattern
}

func pathMatches(prefix, path string) bool {
	return prefix == "/" || path == prefix || strings.HasPrefix(path, prefix+"/")
}

// normalizeHost: lower case, no port, no trailing dot; IPv6 literals keep their brackets.
func normalizeHost(host string) string {
	host = strings.ToLower(strings.TrimSpace(host))
	if strings.HasPrefix(host, "[") {
		if end := strings.Index(host, "]"); end > 0 {
			host = host[:end+1]
		}
	} else if strings.Count(host, ":") == 1 {
		host = host[:strings.Index(host, ":")]
	}
	return strings.TrimRight(host, ".")
}

// normalizePath: the path of a request URI decoded once, with dot segments resolved, empty segments and
// ";parameters" dropped, so that no spelling of a path escapes the rule that names it.
func normalizePath(uri string) string {
	if i := strings.Index(uri, "?"); i >= 0 {
		uri = uri[:i]
	}
	if i := strings.Index(uri, "#"); i >= 0 {
		uri = uri[:i]
	}
	text := uri
	if strings.Contains(uri, "%") { // the byte loop is interpreted in Traefik: only when there is work
		decoded := make([]byte, 0, len(uri))
		for i := 0; i < len(uri); i++ {
			if uri[i] == '%' && i+2 < len(uri) && isHex(uri[i+1]) && isHex(uri[i+2]) {
				decoded = append(decoded, unhex(uri[i+1])<<4|unhex(uri[i+2]))
				i += 2
				continue
			}
			decoded = append(decoded, uri[i])
		}
		text = string(decoded)
	}
	text = strings.ReplaceAll(strings.ToValidUTF8(text, "\uFFFD"), "\\", "/")
	stack := []string{}
	for _, segment := range strings.Split(text, "/") {
		if i := strings.Index(segment, ";"); i >= 0 {
			segment = segment[:i]
		}
		switch segment {
		case "", ".":
		case "..":
			if len(stack) > 0 {
				stack = stack[:len(stack)-1]
			}
		default:
			stack = append(stack, segment)
		}
	}
	return "/" + strings.Join(stack, "/")
}

func isHex(c byte) bool {
	return ('0' <= c && c <= '9') || ('a' <= c && c <= 'f') || ('A' <= c && c <= 'F')
}

func unhex(c byte) byte {
	switch {
	case '0' <= c && c <= '9':
		return c - '0'
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10
	default:
		return c - 'A' + 10
	}
}
