package orchestrator

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"time"

	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"

	stackhcl "github.com/obcd/obcd/hcl"
	"github.com/obcd/obcd/orchestrator/engine"
	"github.com/obcd/obcd/templates"
)

// DesiredState loads the environment's rendered compose file the way
// `docker compose` would (env files read, OBCD_SECRET_* interpolated from
// secrets, config and secret files resolved) and turns each service into
// a ServiceSpec, in dependency order. The rendered files are the single
// source: obcd deploys exactly what it rendered.
func DesiredState(ctx context.Context, stack *stackhcl.Stack, artifacts []templates.Artifact, secrets templates.SecretSource) ([]engine.ServiceSpec, error) {
	dir, err := os.MkdirTemp("", "obcd-desired-")
	if err != nil {
		return nil, fmt.Errorf("desired state: %w", err)
	}
	defer os.RemoveAll(dir)
	out := filepath.Join(dir, "render")
	if err := templates.WriteDir(out, artifacts); err != nil {
		return nil, err
	}
	env := map[string]string{}
	for _, s := range stack.Secrets {
		value, err := secrets.Value(s.Name)
		if err != nil {
			return nil, err
		}
		env[s.EnvVar()] = value
	}
	project, err := loader.LoadWithContext(ctx, types.ConfigDetails{
		WorkingDir:  out,
		ConfigFiles: []types.ConfigFile{{Filename: filepath.Join(out, templates.ComposeFilePath(stack.Environment))}},
		Environment: env,
	}, func(o *loader.Options) { o.SetProjectName(templates.ProjectName(stack), true) })
	if err != nil {
		return nil, fmt.Errorf("load rendered compose file: %w", err)
	}
	var specs []engine.ServiceSpec
	for _, svc := range project.Services {
		spec, err := serviceSpec(stack, project, svc, artifacts)
		if err != nil {
			return nil, fmt.Errorf("service %s: %w", svc.Name, err)
		}
		specs = append(specs, spec)
	}
	return DependencyOrder(specs)
}

func serviceSpec(stack *stackhcl.Stack, project *types.Project, svc types.ServiceConfig, artifacts []templates.Artifact) (engine.ServiceSpec, error) {
	spec := engine.ServiceSpec{
		Project: project.Name, Name: svc.Name, Image: svc.Image, Replicas: 1,
		Command: svc.Command, Entrypoint: svc.Entrypoint, User: svc.User,
		Env: map[string]string{}, Restart: svc.Restart, OneOff: svc.Restart == types.RestartPolicyNo,
		Ports: portSpecs(svc.Ports), Mounts: mountSpecs(svc.Volumes), Health: healthSpec(svc.HealthCheck),
		DependsOn: slices.Sorted(maps.Keys(svc.DependsOn)),
	}
	applyDeploy(&spec, svc.Deploy)
	for k, v := range svc.Environment {
		if v != nil {
			spec.Env[k] = *v
		}
	}
	if svc.StopGracePeriod != nil {
		spec.StopGrace = time.Duration(*svc.StopGracePeriod)
	}
	files, err := fileSpecs(stack, project, svc, artifacts)
	spec.Files = files
	return spec, err
}

// applyDeploy reads the compose deploy section: replicas, limits, order.
func applyDeploy(spec *engine.ServiceSpec, deploy *types.DeployConfig) {
	if deploy == nil {
		return
	}
	if deploy.Replicas != nil {
		spec.Replicas = *deploy.Replicas
	}
	if lim := deploy.Resources.Limits; lim != nil {
		spec.Memory = int64(lim.MemoryBytes)
		spec.NanoCPUs = int64(float64(lim.NanoCPUs) * 1e9)
	}
	spec.StartFirst = deploy.UpdateConfig != nil && deploy.UpdateConfig.Order == "start-first"
	spec.Placement = slices.Clone(deploy.Placement.Constraints)
}

func portSpecs(ports []types.ServicePortConfig) []engine.PortSpec {
	var specs []engine.PortSpec
	for _, p := range ports {
		specs = append(specs, engine.PortSpec{HostIP: p.HostIP, HostPort: p.Published, ContainerPort: fmt.Sprint(p.Target), Protocol: cmp.Or(p.Protocol, "tcp")})
	}
	return specs
}

func mountSpecs(volumes []types.ServiceVolumeConfig) []engine.MountSpec {
	var mounts []engine.MountSpec
	for _, v := range volumes {
		m := engine.MountSpec{Target: v.Target, ReadOnly: v.ReadOnly}
		if v.Type == types.VolumeTypeBind {
			m.Bind = v.Source
		} else {
			m.Volume = v.Source
		}
		mounts = append(mounts, m)
	}
	return mounts
}

func healthSpec(hc *types.HealthCheckConfig) *engine.HealthSpec {
	if hc == nil || hc.Disable {
		return nil
	}
	health := &engine.HealthSpec{Test: hc.Test, Interval: dur(hc.Interval), Timeout: dur(hc.Timeout), StartPeriod: dur(hc.StartPeriod)}
	if hc.Retries != nil {
		health.Retries = int(*hc.Retries)
	}
	return health
}

// fileSpecs are the service's config and secret files, read from the
// render with the modes they were rendered with, and with how each one
// reloads in place, if it does.
func fileSpecs(stack *stackhcl.Stack, project *types.Project, svc types.ServiceConfig, artifacts []templates.Artifact) ([]engine.FileSpec, error) {
	modes := map[string]os.FileMode{}
	for _, a := range artifacts {
		modes[a.Path] = a.Mode
	}
	var files []engine.FileSpec
	for _, c := range svc.Configs {
		f, err := fileSpec(stack, project.WorkingDir, project.Configs[c.Source].File, c.Target, modes)
		if err != nil {
			return files, err
		}
		files = append(files, f)
	}
	for _, s := range svc.Secrets {
		target := cmp.Or(s.Target, "/run/secrets/"+s.Source)
		f, err := fileSpec(stack, project.WorkingDir, project.Secrets[s.Source].File, target, modes)
		if err != nil {
			return files, err
		}
		files = append(files, f)
	}
	return files, nil
}

// fileSpec reads a rendered file referenced by the compose file.
func fileSpec(stack *stackhcl.Stack, workingDir, file, target string, modes map[string]os.FileMode) (engine.FileSpec, error) {
	path := file
	if !filepath.IsAbs(path) {
		path = filepath.Join(workingDir, path)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return engine.FileSpec{}, fmt.Errorf("read %s: %w", file, err)
	}
	rel, _ := filepath.Rel(workingDir, path)
	mode, ok := modes[filepath.ToSlash(rel)]
	if !ok {
		mode = 0o644
	}
	spec := engine.FileSpec{Target: target, Mode: mode, Data: data}
	if r := templates.ReloadOf(stack, filepath.ToSlash(rel)); r != nil {
		spec.Reload = &engine.Reload{Exec: r.Exec, Stage: r.Stage, Signal: r.Signal, How: r.How}
	}
	return spec, nil
}

func dur(d *types.Duration) time.Duration {
	if d == nil {
		return 0
	}
	return time.Duration(*d)
}

// DependencyOrder sorts services so each comes after what it depends on,
// ties broken by name; a cycle is an error naming the services in it.
func DependencyOrder(specs []engine.ServiceSpec) ([]engine.ServiceSpec, error) {
	byName := map[string]engine.ServiceSpec{}
	var names []string
	for _, s := range specs {
		byName[s.Name] = s
		names = append(names, s.Name)
	}
	sort.Strings(names)
	var out []engine.ServiceSpec
	state := map[string]int{} // 0 new, 1 visiting, 2 done
	var visit func(string) error
	visit = func(name string) error {
		switch state[name] {
		case 1:
			return fmt.Errorf("services depend on each other in a cycle through %q", name)
		case 2:
			return nil
		}
		state[name] = 1
		for _, dep := range byName[name].DependsOn {
			if _, ok := byName[dep]; ok {
				if err := visit(dep); err != nil {
					return err
				}
			}
		}
		state[name] = 2
		out = append(out, byName[name])
		return nil
	}
	for _, n := range names {
		if err := visit(n); err != nil {
			return nil, err
		}
	}
	return out, nil
}
