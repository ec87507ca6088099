package nextauth

// The IdP's session token: a compact JWS, alg "Ed25519" (RFC 9864), typ "nextauth-session+jwt", signed
// by a key the IdP publishes at /auth/keys. Checked as idp/sessions.py checks it: signature, issuer,
// audience, lifetime, and the claims a session must carry; then against the ended-session list.

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"strings"
	"time"
)

const maxTokenLength = 8192

type verdict int

const (
	tokenNone   verdict = iota // no token, or not a current session: the request is anonymous
	tokenValid                 // a current session
	tokenUnsure                // only the IdP can tell (a key this plugin has not seen yet)
	listStale                  // a valid token, but the ended list is too old to trust
)

type session struct {
	Sid    string
	Sub    string
	Name   string
	Email  string
	Groups []string
	Amr    []string
	Method string
	Exp    int64 // the token's exp, whole seconds
	// The identity headers' values, in headerNames.all() order, made once per token: the plugin runs
	// interpreted in Traefik, where making them again for each request costs more than checking it.
	values []string
}

type jwsHeader struct {
	Alg  string          `json:"alg"`
	Kid  *string         `json:"kid"`
	Typ  string          `json:"typ"`
	Crit json.RawMessage `json:"crit"`
}

// checkToken verifies signature and claims; whether the session has ended is the caller's question.
func checkToken(token string, keys map[string]ed25519.PublicKey, p *policy, now time.Time) (*session, verdict) {
	if token == "" || len(token) > maxTokenLength {
		return nil, tokenNone
	}
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return nil, tokenNone
	}
	rawHeader, err := base64.RawURLEncoding.DecodeString(parts[0])
	if err != nil {
		return nil, tokenNone
	}
	var header jwsHeader
	if err := json.Unmarshal(rawHeader, &header); err != nil {
		return nil, tokenNone
	}
	if header.Alg != "Ed25519" || header.Typ != p.TokenType || header.Kid == nil || len(header.Crit) > 0 {
		return nil, tokenNone
	}
	key, known := keys[*header.Kid]
	if !known {
		return nil, tokenUnsure
	}
	signature, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil || len(signature) != ed25519.SignatureSize {
		return nil, tokenNone
	}
	if !ed25519.Verify(key, []byte(parts[0]+"."+parts[1]), signature) {
		return nil, tokenNone
	}
	rawClaims, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return nil, tokenNone
	}
	var claims map[string]interface{}
	if err := json.Unmarshal(rawClaims, &claims); err != nil {
		return nil, tokenNone
	}
	if !claimsValid(claims, p, float64(now.Unix())) {
		return nil, tokenNone
	}
	s := &session{
		Sid:    claims["sid"].(string),
		Sub:    claims["sub"].(string),
		Name:   stringClaim(claims, "name"),
		Email:  stringClaim(claims, "email"),
		Groups: stringsClaim(claims, "groups"),
		Amr:    stringsClaim(claims, "amr"),
		Method: stringClaim(claims, "method"),
		Exp:    int64(claims["exp"].(float64)),
	}
	if s.Method == "" {
		s.Method = "qr"
	}
	s.values = []string{
		headerValue(s.Sub), headerValue(s.Name), headerValue(s.Email),
		headerValue(strings.Join(s.Groups, ",")), headerValue(authMethod(s)),
	}
	return s, tokenValid
}

func claimsValid(claims map[string]interface{}, p *policy, now float64) bool {
	if iss, ok := claims["iss"].(string); !ok || iss != p.Issuer {
		return false
	}
	if !audienceMatches(claims["aud"], p.Audience) {
		return false
	}
	for _, name := range []string{"sid", "sub"} {
		if value, ok := claims[name].(string); !ok || value == "" {
			return false
		}
	}
	if claims["auth_time"] == nil {
		return false
	}
	exp, ok := claims["exp"].(float64)
	if !ok || exp <= now {
		return false
	}
	for _, name := range []string{"iat", "nbf"} {
		if value, present := claims[name]; present {
			number, ok := value.(float64)
			if !ok || number > now {
				return false
			}
		}
	}
	return true
}

func audienceMatches(aud interface{}, want string) bool {
	switch value := aud.(type) {
	case string:
		return value == want
	case []interface{}:
		for _, item := range value {
			if text, ok := item.(string); ok && text == want {
				return true
			}
		}
	}
	return false
}

func stringClaim(claims map[string]interface{}, name string) string {
	value, _ := claims[name].(string)
	return value
}

func stringsClaim(claims map[string]interface{}, name string) []string {
	items, _ := claims[name].([]interface{})
	out := make([]string, 0, len(items))
	for _, item := range items {
		if text, ok := item.(string); ok {
			out = append(out, text)
		}
	}
	return out
}
