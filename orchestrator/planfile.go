package orchestrator

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/obcd/obcd/orchestrator/engine"
	"github.com/obcd/obcd/orchestrator/state"
	"github.com/obcd/obcd/templates"
)

// SavedPlanFormat is the version of the saved-plan format this obcd
// writes and reads.
const SavedPlanFormat = 1

// SavedPlan is a plan as obcd plan --out writes it, for obcd deploy
// --plan to apply exactly. It holds what the plan was made from, so that
// a deploy can tell that nothing changed since, and no secret value: the
// release record carries secret versions (HMACs), and the rendered files
// and the services' env are made again at deploy time and checked
// against the plan's config hash.
type SavedPlan struct {
	Format      int       `json:"format"`
	Created     time.Time `json:"created"`
	Environment string    `json:"environment"`
	StackFile   string    `json:"stack_file"`
	StackDigest string    `json:"stack_digest"`
	// Release is the record the deploy saves; its ID names the containers.
	Release state.Release `json:"release"`
	// Stable is the stable release when the plan was made ("" none).
	Stable string `json:"stable,omitempty"`
	Plan   Plan   `json:"plan"`
	// Observed is the engine's snapshot the plan was made from.
	Observed []engine.Container `json:"observed"`
}

// SavePlan is planned as a saved plan.
func (d *Deployer) SavePlan(planned *Planned) SavedPlan {
	saved := SavedPlan{
		Format: SavedPlanFormat, Created: time.Now().UTC(), Environment: d.Stack.Environment,
		StackFile: d.Stack.File, StackDigest: d.Stack.Digest,
		Release: planned.Release, Plan: planned.Plan, Observed: planned.Observed,
	}
	if planned.Stable != nil {
		saved.Stable = planned.Stable.ID
	}
	return saved
}

// checkSaved shows that a saved plan still fits the stack, the secrets,
// the release history and the engine as they are now, and returns it as
// a planned release to apply. Anything that changed makes it
// ErrStalePlan, with every change named.
func (d *Deployer) checkSaved(ctx context.Context, saved *SavedPlan) (*Planned, error) {
	if saved.Format != SavedPlanFormat {
		return nil, fmt.Errorf("%w: it is in format %d, and this obcd reads format %d; make a new plan", ErrStalePlan, saved.Format, SavedPlanFormat)
	}
	if saved.Environment != d.Stack.Environment {
		return nil, fmt.Errorf("%w: it was made for environment %q, not %q", ErrStalePlan, saved.Environment, d.Stack.Environment)
	}
	planned, problems, err := d.replan(ctx, saved)
	if err != nil {
		return nil, err
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("%w: since it was made at %s, %s; make a new plan with obcd plan %s --out FILE",
			ErrStalePlan, saved.Created.Format(time.RFC3339), strings.Join(problems, "; "), d.Stack.Environment)
	}
	return planned, nil
}

// replan makes again what a saved plan leaves out (the rendered files,
// the services' env) and lists what differs from when it was made.
func (d *Deployer) replan(ctx context.Context, saved *SavedPlan) (*Planned, []string, error) {
	var problems []string
	if saved.StackDigest != d.Stack.Digest {
		problems = append(problems, fmt.Sprintf("the stack file %s changed", d.Stack.File))
	}
	artifacts, err := templates.Render(d.Stack, d.Secrets)
	if err != nil {
		return nil, nil, errors.Join(err, ErrRender)
	}
	if configHash(artifacts) != saved.Release.ConfigHash {
		problems = append(problems, "the rendered configuration changed (the stack, a file it reads, a variable or --image)")
	}
	problems = append(problems, secretChanges(saved.Release.SecretVersions, d.secretVersions())...)
	stable, history, err := d.historyChanges(ctx, saved)
	if err != nil {
		return nil, nil, err
	}
	problems = append(problems, history...)
	desired, err := DesiredState(ctx, d.Stack, artifacts, d.Secrets)
	if err != nil {
		return nil, nil, errors.Join(err, ErrRender)
	}
	if err := d.resolveImages(ctx, desired); err != nil {
		return nil, nil, errors.Join(err, ErrConverge)
	}
	problems = append(problems, imageChanges(saved.Release.ImageDigests, desired)...)
	observed, err := d.Engine.Observe(ctx, saved.Plan.Project)
	if err != nil {
		return nil, nil, errors.Join(err, ErrConverge)
	}
	problems = append(problems, containerChanges(saved.Observed, observed)...)
	planned := &Planned{Plan: saved.Plan, Release: saved.Release, Stable: stable, Artifacts: artifacts, Desired: desired, Observed: observed}
	return planned, problems, nil
}

// secretChanges names the secrets whose value is not the one planned.
func secretChanges(planned, now map[string]string) []string {
	names := maps.Clone(planned)
	maps.Copy(names, now)
	var problems []string
	for _, name := range slices.Sorted(maps.Keys(names)) {
		if planned[name] != now[name] {
			problems = append(problems, fmt.Sprintf("secret %s changed", name))
		}
	}
	return problems
}

// historyChanges says whether the plan's release was already used, or
// another release became stable, and returns the stable release.
func (d *Deployer) historyChanges(ctx context.Context, saved *SavedPlan) (*state.Release, []string, error) {
	var problems []string
	if _, err := d.Store.Get(ctx, saved.Release.ID); err == nil {
		problems = append(problems, fmt.Sprintf("release %s was already deployed from this plan", saved.Release.ID))
	} else if !errors.Is(err, state.ErrReleaseNotFound) {
		return nil, nil, err
	}
	stable, ok, err := state.Stable(ctx, d.Store)
	if err != nil {
		return nil, nil, err
	}
	var stableID string
	if ok {
		stableID = stable.ID
	}
	if stableID != saved.Stable {
		problems = append(problems, fmt.Sprintf("the stable release is %s, not %s", cmp.Or(stableID, "none"), cmp.Or(saved.Stable, "none")))
	}
	if !ok {
		return nil, problems, nil
	}
	return &stable, problems, nil
}

// imageChanges names the services whose image is not the one planned:
// rebuilt under the same tag, removed, or built since.
func imageChanges(planned map[string]string, desired []engine.ServiceSpec) []string {
	var problems []string
	for _, spec := range desired {
		if was := planned[spec.Name]; was != spec.ImageID {
			problems = append(problems, fmt.Sprintf("image %s of service %s is %s, not %s",
				spec.Image, spec.Name, cmp.Or(shortImageID(spec.ImageID), "none"), cmp.Or(shortImageID(was), "none")))
		}
	}
	return problems
}

// containerChanges names the containers that were removed, added or
// changed on the engine since the snapshot before. One-offs do not
// count: no plan acts on them.
func containerChanges(before, now []engine.Container) []string {
	index := func(containers []engine.Container) map[string]engine.Container {
		byID := map[string]engine.Container{}
		for _, c := range containers {
			if !c.OneOff {
				byID[c.ID] = c
			}
		}
		return byID
	}
	was, is := index(before), index(now)
	var problems []string
	for _, c := range before {
		if _, ok := is[c.ID]; !c.OneOff && !ok {
			problems = append(problems, fmt.Sprintf("container %s was removed", c.Name))
		}
	}
	for _, c := range now {
		old, ok := was[c.ID]
		switch {
		case c.OneOff:
		case !ok:
			problems = append(problems, fmt.Sprintf("container %s was created", c.Name))
		case old.Hash != c.Hash || old.ImageID != c.ImageID || old.State != c.State:
			problems = append(problems, fmt.Sprintf("container %s changed (%s, was %s)", c.Name, c.State, old.State))
		}
	}
	return problems
}
