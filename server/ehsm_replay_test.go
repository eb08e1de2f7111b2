package server_test

import (
	"bytes"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/ppml-project/ppml/server/servertest"
	"github.com/ppml-project/ppml/wire/ehsmsig"
)

// The eHSM signed string is unescaped key=value pairs joined with '&', so
// a captured request with nonce N and payload {a:b} signs the same string
// as nonce "N&payload=a=b" without payload. That shifted request used to be
// accepted as new (its (appid, nonce, timestamp) differs); now the nonce is
// refused and the replay record is the hash of the whole signed string.
func TestEHSMShiftedReplay(t *testing.T) {
	for _, st := range servertest.Stores(t) {
		t.Run(st, func(t *testing.T) {
			inst := servertest.Start(t, servertest.Options{Store: st})
			_, cfg := inst.Enroll(t)
			r := newRaw(t, inst, cfg)
			ts := strconv.FormatInt(time.Now().UnixMilli(), 10)
			canon := ehsmsig.Canonical(ehsmsig.Envelope(cfg.AppID, "N", ts, map[string]any{"a": "b"}))
			sign := ehsmsig.Sign([]byte(cfg.APIKey), canon)
			captured := []byte(fmt.Sprintf(`{"appid":%q,"nonce":"N","payload":{"a":"b"},"timestamp":%q,"sign":%q}`, cfg.AppID, ts, sign))
			ok(t, r.post("ListKey", captured))
			expectCode(t, r.post("ListKey", captured), 400, "Timestamp can't be repeated")

			shifted := []byte(fmt.Sprintf(`{"appid":%q,"nonce":"N&payload=a=b","timestamp":%q,"sign":%q}`, cfg.AppID, ts, sign))
			if c := ehsmsig.Canonical(ehsmsig.Envelope(cfg.AppID, "N&payload=a=b", ts, nil)); c != canon {
				t.Fatalf("the premise: %q != %q", c, canon)
			}
			if e := r.post("ListKey", shifted); e.Code == 200 {
				t.Fatalf("shifted replay accepted: %+v", e)
			} else if !bytes.Contains([]byte(e.Message), []byte("nonce")) {
				t.Fatalf("shifted replay: %+v", e)
			}
			// Field names that would shift the string are refused too.
			ts2 := strconv.FormatInt(time.Now().UnixMilli()+1, 10)
			p := map[string]any{"a&nonce": "x"}
			s2 := ehsmsig.Sign([]byte(cfg.APIKey), ehsmsig.Canonical(ehsmsig.Envelope(cfg.AppID, "", ts2, p)))
			expectCode(t, r.post("ListKey", []byte(fmt.Sprintf(`{"appid":%q,"payload":{"a&nonce":"x"},"timestamp":%q,"sign":%q}`, cfg.AppID, ts2, s2))), 400, "ambiguous")

			// Two JSON bodies with the same signed string are one request:
			// an empty field is dropped from the string.
			ts3 := strconv.FormatInt(time.Now().UnixMilli()+2, 10)
			s3 := ehsmsig.Sign([]byte(cfg.APIKey), ehsmsig.Canonical(ehsmsig.Envelope(cfg.AppID, "M", ts3, map[string]any{"a": "b"})))
			ok(t, r.post("ListKey", []byte(fmt.Sprintf(`{"appid":%q,"nonce":"M","payload":{"a":"b"},"timestamp":%q,"sign":%q}`, cfg.AppID, ts3, s3))))
			expectCode(t, r.post("ListKey", []byte(fmt.Sprintf(`{"appid":%q,"nonce":"M","payload":{"a":"b","c":""},"timestamp":%q,"sign":%q}`, cfg.AppID, ts3, s3))), 400, "Timestamp can't be repeated")
		})
	}
}
