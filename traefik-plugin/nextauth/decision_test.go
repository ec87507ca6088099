package nextauth

// The decision table that idp/forwardauth/decision.py is held to as well (testdata/decisions.json, read by
// tests/test_forward_auth_table.py): every case goes through the plugin's ServeHTTP against a fake IdP that
// publishes the case's rules, so the plugin must decide alone, as the IdP would, and never ask
// /auth/forward. The table's normalisation cases hold normalizePath and normalizeHost to the IdP's spelling
// of paths and hosts. No Traefik run: tests/test_traefik.py does that.

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"reflect"
	"sync/atomic"
	"testing"
	"time"
)

const (
	testIssuer    = "https://idp.example.test"
	testAudience  = "nextauth-forward-auth"
	testTokenType = "nextauth-session+jwt"
	testCookie    = "nextauth_session"
	testKid       = "key-1"
)

var testHeaders = headerNames{
	User: "Remote-User", Name: "Remote-Name", Email: "Remote-Email", Groups: "Remote-Groups",
	Method: "Remote-Auth-Method",
}

type ruleSet struct {
	Default json.RawMessage   `json:"default"`
	Rules   []json.RawMessage `json:"rules"`
}

type tableUser struct {
	Sub    string   `json:"sub"`
	Groups []string `json:"groups"`
}

type decisionCase struct {
	Name         string          `json:"name"`
	Rules        string          `json:"rules"`
	Host         string          `json:"host"`
	URI          string          `json:"uri"`
	Method       string          `json:"method"`
	User         *tableUser      `json:"user"`
	Verdict      string          `json:"verdict"`
	Rule         json.RawMessage `json:"rule"` // an index into the rule set's rules, or "default"
	ReadsSession bool            `json:"reads_session"`
}

type decisionTable struct {
	RuleSets  map[string]ruleSet `json:"rule_sets"`
	Cases     []decisionCase     `json:"cases"`
	Forwarded []struct {
		Name    string      `json:"name"`
		Headers [][2]string `json:"headers"`
		Request *struct {
			Method string `json:"method"`
			Proto  string `json:"proto"`
			Host   string `json:"host"`
			URI    string `json:"uri"`
		} `json:"request"`
	} `json:"forwarded"`
	KnownHosts struct {
		Patterns []string         `json:"patterns"`
		Cases    [][3]interface{} `json:"cases"` // Host header, scheme, admitted
	} `json:"known_hosts"`
	Normalize struct {
		Paths [][2]string `json:"paths"` // request URI, the path the rules see
		Hosts [][2]string `json:"hosts"` // Host header, the host the rules see
	} `json:"normalize"`
}

func readTable(t *testing.T) decisionTable {
	t.Helper()
	body, err := os.ReadFile("testdata/decisions.json")
	if err != nil {
		t.Fatal(err)
	}
	var table decisionTable
	if err := json.Unmarshal(body, &table); err != nil {
		t.Fatalf("testdata/decisions.json: %v", err)
	}
	if len(table.Cases) == 0 {
		t.Fatal("testdata/decisions.json: no cases")
	}
	seen := map[string]bool{}
	for _, c := range table.Cases {
		if seen[c.Name] {
			t.Fatalf("testdata/decisions.json: two cases named %q", c.Name)
		}
		seen[c.Name] = true
	}
	return table
}

// policyJSON is /auth/policy as the IdP would publish it with the given rules.
func policyJSON(t *testing.T, rules ruleSet, extra ...map[string]interface{}) []byte {
	t.Helper()
	document := map[string]interface{}{
		"version":     policyVersion,
		"issuer":      testIssuer,
		"audience":    testAudience,
		"token_type":  testTokenType,
		"cookie":      testCookie,
		"login_url":   testIssuer + "/login",
		"return_path": testIssuer + "/auth/return",
		"headers":     testHeaders,
		"default":     rules.Default,
		"rules":       rules.Rules,
	}
	for _, more := range extra {
		for key, value := range more {
			document[key] = value
		}
	}
	body, err := json.Marshal(document)
	if err != nil {
		t.Fatal(err)
	}
	return body
}

// expectedRule is the rule the case names, as parsePolicy reads it.
func expectedRule(t *testing.T, c decisionCase, p *policy) rule {
	t.Helper()
	var name string
	if json.Unmarshal(c.Rule, &name) == nil {
		if name != "default" {
			t.Fatalf("%s: rule %q: expected an index or \"default\"", c.Name, name)
		}
		return p.Default
	}
	var index int
	if err := json.Unmarshal(c.Rule, &index); err != nil || index < 0 || index >= len(p.Rules) {
		t.Fatalf("%s: rule %s: no such rule", c.Name, c.Rule)
	}
	return p.Rules[index]
}

func TestDecisionTableRules(t *testing.T) {
	table := readTable(t)
	for _, c := range table.Cases {
		rules, known := table.RuleSets[c.Rules]
		if !known {
			t.Fatalf("%s: no rule set %q", c.Name, c.Rules)
		}
		p := parsePolicy(policyJSON(t, rules))
		if p == nil {
			t.Fatalf("%s: the plugin does not read rule set %q", c.Name, c.Rules)
		}
		got := p.decide(normalizeHost(c.Host), normalizePath(c.URI), c.Method)
		if got.opaque {
			t.Errorf("%s: the plugin does not understand the rule that decides", c.Name)
		}
		if want := expectedRule(t, c, p); !reflect.DeepEqual(got, want) {
			t.Errorf("%s: decided by %+v, want %+v", c.Name, got, want)
		}
	}
}

func TestNormalisationTable(t *testing.T) {
	table := readTable(t)
	if len(table.Normalize.Paths) == 0 || len(table.Normalize.Hosts) == 0 {
		t.Fatal("testdata/decisions.json: no normalisation cases")
	}
	for _, pair := range table.Normalize.Paths {
		if got := normalizePath(pair[0]); got != pair[1] {
			t.Errorf("normalizePath(%q) = %q, want %q", pair[0], got, pair[1])
		}
	}
	for _, pair := range table.Normalize.Hosts {
		if got := normalizeHost(pair[0]); got != pair[1] {
			t.Errorf("normalizeHost(%q) = %q, want %q", pair[0], got, pair[1])
		}
	}
}

// fakeIdp publishes one rule set and one session key, and counts what the plugin asks.
type fakeIdp struct {
	server   *httptest.Server
	key      ed25519.PrivateKey
	ended    int32 // /auth/ended fetches
	forwards int32 // /auth/forward calls: none expected, the plugin must decide alone
}

func newFakeIdp(t *testing.T, rules ruleSet, extra ...map[string]interface{}) *fakeIdp {
	t.Helper()
	public, private, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	policyBody := policyJSON(t, rules, extra...)
	keysBody, err := json.Marshal(map[string]interface{}{"keys": []map[string]string{{
		"kty": "OKP", "crv": "Ed25519", "alg": "Ed25519", "kid": testKid,
		"x": base64.RawURLEncoding.EncodeToString(public),
	}}})
	if err != nil {
		t.Fatal(err)
	}
	idp := &fakeIdp{key: private}
	idp.server = httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, req *http.Request) {
		rw.Header().Set("Content-Type", "application/json")
		switch req.URL.Path {
		case "/auth/policy":
			_, _ = rw.Write(policyBody)
		case "/auth/keys":
			_, _ = rw.Write(keysBody)
		case "/auth/ended":
			atomic.AddInt32(&idp.ended, 1)
			_, _ = rw.Write([]byte(`{"ended": []}`))
		default:
			atomic.AddInt32(&idp.forwards, 1)
			rw.WriteHeader(http.StatusInternalServerError)
		}
	}))
	t.Cleanup(idp.server.Close)
	return idp
}

// sessionToken is the IdP's session cookie for user, signed with the published key.
func (idp *fakeIdp) sessionToken(t *testing.T, user *tableUser) string {
	t.Helper()
	now := time.Now().Unix()
	return signedToken(t, idp.key, map[string]interface{}{
		"iss": testIssuer, "aud": testAudience, "sid": "sid-" + user.Sub, "sub": user.Sub,
		"groups": user.Groups, "amr": []string{"swk", "pin"}, "method": "qr",
		"auth_time": now - 10, "iat": now - 10, "exp": now + 3600,
	})
}

// signedToken is a compact JWS of claims as the IdP signs session tokens (alg Ed25519, kid testKid).
func signedToken(t *testing.T, key ed25519.PrivateKey, claims map[string]interface{}) string {
	t.Helper()
	encode := func(value interface{}) string {
		body, err := json.Marshal(value)
		if err != nil {
			t.Fatal(err)
		}
		return base64.RawURLEncoding.EncodeToString(body)
	}
	header := encode(map[string]string{"alg": "Ed25519", "typ": testTokenType, "kid": testKid})
	payload := encode(claims)
	signature := ed25519.Sign(key, []byte(header+"."+payload))
	return header + "." + payload + "." + base64.RawURLEncoding.EncodeToString(signature)
}

var wantStatus = map[string]int{
	"allow":           http.StatusOK,
	"unauthenticated": http.StatusUnauthorized,
	"forbidden":       http.StatusForbidden,
}

func TestDecisionTableThroughThePlugin(t *testing.T) {
	table := readTable(t)
	for _, c := range table.Cases {
		c := c
		t.Run(c.Name, func(t *testing.T) {
			idp := newFakeIdp(t, table.RuleSets[c.Rules])
			handler, passedAs := tableHandler(t, idp)
			answer := askCase(t, handler, idp, c)

			want, known := wantStatus[c.Verdict]
			if !known {
				t.Fatalf("verdict %q: expected allow, unauthenticated or forbidden", c.Verdict)
			}
			if answer.Code != want {
				t.Errorf("status %d, want %d (%s): %s", answer.Code, want, c.Verdict, answer.Body.String())
			}
			if c.Verdict == "allow" {
				identity := ""
				if c.User != nil {
					identity = c.User.Sub
				}
				if *passedAs != identity {
					t.Errorf("passed on as %q, want %q", *passedAs, identity)
				}
			} else if *passedAs != notPassed {
				t.Errorf("passed on to the application as %q", *passedAs)
			}
			if forwards := atomic.LoadInt32(&idp.forwards); forwards != 0 {
				t.Errorf("asked the IdP's forward-auth %d times", forwards)
			}
			// Only a session that is read needs the ended list: that is how reading it shows.
			readsSession := atomic.LoadInt32(&idp.ended) > 0
			if c.User != nil && readsSession != c.ReadsSession {
				t.Errorf("read the session: %v, want %v", readsSession, c.ReadsSession)
			}
			if c.User == nil && readsSession {
				t.Error("fetched the ended list without a session")
			}
		})
	}
}

const notPassed = "(not passed)"

// tableHandler is the plugin in front of an application that records the identity it was passed on with
// (notPassed until it is).
func tableHandler(t *testing.T, idp *fakeIdp) (http.Handler, *string) {
	t.Helper()
	passedAs := new(string)
	*passedAs = notPassed
	next := http.HandlerFunc(func(rw http.ResponseWriter, req *http.Request) {
		*passedAs = req.Header.Get(testHeaders.User)
		rw.WriteHeader(http.StatusOK)
	})
	config := CreateConfig()
	config.IdpURL = idp.server.URL
	handler, err := New(context.Background(), next, config, "table")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { waitForBackgroundFetch(handler.(*Middleware).state) })
	return handler, passedAs
}

// askCase sends the case's request through handler, with a forged identity header that must never reach
// the application, and the user's session cookie when the case has a user.
func askCase(t *testing.T, handler http.Handler, idp *fakeIdp, c decisionCase) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(c.Method, c.URI, nil)
	req.Host = c.Host
	req.Header.Set(testHeaders.User, "mallory")
	if c.User != nil {
		req.AddCookie(&http.Cookie{Name: testCookie, Value: idp.sessionToken(t, c.User)})
	}
	answer := httptest.NewRecorder()
	handler.ServeHTTP(answer, req)
	return answer
}

// waitForBackgroundFetch lets New's fetch of keys and policy end before the fake IdP closes, so that
// it does not report a closed IdP into the test's log.
func waitForBackgroundFetch(s *idpState) {
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); {
		s.mu.Lock()
		busy := s.policyBusy
		s.mu.Unlock()
		if !busy {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestKnownHostsTable(t *testing.T) {
	table := readTable(t)
	known := parseKnownHosts("deny", table.KnownHosts.Patterns)
	if known == nil || known.opaque || len(table.KnownHosts.Cases) == 0 {
		t.Fatalf("testdata/decisions.json: known_hosts unreadable: %+v", known)
	}
	for _, c := range table.KnownHosts.Cases {
		host, scheme, admitted := c[0].(string), c[1].(string), c[2].(bool)
		if got := known.admits(host, scheme); got != admitted {
			t.Errorf("host %q over %s: admitted %v, want %v", host, scheme, got, admitted)
		}
	}
	if parseKnownHosts("allow", nil) != nil || parseKnownHosts("", nil) != nil {
		t.Error("allow (or an IdP without the setting) must admit every host")
	}
	if !parseKnownHosts("only-on-tuesdays", nil).opaque || !parseKnownHosts("deny", []string{"a:b:c"}).opaque {
		t.Error("a setting this plugin cannot read must leave the decision to the IdP")
	}
}

// The IdP refuses a request it cannot tell apart (testdata's forwarded cases); the plugin, when it asks,
// must describe the request in exactly the X-Forwarded-* form the IdP reads.
func TestTheForwardedTableThroughAskIdp(t *testing.T) {
	table := readTable(t)
	tried := 0
	for _, c := range table.Forwarded {
		if c.Request == nil || len(c.Headers) != 4 {
			continue
		}
		sent := http.Header{}
		for _, pair := range c.Headers {
			sent.Add(pair[0], pair[1])
		}
		if len(sent) != 4 || sent.Get("X-Forwarded-Uri") == "" || sent.Get("X-Forwarded-Proto") == "" {
			continue
		}
		tried++
		var received http.Header
		idp := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, req *http.Request) {
			received = req.Header.Clone()
			rw.WriteHeader(http.StatusUnauthorized)
		}))
		m := &Middleware{state: stateFor(idp.URL, "", 2*time.Second)}
		req := httptest.NewRequest(c.Request.Method, c.Request.URI, nil)
		req.Host = c.Request.Host
		if c.Request.Proto == "https" {
			req.TLS = &tls.ConnectionState{}
		}
		req.Header.Set("X-Original-URL", "https://elsewhere.test/public") // the client's: not passed on
		req.Header.Set("X-Forwarded-Uri", "/public")
		m.askIdp(httptest.NewRecorder(), req, &policy{})
		idp.Close()
		if received.Get("X-Original-URL") != "" {
			t.Errorf("%s: the plugin passed the client's X-Original-URL on", c.Name)
		}
		for name := range sent {
			if received.Get(name) != sent.Get(name) || len(received.Values(name)) != 1 {
				t.Errorf("%s: the plugin sent %s %q, the table says %q", c.Name, name, received.Values(name), sent.Get(name))
			}
		}
	}
	if tried < 2 {
		t.Fatalf("testdata/decisions.json: only %d forwarded case(s) in the X-Forwarded-* form", tried)
	}
}

func TestUnknownHostsThroughThePlugin(t *testing.T) {
	table := readTable(t)
	idp := newFakeIdp(t, table.RuleSets["wiki"], map[string]interface{}{
		"unknown_hosts": "deny", "known_hosts": []string{"*.example.test"},
	})
	passed := 0
	next := http.HandlerFunc(func(rw http.ResponseWriter, req *http.Request) { passed++ })
	config := CreateConfig()
	config.IdpURL = idp.server.URL
	handler, err := New(context.Background(), next, config, "hosts")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { waitForBackgroundFetch(handler.(*Middleware).state) })
	for host, want := range map[string]int{"www.example.test": 200, "www.elsewhere.test": 403, "example.test": 403} {
		req := httptest.NewRequest("GET", "/static/app.css", nil) // public by the wiki rules
		req.Host = host
		answer := httptest.NewRecorder()
		handler.ServeHTTP(answer, req)
		if answer.Code != want {
			t.Errorf("%s: status %d, want %d", host, answer.Code, want)
		}
	}
	if passed != 1 {
		t.Errorf("passed on %d request(s), want 1", passed)
	}
	if forwards := atomic.LoadInt32(&idp.forwards); forwards != 0 {
		t.Errorf("asked the IdP's forward-auth %d times", forwards)
	}
}
