package orchestrator

import (
	"fmt"
	"slices"
	"strings"
)

// String is the plan as obcd plan, deploy --dry-run and the confirmation
// of obcd deploy print it; tests compare it as golden text. It shows
// every step apply takes, wave by wave, with the names of the containers
// it creates and removes, and never a value.
func (p Plan) String() string {
	if p.Engine == "swarm" {
		return p.swarmString()
	}
	var b strings.Builder
	fmt.Fprintf(&b, "Plan for %s", p.Project)
	if p.Release != "" {
		fmt.Fprintf(&b, ", release %s", p.Release)
	}
	if p.Version != "" {
		fmt.Fprintf(&b, " (version %s)", p.Version)
	}
	b.WriteString(":\n")
	for _, image := range p.Images {
		fmt.Fprintf(&b, "  %s\n", image)
	}
	if p.Changes() && p.Network != "" {
		fmt.Fprintf(&b, "  network %s%s, created when missing\n", p.Network, volumesNote(p.Volumes))
	}
	kindWidth, targetWidth := p.columnWidths()
	step := func(a Action) {
		fmt.Fprintf(&b, "    %-*s  %-*s  %s\n", kindWidth, a.Kind, targetWidth, a.target(), a.Reason)
	}
	for i, wave := range p.Waves() {
		fmt.Fprintf(&b, "  wave %d%s\n", i+1, waveNote(wave))
		for _, a := range wave {
			step(a)
		}
	}
	for _, tag := range p.Tags {
		fmt.Fprintf(&b, "  once proven: tag %s as %s\n", tag.Image, strings.Join(tag.Tags, " and "))
	}
	if u := p.Unproven; u != nil {
		fmt.Fprintf(&b, "  prove: %s run release %s, which ended %s and was never proven; the probes and the watch window prove it, or the stable release comes back\n",
			strings.Join(u.Containers, ", "), u.ID, u.Outcome)
	}
	if p.Count(ActionKeep) > 0 {
		b.WriteString("  unchanged\n")
		for _, a := range p.Actions {
			if a.Kind == ActionKeep {
				step(a)
			}
		}
	}
	b.WriteString(p.Summary() + ".\n")
	return b.String()
}

// swarmString is String for a plan of swarm services: wave by wave,
// each service created, updated (with why) or kept.
func (p Plan) swarmString() string {
	var b strings.Builder
	fmt.Fprintf(&b, "Plan for %s on the swarm", p.Project)
	if p.Release != "" {
		fmt.Fprintf(&b, ", release %s", p.Release)
	}
	if p.Version != "" {
		fmt.Fprintf(&b, " (version %s)", p.Version)
	}
	b.WriteString(":\n")
	if p.Changes() {
		fmt.Fprintf(&b, "  overlay network %s (attachable), created when missing; secrets and configs named by their content's digest, created when missing\n", p.Network)
	}
	change, name := 0, 0
	for _, s := range p.Services {
		change, name = max(change, len(s.Change)), max(name, len(s.Name))
	}
	wave := 0
	for _, s := range p.Services {
		if s.Change == "keep" {
			continue
		}
		if s.Wave != wave {
			wave = s.Wave
			fmt.Fprintf(&b, "  wave %d (each service's tasks converge before the next wave)\n", wave)
		}
		cause := s.Cause
		if s.Job {
			cause += "; runs to completion"
		}
		fmt.Fprintf(&b, "    %-*s  %-*s  %s\n", change, s.Change, name, s.Name, cause)
	}
	if kept := slices.DeleteFunc(slices.Clone(p.Services), func(s ServiceAction) bool { return s.Change != "keep" }); len(kept) > 0 {
		b.WriteString("  unchanged\n")
		for _, s := range kept {
			fmt.Fprintf(&b, "    %-*s  %s\n", change, s.Change, s.Name)
		}
	}
	if p.Changes() {
		b.WriteString("  once proven: secrets and configs no service uses are removed\n")
	}
	if u := p.Unproven; u != nil {
		fmt.Fprintf(&b, "  prove: %s run release %s, which ended %s and was never proven; the probes and the watch window prove it, or the stable release comes back\n",
			strings.Join(u.Containers, ", "), u.ID, u.Outcome)
	}
	for _, name := range p.Extra {
		fmt.Fprintf(&b, "  left as it is: %s, which the stack no longer declares (obcd down removes it)\n", name)
	}
	b.WriteString(p.Summary() + ".\n")
	return b.String()
}

// Summary counts the plan's steps by kind, in one line.
func (p Plan) Summary() string {
	if p.Engine == "swarm" {
		count := func(change string) int {
			n := 0
			for _, s := range p.Services {
				if s.Change == change {
					n++
				}
			}
			return n
		}
		return fmt.Sprintf("%d services to create, %d to update, %d unchanged", count("create"), count("update"), count("keep"))
	}
	reload := ""
	if n := p.Count(ActionReload); n > 0 {
		reload = fmt.Sprintf(", %d to reload", n)
	}
	return fmt.Sprintf("%d to create, %d to recreate%s, %d to remove, %d to run, %d unchanged",
		p.Count(ActionCreate), p.Count(ActionRecreate), reload, p.Count(ActionRemove), p.Count(ActionRun)+p.Count(ActionBackup), p.Count(ActionKeep))
}

// columnWidths are the widths of the kind and container columns, so that
// the causes line up across waves.
func (p Plan) columnWidths() (kind, target int) {
	for _, a := range p.Actions {
		kind, target = max(kind, len(a.Kind)), max(target, len(a.target()))
	}
	return kind, target
}

func (i ImageAction) String() string {
	services := strings.Join(i.Services, ", ")
	switch {
	case i.Pull && i.ID != "":
		return fmt.Sprintf("pull %s (%s), the image %s the release recorded and the engine no longer has, before any change", i.Image, services, shortImageID(i.ID))
	case i.Pull:
		return fmt.Sprintf("pull %s (%s) from its registry, before any change", i.Image, services)
	case i.Build == "":
		return fmt.Sprintf("image %s (%s), recorded by ID, is no longer on the engine and cannot be pulled by ID: the deploy stops before any change", i.Image, services)
	}
	return fmt.Sprintf("build %s (%s) from %s, before any change", i.Image, services, i.Build)
}

func volumesNote(volumes []string) string {
	if len(volumes) == 0 {
		return ""
	}
	return " and volumes " + strings.Join(volumes, ", ")
}

// waveNote says how a wave of start-first replacements runs.
func waveNote(wave []Action) string {
	if wave[0].Kind == ActionRecreate && wave[0].StartFirst {
		return " (start first: the old replicas leave once every new one serves)"
	}
	if len(wave) > 1 {
		return " (together)"
	}
	return ""
}

// target is the container a step acts on, as printed: a replacement
// shows the old name and the new one.
func (a Action) target() string {
	if a.Replaces != nil && a.Replaces.Name != a.Container {
		return a.Replaces.Name + " -> " + a.Container
	}
	return a.Container
}
