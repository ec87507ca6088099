package nextauth

// The memory of requests let through (remembered, passMemo) must never let through what the full
// decision would refuse: a session that ended, another request line or token, a token past its exp, an
// ended list too old to trust, a policy the IdP replaced.

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// memoIdp is a fake IdP whose /auth/ended answer the test can change.
func memoIdp(t *testing.T, rules ruleSet) (*fakeIdp, *atomic.Value) {
	t.Helper()
	idp := newFakeIdp(t, rules)
	ended := &atomic.Value{}
	ended.Store(`{"ended": []}`)
	published := idp.server.Config.Handler
	idp.server.Config.Handler = http.HandlerFunc(func(rw http.ResponseWriter, req *http.Request) {
		if req.URL.Path == "/auth/ended" {
			rw.Header().Set("Content-Type", "application/json")
			_, _ = rw.Write([]byte(ended.Load().(string)))
			return
		}
		published.ServeHTTP(rw, req)
	})
	return idp, ended
}

// settledHandler is tableHandler once New's first fetch is over: a snapshot it published later would
// start a new memory under the test.
func settledHandler(t *testing.T, idp *fakeIdp) (http.Handler, *string) {
	t.Helper()
	handler, passedAs := tableHandler(t, idp)
	waitForBackgroundFetch(handler.(*Middleware).state)
	return handler, passedAs
}

func askWith(handler http.Handler, uri, token string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodGet, uri, nil)
	req.Host = "app.test"
	req.Header.Set("Accept", "application/json")
	req.Header.Set(testHeaders.User, "mallory")
	if token != "" {
		req.AddCookie(&http.Cookie{Name: testCookie, Value: token})
	}
	answer := httptest.NewRecorder()
	handler.ServeHTTP(answer, req)
	return answer
}

func rememberedCount(handler http.Handler) int {
	memo := handler.(*Middleware).state.snapshot().passes
	memo.mu.Lock()
	defer memo.mu.Unlock()
	return len(memo.passes)
}

func TestARememberedRequestStopsWhenItsSessionEnds(t *testing.T) {
	idp, ended := memoIdp(t, ruleSet{Default: json.RawMessage(`{"policy": "authenticated"}`)})
	handler, passedAs := settledHandler(t, idp)
	token := idp.sessionToken(t, &tableUser{Sub: "mia"})
	for i := 0; i < 2; i++ {
		if answer := askWith(handler, "/reports", token); answer.Code != http.StatusOK || *passedAs != "mia" {
			t.Fatalf("ask %d: %d as %q", i, answer.Code, *passedAs)
		}
	}
	if rememberedCount(handler) != 1 {
		t.Fatalf("%d requests remembered, want 1", rememberedCount(handler))
	}
	ended.Store(`{"ended": [{"sid": "sid-mia", "exp": 9999999999}]}`)
	handler.(*Middleware).state.fetchEnded()
	*passedAs = notPassed
	if answer := askWith(handler, "/reports", token); answer.Code != http.StatusUnauthorized {
		t.Fatalf("after logout: %d, passed as %q", answer.Code, *passedAs)
	}
	if *passedAs != notPassed {
		t.Fatalf("an ended session reached the application as %q", *passedAs)
	}
}

func TestARememberedRequestIsItsTokensAndItsRequestLinesOnly(t *testing.T) {
	idp, _ := memoIdp(t, ruleSet{
		Default: json.RawMessage(`{"policy": "authenticated"}`),
		Rules:   []json.RawMessage{json.RawMessage(`{"paths": ["/admin"], "groups": ["admins"], "policy": "authenticated"}`)},
	})
	handler, passedAs := settledHandler(t, idp)
	mia := idp.sessionToken(t, &tableUser{Sub: "mia", Groups: []string{"staff"}})
	ada := idp.sessionToken(t, &tableUser{Sub: "ada", Groups: []string{"admins"}})
	if answer := askWith(handler, "/reports", mia); answer.Code != http.StatusOK || *passedAs != "mia" {
		t.Fatalf("mia on /reports: %d as %q", answer.Code, *passedAs)
	}
	*passedAs = notPassed
	if answer := askWith(handler, "/admin", mia); answer.Code != http.StatusForbidden || *passedAs != notPassed {
		t.Fatalf("mia on /admin: %d as %q", answer.Code, *passedAs)
	}
	if answer := askWith(handler, "/reports", ada); answer.Code != http.StatusOK || *passedAs != "ada" {
		t.Fatalf("ada on /reports: %d as %q", answer.Code, *passedAs)
	}
	*passedAs = notPassed
	if answer := askWith(handler, "/reports", ""); answer.Code != http.StatusUnauthorized || *passedAs != notPassed {
		t.Fatalf("no cookie on /reports: %d as %q", answer.Code, *passedAs)
	}
	// Over TLS the request line is another one (a policy may admit a host on one scheme only).
	req := httptest.NewRequest(http.MethodGet, "https://app.test/reports", nil)
	req.AddCookie(&http.Cookie{Name: testCookie, Value: mia})
	m := handler.(*Middleware)
	if key, who := remembered(m, m.state.snapshot(), req, time.Now().UnixNano()); who != nil ||
		!strings.HasPrefix(key, "https\x00") {
		t.Fatalf("a TLS request: key %q, remembered as %v", key, who)
	}
}

// Asked directly with a chosen time: a remembered request is not served from memory once its token has
// expired, nor while the ended list is older than refreshSeconds (the full path fetches it first).
func TestARememberedRequestNeedsACurrentTokenAndEndedList(t *testing.T) {
	idp, _ := memoIdp(t, ruleSet{Default: json.RawMessage(`{"policy": "authenticated"}`)})
	handler, _ := settledHandler(t, idp)
	m := handler.(*Middleware)
	token := idp.sessionToken(t, &tableUser{Sub: "mia"})
	if answer := askWith(handler, "/reports", token); answer.Code != http.StatusOK {
		t.Fatalf("first ask: %d", answer.Code)
	}
	req := httptest.NewRequest(http.MethodGet, "/reports", nil)
	req.Host = "app.test"
	req.AddCookie(&http.Cookie{Name: testCookie, Value: token})
	snap := m.state.snapshot()
	now := snap.endedAt
	_, found := remembered(m, snap, req, now)
	if found == nil || found.Sub != "mia" {
		t.Fatalf("not remembered: %v", found)
	}
	if _, again := remembered(m, snap, req, now+m.endedEvery+1); again != nil {
		t.Fatal("served from memory with an ended list older than refreshSeconds")
	}
	// The same memory with a policy and an ended list just fetched, at the token's exp.
	atExp := *snap
	atExp.endedAt = found.Exp * int64(time.Second)
	atExp.policyAt = atExp.endedAt
	if _, again := remembered(m, &atExp, req, atExp.endedAt); again != nil {
		t.Fatal("served from memory at the token's exp")
	}
}

// A policy the IdP publishes later starts a new memory: a request it now denies is denied.
func TestANewPolicyForgetsRememberedRequests(t *testing.T) {
	idp, _ := memoIdp(t, ruleSet{Default: json.RawMessage(`{"policy": "authenticated"}`)})
	handler, passedAs := settledHandler(t, idp)
	token := idp.sessionToken(t, &tableUser{Sub: "mia"})
	if answer := askWith(handler, "/reports", token); answer.Code != http.StatusOK {
		t.Fatalf("first ask: %d", answer.Code)
	}
	denyReports(t, idp, handler.(*Middleware).state, `{"policy": "authenticated"}`)
	*passedAs = notPassed
	if answer := askWith(handler, "/reports", token); answer.Code != http.StatusForbidden || *passedAs != notPassed {
		t.Fatalf("after the IdP denied /reports: %d, passed as %q", answer.Code, *passedAs)
	}
}

func TestTheMemoryOfRequestsIsBounded(t *testing.T) {
	memo := &passMemo{}
	who := &session{Sid: "s", Sub: "mia"}
	for i := 0; i < passesMax+10; i++ {
		memo.put(strings.Repeat("k", i%64)+string(rune('a'+i%26))+strings.Repeat("z", i/26), passed{who: who})
	}
	if len(memo.passes) != passesMax {
		t.Fatalf("%d requests remembered, want %d", len(memo.passes), passesMax)
	}
	long := strings.Repeat("t", passKeyMax+1)
	fresh := &passMemo{}
	fresh.put(long, passed{who: who})
	if _, known := fresh.passes[long]; known {
		t.Fatal("a key longer than passKeyMax was remembered")
	}
}

// A remembered request is found by its token as sent: the same request line with the token's signature
// or its claims changed is decided afresh (and refused), and nothing refused is remembered.
func TestATamperedTokenIsNotServedFromTheMemoryOfRequests(t *testing.T) {
	idp, _ := memoIdp(t, ruleSet{Default: json.RawMessage(`{"policy": "authenticated"}`)})
	handler, passedAs := settledHandler(t, idp)
	token := idp.sessionToken(t, &tableUser{Sub: "mia"})
	if answer := askWith(handler, "/reports", token); answer.Code != http.StatusOK || *passedAs != "mia" {
		t.Fatalf("first ask: %d as %q", answer.Code, *passedAs)
	}
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("not a compact JWS: %q", token)
	}
	flip := func(text string) string { // one character of the text changed, still base64url
		if text[len(text)/2] == 'A' {
			return text[:len(text)/2] + "B" + text[len(text)/2+1:]
		}
		return text[:len(text)/2] + "A" + text[len(text)/2+1:]
	}
	for name, forged := range map[string]string{
		"signature": parts[0] + "." + parts[1] + "." + flip(parts[2]),
		"claims":    parts[0] + "." + flip(parts[1]) + "." + parts[2],
		"appended":  token + "A",
	} {
		*passedAs = notPassed
		if answer := askWith(handler, "/reports", forged); answer.Code != http.StatusUnauthorized ||
			*passedAs != notPassed {
			t.Fatalf("%s changed: %d, passed as %q", name, answer.Code, *passedAs)
		}
	}
	if rememberedCount(handler) != 1 {
		t.Fatalf("%d requests remembered, want only the genuine one", rememberedCount(handler))
	}
	if answer := askWith(handler, "/reports", token); answer.Code != http.StatusOK || *passedAs != "mia" {
		t.Fatalf("the genuine token afterwards: %d as %q", answer.Code, *passedAs)
	}
}
