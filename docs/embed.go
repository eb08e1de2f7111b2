// Package docs embeds the machine-readable parts of the documentation: the
// OpenAPI description of the native API (openapi.yaml), which the server
// serves at GET /v1/openapi.json.
package docs

import (
	_ "embed"

	"sigs.k8s.io/yaml"
)

//go:embed openapi.yaml
var OpenAPIYAML []byte

// OpenAPIJSON returns openapi.yaml as JSON.
func OpenAPIJSON() ([]byte, error) {
	b, err := yaml.YAMLToJSON(OpenAPIYAML)
	if err != nil {
		return nil, err
	}
	return b, nil
}
