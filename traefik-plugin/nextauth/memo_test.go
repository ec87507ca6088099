package nextauth

// The memory of checked tokens (idpState.checkToken) must never let through what checkToken would refuse:
// a token is remembered only under the policy and keys it was checked with, and never past its exp.

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"testing"
	"time"
)

func memoSnapshot(t *testing.T, key ed25519.PublicKey) *snapshot {
	t.Helper()
	p := parsePolicy(policyJSON(t, ruleSet{Default: json.RawMessage(`"authenticated"`)}))
	if p == nil {
		t.Fatal("policy not understood")
	}
	return &snapshot{keys: map[string]ed25519.PublicKey{testKid: key}, policy: p, generation: 1}
}

func memoToken(t *testing.T, private ed25519.PrivateKey, exp int64) string {
	t.Helper()
	return signedToken(t, private, map[string]interface{}{
		"iss": testIssuer, "aud": testAudience, "sid": "sid-memo", "sub": "mia", "auth_time": exp - 7200,
		"iat": exp - 7200, "exp": exp,
	})
}

func TestACheckedTokenIsRememberedUntilItsExp(t *testing.T) {
	public, private, _ := ed25519.GenerateKey(rand.Reader)
	s := &idpState{}
	snap := memoSnapshot(t, public)
	now := time.Unix(1_800_000_000, 0)
	token := memoToken(t, private, now.Unix()+60)
	if who, result := s.checkToken(token, snap, now.UnixNano()); result != tokenValid || who.Sub != "mia" {
		t.Fatalf("a good token: %v %v", who, result)
	}
	if len(s.verified) != 1 {
		t.Fatalf("not remembered: %d", len(s.verified))
	}
	// Remembered: even with the key gone from this (same-generation) snapshot, it passes ...
	forgetful := *snap
	forgetful.keys = map[string]ed25519.PublicKey{}
	if _, result := s.checkToken(token, &forgetful, now.Add(30*time.Second).UnixNano()); result != tokenValid {
		t.Fatalf("the memory was not used: %v", result)
	}
	// ... but not past its exp, whatever the memory says.
	if _, result := s.checkToken(token, snap, now.Add(61*time.Second).UnixNano()); result != tokenNone {
		t.Fatalf("an expired token passed: %v", result)
	}
}

func TestANewPolicyOrKeySetChecksTokensAgain(t *testing.T) {
	public, private, _ := ed25519.GenerateKey(rand.Reader)
	s := &idpState{}
	snap := memoSnapshot(t, public)
	now := time.Unix(1_800_000_000, 0)
	token := memoToken(t, private, now.Unix()+3600)
	if _, result := s.checkToken(token, snap, now.UnixNano()); result != tokenValid {
		t.Fatalf("a good token: %v", result)
	}
	// The IdP now publishes another key under the same kid (the old one is gone): the token is checked
	// again and fails.
	other, _, _ := ed25519.GenerateKey(rand.Reader)
	rotated := memoSnapshot(t, other)
	rotated.generation = snap.generation + 1
	if _, result := s.checkToken(token, rotated, now.UnixNano()); result != tokenNone {
		t.Fatalf("a token signed by a withdrawn key passed: %v", result)
	}
}

func TestTamperedTokensAreNeverRemembered(t *testing.T) {
	public, private, _ := ed25519.GenerateKey(rand.Reader)
	s := &idpState{}
	snap := memoSnapshot(t, public)
	now := time.Unix(1_800_000_000, 0)
	token := memoToken(t, private, now.Unix()+3600)
	tampered := token[:len(token)-4] + "AAAA"
	for i := 0; i < 2; i++ {
		if _, result := s.checkToken(tampered, snap, now.UnixNano()); result != tokenNone {
			t.Fatalf("a tampered token passed: %v", result)
		}
	}
	if len(s.verified) != 0 {
		t.Fatalf("a refused token was remembered")
	}
}
