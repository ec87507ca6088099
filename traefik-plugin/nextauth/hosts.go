package nextauth

// Which hosts the IdP protects at all (NEXTAUTH_IDP_FORWARD_AUTH_UNKNOWN_HOSTS=deny): with a catch-all
// route in the proxy, a request for a host nobody configured must not reach the rules of a public one.
// The same check as idp/forwardauth/settings.py's admits_host.

import (
	"strconv"
	"strings"
)

type hostPattern struct {
	host string // lower case; "*.example.com" is any subdomain; IPv6 without brackets
	port int    // 0: any port
}

// knownHosts: nil when every host is admitted ("allow", or an IdP that predates the setting).
type knownHosts struct {
	patterns []hostPattern
	opaque   bool // a value this code does not understand: the IdP decides
}

func parseKnownHosts(mode string, published []string) *knownHosts {
	switch mode {
	case "", "allow":
		return nil
	case "deny":
	default:
		return &knownHosts{opaque: true}
	}
	known := &knownHosts{}
	for _, text := range published {
		pattern, ok := parseHostPattern(text)
		if !ok {
			return &knownHosts{opaque: true}
		}
		known.patterns = append(known.patterns, pattern)
	}
	return known
}

func parseHostPattern(text string) (hostPattern, bool) {
	text = strings.ToLower(strings.TrimSpace(text))
	host, portText := text, ""
	if strings.HasPrefix(text, "[") {
		end := strings.Index(text, "]")
		if end < 0 {
			return hostPattern{}, false
		}
		host, portText = text[1:end], strings.TrimPrefix(text[end+1:], ":")
	} else if i := strings.LastIndex(text, ":"); i >= 0 {
		host, portText = text[:i], text[i+1:]
	}
	port := 0
	if portText != "" {
		parsed, err := strconv.Atoi(portText)
		if err != nil || parsed < 1 || parsed > 65535 {
			return hostPattern{}, false
		}
		port = parsed
	}
	return hostPattern{host: host, port: port}, host != ""
}

// requestPort is the port a Host header names, or the scheme's; 0 when it names no valid port.
func requestPort(host, scheme string) int {
	tail := host
	if strings.HasPrefix(host, "[") {
		tail = host[strings.LastIndex(host, "]")+1:]
	}
	i := strings.LastIndex(tail, ":")
	if i < 0 {
		if scheme == "https" {
			return 443
		}
		return 80
	}
	port, err := strconv.Atoi(tail[i+1:])
	if err != nil || port < 1 || port > 65535 {
		return 0
	}
	return port
}

// admits: the Host header of a request (as sent) over scheme is one the IdP protects.
func (k *knownHosts) admits(host, scheme string) bool {
	if k == nil {
		return true
	}
	port := requestPort(host, scheme)
	name := strings.Trim(normalizeHost(host), "[]")
	if port == 0 {
		return false
	}
	for _, pattern := range k.patterns {
		if pattern.port != 0 && pattern.port != port {
			continue
		}
		if hostMatches(pattern.host, name) {
			return true
		}
	}
	return false
}
