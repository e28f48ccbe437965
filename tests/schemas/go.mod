// The module whose files hold an official schema the report tests check against: OASIS's
// SARIF 2.1.0 JSON schema (errata01), which go-sarif embeds byte for byte as a Go string in
// pkg/report/v210/sarif/schema.go. Nothing is built from it; tests/official_schemas.py
// downloads it through the Go module proxy, checks go.sum, then the schema's own sha256.
module modelgate.test/schemas

go 1.22

require github.com/owenrumney/go-sarif/v3 v3.3.1
