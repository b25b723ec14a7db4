// Package hcl owns obcd's stack language: it parses a stack file, decodes
// it against explicit schemas, evaluates it for one environment and
// returns either a resolved *Stack or diagnostics with source ranges.
package hcl

import "github.com/hashicorp/hcl/v2"

// Top-level block types. Every name the language accepts is a constant
// here, so a schema and its error messages never drift apart.
const (
	blockStack       = "stack"
	blockVariable    = "variable"
	blockLocals      = "locals"
	blockSecret      = "secret"
	blockDjango      = "django"
	blockService     = "service"
	blockMonitoring  = "monitoring"
	blockEnvironment = "environment"
	blockValidation  = "validation"
	blockUser        = "user"
	blockReceiver    = "receiver"
	blockHealthcheck = "healthcheck"
	blockProbe       = "probe"
	blockState       = "state"
	blockWaive       = "waive"
)

// Roots of references an expression may use.
const (
	rootVar         = "var"
	rootLocal       = "local"
	rootService     = "service"
	rootSecret      = "secret"
	rootEnvironment = "environment"
)

// rootSchema is the schema of a stack file's top level.
var rootSchema = &hcl.BodySchema{
	Blocks: []hcl.BlockHeaderSchema{
		{Type: blockStack, LabelNames: []string{"name"}},
		{Type: blockVariable, LabelNames: []string{"name"}},
		{Type: blockLocals},
		{Type: blockSecret, LabelNames: []string{"name"}},
		{Type: blockDjango},
		{Type: blockService, LabelNames: []string{"kind", "name"}},
		{Type: blockMonitoring},
		{Type: blockEnvironment, LabelNames: []string{"name"}},
		{Type: blockProbe, LabelNames: []string{"name"}},
		{Type: blockState},
		{Type: blockWaive, LabelNames: []string{"code"}},
	},
}

// environmentSchema is the schema of an environment block: its own
// attributes plus override blocks whose bodies may only set attributes.
var environmentSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "domain", Required: true},
		{Name: "docker_host"},
		{Name: "docker_cert_path"},
		{Name: "engine"},
		{Name: "public_url"},
		{Name: "watch"},
		{Name: "tier"},
	},
	Blocks: []hcl.BlockHeaderSchema{
		{Type: blockService, LabelNames: []string{"name"}},
		{Type: blockProbe, LabelNames: []string{"name"}},
		{Type: blockDjango},
		{Type: blockMonitoring},
	},
}

// environmentAttrs are the attributes of the `environment` object that
// expressions can read.
var environmentAttrs = []string{"name", "domain", "docker_host", "engine", "public_url", "tier"}
