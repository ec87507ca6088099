package nextauth

// Identity headers a client sent are dropped under every spelling a CGI, WSGI or PHP server would read
// as one of them; the length check that spares most headers the folding must not spare any of those.

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

func TestEverySpellingOfAnIdentityHeaderIsStripped(t *testing.T) {
	p := parsePolicy(policyJSON(t, ruleSet{Default: json.RawMessage(`"authenticated"`)}))
	if p == nil {
		t.Fatal("policy not understood")
	}
	forged := []string{
		"Remote-User", "Remote_User", "Remote.User", "Remote~User", "REMOTE-EMAIL", "remote_groups",
		"Remote-Auth_Method", "Remote-Name",
	}
	kept := []string{"Accept", "Cookie", "Remote-Usex", "Remote-Users", "X-Remote-User", "Remote-Auth-Methods"}
	checkStripped(t, p, forged, kept)
}

// checkStripped sends the forged and the kept headers together through stripIdentity.
func checkStripped(t *testing.T, p *policy, forged, kept []string) {
	t.Helper()
	header := http.Header{}
	for _, name := range forged {
		header[name] = []string{"mallory"}
	}
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

// Names are sorted into lengths modulo 64: an identity header name of 64 bytes or more is stripped under
// every spelling too, and a header whose length only shares its remainder is compared, not dropped.
func TestLongIdentityHeaderNamesAreStrippedUnderEverySpelling(t *testing.T) {
	long := "X-Authenticated-User-Of-The-Single-Sign-On-Service-At-This-Company" // 66 bytes
	headers := map[string]string{
		"user": long, "name": "Remote-Name", "email": "Remote-Email", "groups": "Remote-Groups",
		"method": "Remote-Auth-Method",
	}
	p := parsePolicy(policyJSON(t, ruleSet{Default: json.RawMessage(`"authenticated"`)},
		map[string]interface{}{"headers": headers}))
	if p == nil {
		t.Fatal("policy not understood")
	}
	forged := []string{long, "x_authenticated_user_of_the_single_sign_on_service_at_this_company"}
	// 2 and 130 bytes long: the remainder of the identity header's length.
	checkStripped(t, p, forged, []string{"Xy", long + strings.Repeat("Z", 64)})
}
