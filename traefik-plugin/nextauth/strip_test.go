package nextauth

// Identity headers a client sent are dropped under every spelling a CGI, WSGI or PHP server would read
// as one of them; the length check that spares most headers the folding must not spare any of those.

import (
	"encoding/json"
	"net/http"
	"testing"
)

func TestEverySpellingOfAnIdentityHeaderIsStripped(t *testing.T) {
	p := parsePolicy(policyJSON(t, ruleSet{Default: json.RawMessage(`"authenticated"`)}))
	if p == nil {
		t.Fatal("policy not understood")
	}
	header := http.Header{}
	forged := []string{
		"Remote-User", "Remote_User", "Remote.User", "Remote~User", "REMOTE-EMAIL", "remote_groups",
		"Remote-Auth_Method", "Remote-Name",
	}
	for _, name := range forged {
		header[name] = []string{"mallory"}
	}
	kept := []string{"Accept", "Cookie", "Remote-Usex", "Remote-Users", "X-Remote-User", "Remote-Auth-Methods"}
	for _, name := range kept {
		header[name] = []string{"kept"}
	}
	stripIdentity(header, p)
	for _, name := range forged {
		if _, present := header[name]; present {
			t.Errorf("%s was passed on", name)
		}
	}
	for _, name := range kept {
		if header[name] == nil {
			t.Errorf("%s was dropped", name)
		}
	}
}
