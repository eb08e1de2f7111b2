package ehsm

import (
	"context"
	"fmt"
	"math"
	"strings"

	"github.com/ppml-project/ppml/kms"
	"github.com/ppml-project/ppml/kms/secrets"
)

// secretAction serves one secret manager action (ehsm-protocol.md §14).
type secretAction func(ctx context.Context, c kms.Caller, p payload) (map[string]any, string, error)

// secretFields are the payload types eHSM's checker enforces; lengths and
// formats are the core's (kms/secrets).
var secretFields = map[string][]field{
	"CreateSecret": {{name: "secretName", typ: tString, required: true}, {name: "secretData", typ: tString, required: true},
		{name: "encryptionKeyId", typ: tKeyID}, {name: "description", typ: tString}, {name: "rotationInterval", typ: tString}},
	"UpdateSecretDesc":     {{name: "secretName", typ: tString, required: true}, {name: "description", typ: tString}},
	"PutSecretValue":       {{name: "secretName", typ: tString, required: true}, {name: "secretData", typ: tString, required: true}},
	"ListSecretVersionIds": {{name: "secretName", typ: tString, required: true}},
	"ListSecrets":          {{name: "secretName", typ: tString}},
	"DescribeSecret":       {{name: "secretName", typ: tString, required: true}},
	"DeleteSecret": {{name: "secretName", typ: tString, required: true}, {name: "recoveryPeriod", typ: tInt, min: 1, max: secrets.MaxRecoveryDays},
		{name: "forceDelete", typ: tString, max: 5}, {name: "force_delete", typ: tString, max: 5}},
	"GetSecretValue": {{name: "secretName", typ: tString, required: true}, {name: "versionId", typ: tInt, min: 1, max: math.MaxInt32}},
	"RestoreSecret":  {{name: "secretName", typ: tString, required: true}},
}

// ms renders a time as eHSM does (milliseconds since the epoch, 0 for none).
func msOf(t interface{ UnixMilli() int64 }, zero bool) int64 {
	if zero {
		return 0
	}
	return t.UnixMilli()
}

// secretActions returns the secret manager; none without one. The result
// objects carry exactly the fields eHSM's Python SDK builds its response
// classes from (extra fields would make them fail).
func (h *Handler) secretActions() map[string]secretAction {
	sm := h.secrets
	if sm == nil {
		return nil
	}
	return map[string]secretAction{
		"CreateSecret": func(ctx context.Context, c kms.Caller, p payload) (map[string]any, string, error) {
			name := p.str("secretName")
			err := sm.Create(ctx, c, secrets.CreateRequest{Name: name, Data: p.str("secretData"), EncryptionKeyID: p.str("encryptionKeyId"),
				Description: p.str("description"), RotationInterval: p.str("rotationInterval")})
			return nil, fmt.Sprintf("The %s create success.", name), err
		},
		"UpdateSecretDesc": func(ctx context.Context, c kms.Caller, p payload) (map[string]any, string, error) {
			return nil, "Update secret description success.", sm.UpdateDescription(ctx, c, p.str("secretName"), p.str("description"))
		},
		"PutSecretValue": func(ctx context.Context, c kms.Caller, p payload) (map[string]any, string, error) {
			name := p.str("secretName")
			v, err := sm.PutValue(ctx, c, name, p.str("secretData"))
			return nil, fmt.Sprintf("The %s new version %d put success.", name, v), err
		},
		"ListSecretVersionIds": func(ctx context.Context, c kms.Caller, p payload) (map[string]any, string, error) {
			name := p.str("secretName")
			vs, err := sm.Versions(ctx, c, name)
			if err != nil {
				return nil, "", err
			}
			ids := []map[string]any{}
			for _, v := range vs {
				ids = append(ids, map[string]any{"versionId": v.Version, "createTime": v.CreatedAt.UnixMilli()})
			}
			return map[string]any{"secretName": name, "totalCount": len(ids), "versionIds": ids}, "List secret versionIds success.", nil
		},
		"ListSecrets": func(ctx context.Context, c kms.Caller, p payload) (map[string]any, string, error) {
			list, err := sm.List(ctx, c, p.str("secretName"))
			if err != nil {
				return nil, "", err
			}
			out := []map[string]any{}
			for _, s := range list {
				item := map[string]any{"secretName": s.Name, "createTime": s.CreatedAt.UnixMilli()}
				if s.Description != "" {
					item["description"] = s.Description
				}
				out = append(out, item)
			}
			return map[string]any{"totalCount": len(out), "secretList": out}, "List secrets success.", nil
		},
		"DescribeSecret": func(ctx context.Context, c kms.Caller, p payload) (map[string]any, string, error) {
			s, err := sm.Describe(ctx, c, p.str("secretName"))
			if err != nil {
				return nil, "", err
			}
			// The SDK reads rationalInterval (sic); eHSM's server writes
			// rotationInterval, which the SDK's class rejects: send its spelling.
			return map[string]any{"secretName": s.Name, "description": s.Description, "createTime": s.CreatedAt.UnixMilli(),
					"plannedDeleteTime": msOf(s.DeletionAt, s.DeletionAt.IsZero()), "rationalInterval": s.RotationInterval,
					"lastRotationDate": msOf(s.LastRotation, s.LastRotation.IsZero()), "nextRotationDate": msOf(s.NextRotation, s.NextRotation.IsZero())},
				"Describe secrets success.", nil
		},
		"DeleteSecret": func(ctx context.Context, c kms.Caller, p payload) (map[string]any, string, error) {
			name := p.str("secretName")
			// eHSM's server reads forceDelete; its Python SDK sends force_delete.
			flag := p.str("forceDelete")
			if flag == "" {
				flag = p.str("force_delete")
			}
			var force bool
			switch strings.ToLower(flag) {
			case "", "false":
			case "true":
				force = true
			default:
				return nil, "", bad("invalid_parameter", "The forceDelete must be true or false (got %q)", flag)
			}
			when, err := sm.Delete(ctx, c, name, p.int("recoveryPeriod"), force)
			if err != nil {
				return nil, "", err
			}
			if force {
				return nil, fmt.Sprintf("The %s delete success", name), nil
			}
			return nil, fmt.Sprintf("The %s will be deleted at %s (RestoreSecret cancels it until then).", name, when.UTC().Format("2006-01-02T15:04:05Z")), nil
		},
		"GetSecretValue": func(ctx context.Context, c kms.Caller, p payload) (map[string]any, string, error) {
			v, err := sm.Value(ctx, c, p.str("secretName"), p.int("versionId"))
			if err != nil {
				return nil, "", err
			}
			return map[string]any{"secretName": v.Name, "secretData": v.Data, "versionId": v.Version, "createTime": v.CreatedAt.UnixMilli()}, "successful", nil
		},
		"RestoreSecret": func(ctx context.Context, c kms.Caller, p payload) (map[string]any, string, error) {
			name := p.str("secretName")
			return nil, fmt.Sprintf("The %s restore success.", name), sm.Restore(ctx, c, name)
		},
	}
}
