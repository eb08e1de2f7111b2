package server_test

import (
	"encoding/json"
	"io"
	"net/http"
	"testing"

	"github.com/ppml-project/ppml/client"
	"github.com/ppml-project/ppml/server"
	"github.com/ppml-project/ppml/server/servertest"
)

// A request whose audit record cannot be written (here: /dev/full, a disk
// that is always full) fails with a retryable 503 instead of succeeding
// unaudited.
func TestRequestFailsWhenAuditRecordCannotBeWritten(t *testing.T) {
	for _, mode := range []string{"always", "batch"} {
		t.Run(mode, func(t *testing.T) {
			inst := servertest.Start(t, servertest.Options{Modify: func(c *server.Config) {
				c.AuditLog, c.AuditSync = "/dev/full", mode
			}})
			h, _ := client.HTTPClient(inst.CAFile, 0)
			req, _ := http.NewRequest("POST", inst.URL+"/v1/apps", nil)
			req.Header.Set("Authorization", "Bearer "+inst.AdminToken)
			resp, err := h.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			var e struct {
				Error struct{ Code, Message string }
			}
			json.Unmarshal(body, &e)
			if resp.StatusCode != http.StatusServiceUnavailable || e.Error.Code != "audit_unavailable" {
				t.Fatalf("enroll with an unwritable audit log: %d %s, want 503 audit_unavailable", resp.StatusCode, body)
			}
		})
	}
}
