package templates

import (
	"encoding/json"
	"fmt"
	"slices"

	stackhcl "github.com/obcd/obcd/hcl"
)

// PathStackModel is where a release keeps the evaluated stack it was
// rendered from, beside its rendered files. It holds no secret value
// (secrets are referenced by name), and is saved 0600 all the same.
const PathStackModel = ".obcd/stack.json"

// StackModel is the artifact that records s for WithTodaysSecrets.
func StackModel(s *stackhcl.Stack) (Artifact, error) {
	data, err := json.Marshal(s)
	if err != nil {
		return Artifact{}, fmt.Errorf("record the stack model: %w", err)
	}
	return Artifact{Path: PathStackModel, Mode: ModeSecret, Data: data}, nil
}

// ReadStackModel is the stack a release's saved files were rendered
// from; recorded is false when they hold no stack model.
func ReadStackModel(saved []Artifact) (stack *stackhcl.Stack, recorded bool, err error) {
	i := slices.IndexFunc(saved, func(a Artifact) bool { return a.Path == PathStackModel })
	if i < 0 {
		return nil, false, nil
	}
	stack = &stackhcl.Stack{}
	if err := json.Unmarshal(saved[i].Data, stack); err != nil {
		return nil, true, fmt.Errorf("read the release's stack model %s: %w", PathStackModel, err)
	}
	return stack, true, nil
}

// WithTodaysSecrets is a release's saved files with the ones derived from
// secrets (the roles and the PgBouncer userlist, which hold password
// verifiers) rendered again from the release's own stack model and
// today's secret values, and the manifest to match. A rollback needs
// them so: the services log in with today's passwords, so the roles and
// the pool must hold today's verifiers, for the users the release had.
// recorded is false when the release has no stack model (saved before
// obcd recorded one); its files are then returned as they were saved.
func WithTodaysSecrets(saved []Artifact, secrets SecretSource) (out []Artifact, recorded bool, err error) {
	i := slices.IndexFunc(saved, func(a Artifact) bool { return a.Path == PathStackModel })
	if i < 0 {
		return saved, false, nil
	}
	stack, _, err := ReadStackModel(saved)
	if err != nil {
		return nil, true, err
	}
	fresh, err := renderDatabase(stack, secrets)
	if err != nil {
		return nil, true, fmt.Errorf("render the release's secret files with today's secrets: %w", err)
	}
	byPath := map[string]Artifact{}
	for _, a := range fresh {
		if a.Mode == ModeSecret {
			byPath[a.Path] = a
		}
	}
	var files []Artifact
	for _, a := range saved {
		if a.Path == PathManifest || a.Path == PathStackModel {
			continue
		}
		if f, ok := byPath[a.Path]; ok {
			a = f
		}
		files = append(files, a)
	}
	manifest, err := renderManifest(stack, files)
	if err != nil {
		return nil, true, err
	}
	return append(files, manifest, saved[i]), true, nil
}
