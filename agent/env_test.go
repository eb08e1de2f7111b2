package agent_test

import (
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/ppml-project/ppml/agent"
)

func TestEnvAndDataKeySpecs(t *testing.T) {
	t.Setenv("APP_ID", "")
	t.Setenv("ATTESTATION_ID", "old-id")
	var warn strings.Builder
	if got := agent.Getenv(&warn, "APP_ID", "ATTESTATION_ID"); got != "old-id" || warn.String() != "[WARN] ATTESTATION_ID is deprecated; use APP_ID\n" {
		t.Errorf("legacy name: %q, warning %q", got, warn.String())
	}
	t.Setenv("APP_ID", "new-id")
	warn.Reset()
	if got := agent.Getenv(&warn, "APP_ID", "ATTESTATION_ID"); got != "new-id" || warn.Len() != 0 {
		t.Errorf("current name: %q, warning %q", got, warn.String())
	}

	t.Setenv("HTTPS_PROXY", "")
	t.Setenv("ATTESTATION_PORXY_HOST", "proxy.example")
	t.Setenv("ATTESTATION_PORXY_PORT", "3128")
	agent.SetBigDLProxy()
	if got := os.Getenv("HTTPS_PROXY"); got != "http://proxy.example:3128" {
		t.Errorf("HTTPS_PROXY = %q", got)
	}
	t.Setenv("ATTESTATION_PORXY_HOST", "other")
	agent.SetBigDLProxy()
	if got := os.Getenv("HTTPS_PROXY"); got != "http://proxy.example:3128" {
		t.Errorf("a set HTTPS_PROXY was replaced: %q", got)
	}

	keys, err := agent.ParseDataKeys([]string{"data.cbc=gramine:k", "dk=env:K=1"})
	if err != nil || !reflect.DeepEqual(keys, []agent.DataKey{{Wrapped: "data.cbc", Dest: "gramine:k"}, {Wrapped: "dk", Dest: "env:K=1"}}) {
		t.Errorf("%+v %v", keys, err)
	}
	if _, err := agent.ParseDataKeys([]string{"nodest"}); err == nil || err.Error() != `--data-key "nodest": want WRAPPED=DEST` {
		t.Errorf("no =: %v", err)
	}
}
