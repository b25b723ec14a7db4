package swarm

import (
	"fmt"
	"maps"
	"path"
	"slices"
	"strings"

	"github.com/moby/moby/api/types/swarm"
)

// Cause says why a service's running spec must change into the desired
// one, as a plan shows it: what differs, most telling first, without
// printing any value of the environment (a value may be a secret's path
// only, but obcd prints names, never values).
func Cause(current, desired swarm.ServiceSpec) string {
	var causes []string
	cur, want := current.TaskTemplate.ContainerSpec, desired.TaskTemplate.ContainerSpec
	if cur == nil || want == nil {
		return "spec changed"
	}
	if cur.Image != want.Image {
		causes = append(causes, fmt.Sprintf("image %s -> %s", cur.Image, want.Image))
	}
	if a, b := replicasOf(current), replicasOf(desired); a != b {
		causes = append(causes, fmt.Sprintf("replicas %d -> %d", a, b))
	}
	if names := changedEnv(cur.Env, want.Env); len(names) > 0 {
		causes = append(causes, "environment: "+strings.Join(names, ", "))
	}
	if names := changedFiles(configTargets(cur.Configs), configTargets(want.Configs)); len(names) > 0 {
		causes = append(causes, "config "+strings.Join(names, ", "))
	}
	if names := changedFiles(secretTargets(cur.Secrets), secretTargets(want.Secrets)); len(names) > 0 {
		causes = append(causes, "secret "+strings.Join(names, ", "))
	}
	if !slices.Equal(cur.Command, want.Command) || !slices.Equal(cur.Args, want.Args) {
		causes = append(causes, "command")
	}
	if fmt.Sprint(current.TaskTemplate.Placement) != fmt.Sprint(desired.TaskTemplate.Placement) {
		causes = append(causes, "placement")
	}
	if fmt.Sprint(current.UpdateConfig) != fmt.Sprint(desired.UpdateConfig) {
		causes = append(causes, "update order")
	}
	if len(causes) == 0 {
		return "spec changed (healthcheck, resources, mounts or user)"
	}
	return strings.Join(causes, "; ")
}

func replicasOf(spec swarm.ServiceSpec) uint64 {
	if r := spec.Mode.Replicated; r != nil && r.Replicas != nil {
		return *r.Replicas
	}
	return 0
}

// changedEnv lists, sorted, the variables added, removed or changed.
func changedEnv(current, desired []string) []string {
	parse := func(env []string) map[string]string {
		m := map[string]string{}
		for _, kv := range env {
			k, v, _ := strings.Cut(kv, "=")
			m[k] = v
		}
		return m
	}
	a, b := parse(current), parse(desired)
	var names []string
	for _, k := range slices.Sorted(maps.Keys(b)) {
		if v, ok := a[k]; !ok {
			names = append(names, "+"+k)
		} else if v != b[k] {
			names = append(names, k)
		}
	}
	for _, k := range slices.Sorted(maps.Keys(a)) {
		if _, ok := b[k]; !ok {
			names = append(names, "-"+k)
		}
	}
	return names
}

func configTargets(refs []*swarm.ConfigReference) map[string]string {
	m := map[string]string{}
	for _, r := range refs {
		if r.File != nil {
			m[r.File.Name] = r.ConfigName
		}
	}
	return m
}

func secretTargets(refs []*swarm.SecretReference) map[string]string {
	m := map[string]string{}
	for _, r := range refs {
		if r.File != nil {
			m[r.File.Name] = r.SecretName
		}
	}
	return m
}

// changedFiles lists the mounted files, by base name, whose object
// (named by content digest) differs: new content, added or removed.
func changedFiles(current, desired map[string]string) []string {
	var names []string
	for _, target := range slices.Sorted(maps.Keys(desired)) {
		if current[target] != desired[target] {
			names = append(names, path.Base(target))
		}
	}
	for _, target := range slices.Sorted(maps.Keys(current)) {
		if _, ok := desired[target]; !ok {
			names = append(names, "-"+path.Base(target))
		}
	}
	return names
}
