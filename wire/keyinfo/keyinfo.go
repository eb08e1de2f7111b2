// Package keyinfo is the description of a KMS key as the native API sends
// it: the kms core returns it, the client reads it.
package keyinfo

import "time"

// Info describes a primary key (no material).
type Info struct {
	ID              string    `json:"keyid"`
	Name            string    `json:"name,omitempty"`
	Spec            string    `json:"keyspec"`
	Origin          string    `json:"origin"`
	Usage           string    `json:"keyusage,omitempty"`
	State           string    `json:"state"`
	Version         int       `json:"version"`
	CreatedAt       time.Time `json:"created_at"`
	DeletionAt      time.Time `json:"deletion_at,omitzero"`
	ReleasePolicies []string  `json:"release_policies,omitempty"`
}
