// Package docs embeds the documentation files the daemon serves itself:
// the OpenAPI description of the /v1 admin and shop API.
package docs

import _ "embed"

// OpenAPI is docs/openapi.yaml, served at GET /v1/openapi.yaml.
//
//go:embed openapi.yaml
var OpenAPI []byte
