package nextauth

// What the plugin knows about the IdP: its session keys, its policy (cookie, issuer, header names, access
// rules) and the list of ended sessions. One copy per IdP address, shared by every middleware instance
// (Traefik builds one per router and again on every configuration change). Keys and policy are refreshed
// in the background, one fetch at a time, started from the request path so that no goroutine outlives a
// configuration. The ended list is fetched on the request path when a session needs it and the copy is
// due: a logout then counts for every request after refreshSeconds, however long the plugin sat idle.

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"sync"
	"time"
)

const maxDocumentBytes = 8 << 20

// An unknown kid asks for the keys again, but not more often than this.
const unknownKeyRefresh = 5 * time.Second

// A snapshot is never changed once published (idpState.current is replaced instead), so a request reads
// everything it decides on from one without holding a lock.
type snapshot struct {
	keys      map[string]ed25519.PublicKey
	policy    *policy
	ended     map[string]int64
	endedAt   int64 // when the ended list last arrived (Unix nanoseconds, as every time a request reads)
	policyAt  int64
	haveEnded bool
	// generation changes with every new policy and key set: a token checked under older ones is checked
	// again.
	generation uint64
	// What the policy decided for request lines seen under it; a new policy starts a new memory.
	decisions *decisionMemo
	// Requests let through under this policy and these keys, by token and request line (passMemo).
	passes *passMemo
}

// The plugin runs interpreted in Traefik, where matching a request line against the rules costs more
// than looking it up: each line's decision is remembered for as long as its policy is current.
const (
	decisionsMax   = 10000 // request lines remembered at most; beyond, the memory starts over
	decisionKeyMax = 1024  // longer request lines are decided each time, not remembered
)

type decided struct {
	admitted bool  // the host is one the policy protects (else 403)
	rule     *rule // the rule that applies, when admitted
}

type decisionMemo struct {
	mu      sync.Mutex
	decided map[string]decided
}

func (d *decisionMemo) get(key string) (decided, bool) {
	d.mu.Lock()
	found, known := d.decided[key]
	d.mu.Unlock()
	return found, known
}

func (d *decisionMemo) put(key string, value decided) {
	if len(key) > decisionKeyMax {
		return
	}
	d.mu.Lock()
	if d.decided == nil || len(d.decided) >= decisionsMax {
		d.decided = map[string]decided{}
	}
	d.decided[key] = value
	d.mu.Unlock()
}

// Under Yaegi each call of an interpreted function allocates every value its body names, and each
// native call goes through reflection: deciding a request costs about 50 us where looking up the outcome
// costs a few. A request the policy let through with a valid token is remembered, by token and request
// line, for as long as the policy and keys it was decided under are current (a new snapshot, at least
// every policyRefreshSeconds, starts a new memory) and never past the token's exp. Whether the session
// has ended is still asked on every request.
const (
	passesMax  = 10000
	passKeyMax = 4096 // longer tokens and request lines are decided each time, not remembered
)

type passed struct {
	who   *session
	until int64 // the token's exp, Unix nanoseconds
}

type passMemo struct {
	mu     sync.Mutex
	passes map[string]passed
}

// put remembers until the memory is full; a full one is emptied by the next snapshot, so a flood of
// request lines costs the requests after it their speed for a while, never a decision.
func (m *passMemo) put(key string, value passed) {
	if len(key) > passKeyMax {
		return
	}
	m.mu.Lock()
	if m.passes == nil {
		m.passes = map[string]passed{}
	}
	if len(m.passes) < passesMax {
		m.passes[key] = value
	}
	m.mu.Unlock()
}

// A token whose signature and claims checked out is remembered for this long at most (never past its exp,
// and only under the key set it was checked with: every policy fetch, each policyRefreshSeconds, starts a
// new generation), so a browser's requests cost one check per refresh; whether its session ended is still
// asked each time.
const (
	verifiedFor = 5 * time.Minute
	verifiedMax = 10000 // tokens remembered at most; beyond, the memory starts over
)

type verifiedToken struct {
	session    *session
	until      int64 // Unix nanoseconds
	generation uint64
}

// Yaegi (Traefik's interpreter) mis-assigns tuple assignments to struct fields: one field per statement.
type idpState struct {
	base    string
	token   string
	timeout time.Duration
	// A transport, not a client: redirects are answers to pass on, never to follow (and Yaegi cannot
	// call back into an interpreted CheckRedirect).
	transport *http.Transport

	mu           sync.Mutex
	current      *snapshot
	policyBusy   bool
	endedTried   time.Time
	policyTried  int64 // Unix nanoseconds
	keysAskedFor int64
	failing      bool

	policySyncTried time.Time

	fetchMu sync.Mutex // one policy fetch at a time, waited for by the first requests
	endedMu sync.Mutex // one ended-list fetch at a time, waited for by the requests that need it

	verifiedMu sync.Mutex
	verified   map[string]verifiedToken
}

var (
	statesMu sync.Mutex
	states   = map[string]*idpState{}
)

func stateFor(base, token string, timeout time.Duration) *idpState {
	statesMu.Lock()
	defer statesMu.Unlock()
	id := base + "\x00" + token
	if s, ok := states[id]; ok {
		return s
	}
	s := &idpState{
		base:      base,
		token:     token,
		timeout:   timeout,
		transport: http.DefaultTransport.(*http.Transport).Clone(),
		current:   &snapshot{decisions: &decisionMemo{}, passes: &passMemo{}},
	}
	states[id] = s
	return s
}

func (s *idpState) snapshot() *snapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.current
}

// refresh starts a background fetch of keys and policy when one is due, and returns the current snapshot:
// what a request decides on (one lock per request).
func refresh(s *idpState, now, policyEvery int64) *snapshot {
	s.mu.Lock()
	start := !s.policyBusy && now-s.policyTried >= policyEvery
	if start {
		s.policyBusy = true
		s.policyTried = now
	}
	current := s.current
	s.mu.Unlock()
	if start {
		go s.fetchPolicyInBackground()
	}
	return current
}

// endedList returns the ended sessions, fetched first when the copy is older than every; false when the
// IdP cannot be read and no copy younger than maxStale is left.
func (s *idpState) endedList(every, maxStale time.Duration) (map[string]int64, bool) {
	if ended, fresh := s.endedNewerThan(every); fresh {
		return ended, true
	}
	s.endedMu.Lock()
	if _, fresh := s.endedNewerThan(every); !fresh && s.mayTryEnded() {
		s.fetchEnded()
	}
	s.endedMu.Unlock()
	return s.endedNewerThan(maxStale)
}

func (s *idpState) endedNewerThan(age time.Duration) (map[string]int64, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.current.haveEnded && time.Duration(time.Now().UnixNano()-s.current.endedAt) <= age {
		return s.current.ended, true
	}
	return nil, false
}

// mayTryEnded: after a failed fetch, requests do not wait for another one for a second.
func (s *idpState) mayTryEnded() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if time.Since(s.endedTried) < time.Second {
		return false
	}
	s.endedTried = time.Now()
	return true
}

// askForKeys: a token names a key this plugin does not know; fetch the keys soon.
func (s *idpState) askForKeys(now int64) {
	s.mu.Lock()
	start := !s.policyBusy && time.Duration(now-s.keysAskedFor) >= unknownKeyRefresh
	if start {
		s.policyBusy = true
		s.policyTried = now
		s.keysAskedFor = now
	}
	s.mu.Unlock()
	if start {
		go s.fetchPolicyInBackground()
	}
}

// ensurePolicy fetches the policy now if there is none yet: without it the plugin cannot even tell which
// headers to strip.
func (s *idpState) ensurePolicy() *snapshot {
	if current := s.snapshot(); current.policy != nil {
		return current
	}
	s.fetchMu.Lock()
	if s.snapshot().policy == nil && s.mayTryPolicy() {
		s.fetchPolicyLocked()
	}
	s.fetchMu.Unlock()
	return s.snapshot()
}

// mayTryPolicy: while the IdP cannot be read, one request a second waits for another try; the others
// are answered at once.
func (s *idpState) mayTryPolicy() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if time.Since(s.policySyncTried) < time.Second {
		return false
	}
	s.policySyncTried = time.Now()
	return true
}

func (s *idpState) fetchPolicyInBackground() {
	s.fetchPolicy()
	s.mu.Lock()
	s.policyBusy = false
	s.mu.Unlock()
}

func (s *idpState) fetchPolicy() {
	s.fetchMu.Lock()
	defer s.fetchMu.Unlock()
	s.fetchPolicyLocked()
}

func (s *idpState) fetchPolicyLocked() {
	body, err := s.get("/auth/policy")
	if err != nil {
		s.report(err)
		return
	}
	p := parsePolicy(body)
	if p == nil {
		s.report(errors.New("/auth/policy: not a policy this plugin understands"))
		return
	}
	body, err = s.get("/auth/keys")
	if err != nil {
		s.report(err)
		return
	}
	keys, err := parseKeys(body)
	if err != nil {
		s.report(err)
		return
	}
	s.mu.Lock()
	next := *s.current
	next.policy = p
	next.keys = keys
	next.policyAt = time.Now().UnixNano()
	next.generation = s.current.generation + 1
	next.decisions = &decisionMemo{}
	next.passes = &passMemo{}
	s.current = &next
	s.mu.Unlock()
	s.recovered()
}

// checkToken is checkToken (token.go) with a memory of the tokens that passed.
// now is in Unix nanoseconds.
func (s *idpState) checkToken(token string, snap *snapshot, now int64) (*session, verdict) {
	s.verifiedMu.Lock()
	entry, known := s.verified[token]
	s.verifiedMu.Unlock()
	if known && entry.generation == snap.generation && now < entry.until {
		return entry.session, tokenValid
	}
	found, result := checkToken(token, snap.keys, snap.policy, time.Unix(0, now))
	if result != tokenValid {
		return found, result
	}
	until := now + int64(verifiedFor)
	if found.Exp <= until/int64(time.Second) { // compared in seconds: a far exp would overflow nanoseconds
		until = found.Exp * int64(time.Second)
	}
	s.verifiedMu.Lock()
	if s.verified == nil || len(s.verified) >= verifiedMax {
		s.verified = map[string]verifiedToken{}
	}
	s.verified[token] = verifiedToken{session: found, until: until, generation: snap.generation}
	s.verifiedMu.Unlock()
	return found, result
}

func (s *idpState) fetchEnded() {
	body, err := s.get("/auth/ended")
	if err != nil {
		s.report(err)
		return
	}
	var doc struct {
		Ended []struct {
			Sid string `json:"sid"`
			Exp int64  `json:"exp"`
		} `json:"ended"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		s.report(fmt.Errorf("/auth/ended: %v", err))
		return
	}
	ended := make(map[string]int64, len(doc.Ended))
	for _, entry := range doc.Ended {
		ended[entry.Sid] = entry.Exp
	}
	s.mu.Lock()
	next := *s.current
	next.ended = ended
	next.endedAt = time.Now().UnixNano()
	next.haveEnded = true
	s.current = &next
	s.mu.Unlock()
	s.recovered()
}

func (s *idpState) get(path string) ([]byte, error) {
	req, newErr := http.NewRequest(http.MethodGet, s.base+path, nil)
	if newErr != nil {
		return nil, newErr
	}
	req.Header.Set("Accept", "application/json")
	if s.token != "" {
		req.Header.Set("Authorization", "Bearer "+s.token)
	}
	status, _, body, callErr := s.call(req)
	if callErr != nil {
		return nil, fmt.Errorf("%s: %v", path, callErr)
	}
	if status != http.StatusOK {
		return nil, fmt.Errorf("%s: HTTP %d", path, status)
	}
	return body, nil
}

// call sends one request to the IdP within the timeout and reads the whole answer.
func (s *idpState) call(req *http.Request) (int, http.Header, []byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
	defer cancel()
	resp, tripErr := s.transport.RoundTrip(req.WithContext(ctx))
	if tripErr != nil {
		return 0, nil, nil, tripErr
	}
	defer resp.Body.Close()
	body, readErr := io.ReadAll(io.LimitReader(resp.Body, maxDocumentBytes))
	if readErr != nil {
		return 0, nil, nil, readErr
	}
	return resp.StatusCode, resp.Header, body, nil
}

// report logs the first failure of a run, not every retry.
func (s *idpState) report(err error) {
	s.mu.Lock()
	first := !s.failing
	s.failing = true
	s.mu.Unlock()
	if first {
		log.Printf("nextauth plugin: cannot read from the IdP at %s (its forward-auth decides while "+
			"this plugin's copy is too old): %v", s.base, err)
	}
}

func (s *idpState) recovered() {
	s.mu.Lock()
	was := s.failing
	s.failing = false
	s.mu.Unlock()
	if was {
		log.Printf("nextauth plugin: reading from the IdP at %s again", s.base)
	}
}

func parseKeys(body []byte) (map[string]ed25519.PublicKey, error) {
	var jwks struct {
		Keys []struct {
			Kty string `json:"kty"`
			Crv string `json:"crv"`
			X   string `json:"x"`
			Kid string `json:"kid"`
			Alg string `json:"alg"`
		} `json:"keys"`
	}
	if err := json.Unmarshal(body, &jwks); err != nil {
		return nil, fmt.Errorf("/auth/keys: %v", err)
	}
	keys := map[string]ed25519.PublicKey{}
	for _, key := range jwks.Keys {
		if key.Kty != "OKP" || key.Crv != "Ed25519" || key.Kid == "" || (key.Alg != "" && key.Alg != "Ed25519") {
			continue
		}
		raw, err := base64.RawURLEncoding.DecodeString(key.X)
		if err != nil || len(raw) != ed25519.PublicKeySize {
			continue
		}
		keys[key.Kid] = ed25519.PublicKey(raw)
	}
	return keys, nil
}
