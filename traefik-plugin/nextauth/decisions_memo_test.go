package nextauth

// The memory of decisions (decide, state.go's decisionMemo) must give every request the answer the rules
// give it: the same answers in any order and a second time, a new policy decided afresh, and a bounded
// memory.

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

// Every case of the decision table, one plugin per rule set, each case asked twice in a row and the
// whole set twice over: users of one request line share its remembered rule, never its verdict.
func TestEveryDecisionIsTheSameFromMemory(t *testing.T) {
	table := readTable(t)
	for setName, rules := range table.RuleSets {
		idp := newFakeIdp(t, rules)
		handler, passedAs := tableHandler(t, idp)
		for round := 0; round < 2; round++ {
			for _, c := range table.Cases {
				if c.Rules != setName {
					continue
				}
				for again := 0; again < 2; again++ {
					*passedAs = notPassed
					answer := askCase(t, handler, idp, c)
					if want := wantStatus[c.Verdict]; answer.Code != want {
						t.Errorf("%s (round %d, ask %d): status %d, want %d", c.Name, round, again, answer.Code, want)
					}
					if c.Verdict == "allow" && c.User != nil && *passedAs != c.User.Sub {
						t.Errorf("%s: passed as %q, want %q", c.Name, *passedAs, c.User.Sub)
					}
				}
			}
		}
		if calls := atomic.LoadInt32(&idp.forwards); calls != 0 {
			t.Errorf("rule set %s: the plugin asked /auth/forward %d times", setName, calls)
		}
	}
}

// A policy the IdP publishes later decides the same request line afresh.
func TestANewPolicyDecidesAgain(t *testing.T) {
	idp := newFakeIdp(t, ruleSet{Default: json.RawMessage(`{"policy": "public"}`)})
	handler, _ := tableHandler(t, idp)
	ask := func() int {
		req := httptest.NewRequest(http.MethodGet, "/reports", nil)
		req.Host = "app.test"
		answer := httptest.NewRecorder()
		handler.ServeHTTP(answer, req)
		return answer.Code
	}
	if code := ask(); code != http.StatusOK {
		t.Fatalf("public: %d", code)
	}
	denyReports(t, idp, handler.(*Middleware).state, `{"policy": "public"}`)
	if code := ask(); code != http.StatusForbidden {
		t.Fatalf("after the IdP denied /reports: %d", code)
	}
}

// denyReports has the fake IdP publish a policy that denies /reports (else defaultRule) and the plugin
// fetch it.
func denyReports(t *testing.T, idp *fakeIdp, state *idpState, defaultRule string) {
	t.Helper()
	waitForBackgroundFetch(state)
	closed := policyJSON(t, ruleSet{
		Default: json.RawMessage(defaultRule),
		Rules:   []json.RawMessage{json.RawMessage(`{"paths": ["/reports"], "policy": "deny"}`)},
	})
	idp.server.Config.Handler = swapPolicy(idp.server.Config.Handler, closed)
	state.fetchPolicy()
}

// swapPolicy answers /auth/policy with body and passes everything else to the fake IdP.
func swapPolicy(idp http.Handler, body []byte) http.Handler {
	return http.HandlerFunc(func(rw http.ResponseWriter, req *http.Request) {
		if req.URL.Path == "/auth/policy" {
			rw.Header().Set("Content-Type", "application/json")
			_, _ = rw.Write(body)
			return
		}
		idp.ServeHTTP(rw, req)
	})
}

func TestTheMemoryOfDecisionsIsBounded(t *testing.T) {
	memo := &decisionMemo{}
	for i := 0; i < decisionsMax+10; i++ {
		memo.put(strings.Repeat("x", i%50)+string(rune('a'+i%26))+strings.Repeat("y", i/26), decided{})
		if len(memo.decided) > decisionsMax {
			t.Fatalf("%d decisions remembered", len(memo.decided))
		}
	}
	long := strings.Repeat("/a", decisionKeyMax)
	memo.put(long, decided{admitted: true})
	if _, known := memo.get(long); known {
		t.Fatal("a request line longer than decisionKeyMax was remembered")
	}
}
