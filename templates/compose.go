package templates

import (
	"cmp"
	"fmt"
	"maps"
	"path"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/compose-spec/compose-go/v2/types"

	stackhcl "github.com/obcd/obcd/hcl"
)

// renderCompose builds the environment's compose project as a typed
// compose-go Project and marshals it. Config files already rendered are
// mounted from the artifacts list as compose configs (or secrets, for the
// 0600 ones), so the compose file references exactly what exists.
//
// Secret values never appear: services receive them through compose
// interpolation of OBCD_SECRET_<NAME>, which `docker compose --env-file
// .obcd/<env>.secrets` or obcd itself supplies at deploy time.
func renderCompose(s *stackhcl.Stack, artifacts []Artifact) (Artifact, error) {
	b := &composeBuilder{
		stack:     s,
		artifacts: map[string]Artifact{},
		project: &types.Project{
			Name:     ProjectName(s),
			Services: types.Services{},
			Volumes:  types.Volumes{},
			Configs:  types.Configs{},
			Secrets:  types.Secrets{},
		},
	}
	for _, a := range artifacts {
		b.artifacts[a.Path] = a
	}
	for _, svc := range s.Services {
		if err := b.add(svc); err != nil {
			return Artifact{}, fmt.Errorf("service %q: %w", svc.Name, err)
		}
	}
	if web := s.First(stackhcl.KindWeb); web != nil {
		b.addMigrate(web)
	}
	data, err := b.project.MarshalYAML()
	if err != nil {
		return Artifact{}, fmt.Errorf("marshal compose project: %w", err)
	}
	header := fmt.Sprintf("# Rendered by obcd from %s for %s. Do not edit: change the stack file and render again.\n"+
		"# Secrets are interpolated from OBCD_SECRET_* (docker compose --env-file .obcd/%s.secrets).\n",
		path.Base(s.File), s.Environment, s.Environment)
	return Artifact{Path: ComposeFilePath(s.Environment), Mode: ModePublic, Data: append([]byte(header), data...)}, nil
}

// ProjectName is the compose project of a stack's environment.
func ProjectName(s *stackhcl.Stack) string { return s.Name + "-" + s.Environment }

type composeBuilder struct {
	stack     *stackhcl.Stack
	artifacts map[string]Artifact
	project   *types.Project
}

func (b *composeBuilder) add(svc *stackhcl.Service) error {
	sc := b.base(svc)
	var err error
	switch svc.Kind {
	case stackhcl.KindWeb:
		b.web(svc, &sc)
	case stackhcl.KindNginx:
		b.nginx(svc, &sc)
	case stackhcl.KindPostgres:
		err = b.postgres(svc, &sc)
	case stackhcl.KindPgBouncer:
		b.pgbouncer(svc, &sc)
	case stackhcl.KindRedis:
		b.redis(svc, &sc)
	case stackhcl.KindCeleryWorker, stackhcl.KindCeleryBeat:
		b.celery(svc, &sc)
	case stackhcl.KindPrometheus:
		b.prometheus(svc, &sc)
	case stackhcl.KindAlertmanager:
		b.alertmanager(svc, &sc)
	case stackhcl.KindGrafana:
		b.grafana(svc, &sc)
	case stackhcl.KindExporter:
		b.exporter(svc, &sc)
	case stackhcl.KindBackup:
		err = b.backup(svc, &sc)
	}
	if err != nil {
		return err
	}
	b.finish(svc, &sc)
	b.project.Services[svc.Name] = sc
	return nil
}

// base holds what every service shares: image, restart policy, limits.
func (b *composeBuilder) base(svc *stackhcl.Service) types.ServiceConfig {
	sc := types.ServiceConfig{Name: svc.Name, Restart: types.RestartPolicyUnlessStopped}
	sc.Image = svc.Image
	sc.Environment = types.MappingWithEquals{}
	replicas := svc.Replicas
	if svc.Kind == stackhcl.KindPostgres {
		replicas = 1 // replicas of postgres are separate services
	}
	sc.Deploy = &types.DeployConfig{Replicas: &replicas}
	limits := &types.Resource{}
	if svc.CPUs > 0 {
		limits.NanoCPUs = types.NanoCPUs(svc.CPUs)
	}
	if svc.Memory != "" {
		if bytes, err := stackhcl.ParseSize(svc.Memory); err == nil {
			limits.MemoryBytes = types.UnitBytes(bytes)
		}
	}
	if limits.NanoCPUs > 0 || limits.MemoryBytes > 0 {
		sc.Deploy.Resources.Limits = limits
	}
	if len(svc.Placement) > 0 {
		sc.Deploy.Placement.Constraints = slices.Clone(svc.Placement)
	}
	return sc
}

// finish applies what the stack file overrides for any kind, last.
func (b *composeBuilder) finish(svc *stackhcl.Service, sc *types.ServiceConfig) {
	for _, k := range slices.Sorted(maps.Keys(svc.Env)) {
		sc.Environment[k] = strPtr(svc.Env[k])
	}
	if len(svc.Command) > 0 {
		sc.Command = svc.Command
	}
	for _, p := range svc.Ports {
		ports, err := types.ParsePortConfig(p)
		if err == nil {
			sc.Ports = append(sc.Ports, ports...)
		}
	}
	if svc.Health != nil {
		sc.HealthCheck = healthcheck(svc.Health.Test, cmp.Or(svc.Health.Interval, "10s"),
			cmp.Or(svc.Health.Timeout, "5s"), svc.Health.Retries, cmp.Or(svc.Health.StartPeriod, "30s"))
	}
	if len(sc.Environment) == 0 {
		sc.Environment = nil
	}
}

// dependsOn waits for each named service to be healthy.
func dependsOn(sc *types.ServiceConfig, names ...string) {
	if sc.DependsOn == nil {
		sc.DependsOn = types.DependsOnConfig{}
	}
	for _, n := range names {
		if n != "" {
			sc.DependsOn[n] = types.ServiceDependency{Condition: types.ServiceConditionHealthy, Required: true}
		}
	}
}

// volume declares a named volume and mounts it.
func (b *composeBuilder) volume(sc *types.ServiceConfig, name, target string, readOnly bool) {
	b.project.Volumes[name] = types.VolumeConfig{}
	sc.Volumes = append(sc.Volumes, types.ServiceVolumeConfig{
		Type: types.VolumeTypeVolume, Source: name, Target: target, ReadOnly: readOnly,
	})
}

// mount attaches a rendered artifact at a container path: as a compose
// secret when the file holds secret-derived data, else as a config.
// Artifacts that were not rendered are skipped.
func (b *composeBuilder) mount(sc *types.ServiceConfig, artifactPath, target string) {
	a, ok := b.artifacts[artifactPath]
	if !ok {
		return
	}
	key := configKey(artifactPath)
	if a.Mode == ModeSecret {
		b.project.Secrets[key] = types.SecretConfig{File: "./" + artifactPath}
		sc.Secrets = append(sc.Secrets, types.ServiceSecretConfig{Source: key, Target: target})
		return
	}
	b.project.Configs[key] = types.ConfigObjConfig{File: "./" + artifactPath}
	sc.Configs = append(sc.Configs, types.ServiceConfigObjConfig{Source: key, Target: target})
}

// mountDir mounts every artifact under dir at target, file by file.
func (b *composeBuilder) mountDir(sc *types.ServiceConfig, dir, target string) {
	var paths []string
	for p := range b.artifacts {
		if strings.HasPrefix(p, dir+"/") {
			paths = append(paths, p)
		}
	}
	sort.Strings(paths)
	for _, p := range paths {
		b.mount(sc, p, target+"/"+strings.TrimPrefix(p, dir+"/"))
	}
}

// configKey turns an artifact path into a compose config/secret name.
func configKey(artifactPath string) string {
	r := strings.NewReplacer("config/", "", "/", "-", ".", "-", "_", "-")
	return r.Replace(artifactPath)
}

// secretEnv sets an environment variable from a secret via interpolation.
func (b *composeBuilder) secretEnv(sc *types.ServiceConfig, key, secretName string) {
	if secretName == "" {
		return
	}
	sc.Environment[key] = strPtr(secretRef(secretName, b.stack.Environment))
}

// secretRef is the compose interpolation of a secret, failing loudly with
// the fix when the variable is unset.
func secretRef(secretName, env string) string {
	return fmt.Sprintf("${%s:?secret %s is not set - run obcd secrets init %s}",
		stackhcl.SecretEnvVar(secretName), secretName, env)
}

func healthcheck(test []string, interval, timeout string, retries int, startPeriod string) *types.HealthCheckConfig {
	if retries <= 0 {
		retries = 3
	}
	r := uint64(retries)
	return &types.HealthCheckConfig{
		Test: test, Interval: duration(interval), Timeout: duration(timeout), Retries: &r, StartPeriod: duration(startPeriod),
	}
}

func duration(s string) *types.Duration {
	d, err := time.ParseDuration(s)
	if err != nil {
		d = 10 * time.Second
	}
	td := types.Duration(d)
	return &td
}

func httpCheck(tool, url string) []string {
	if tool == "curl" {
		return []string{"CMD", "curl", "-fsS", "-o", "/dev/null", url}
	}
	return []string{"CMD", "wget", "-q", "-O", "/dev/null", url}
}

func strPtr(s string) *string { return &s }

func itoa(i int) string { return strconv.Itoa(i) }
