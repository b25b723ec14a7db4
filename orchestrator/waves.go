package orchestrator

import (
	"slices"

	"github.com/obcd/obcd/orchestrator/engine"
)

// assignWaves numbers the waves of a plan's steps, in plan order. A wave
// is the longest run of steps that may run at the same time:
//   - the start-first replacements of one service's replicas, rolled
//     together (all new ones start, then the old ones leave);
//   - or new containers and stop-first replacements of services none of
//     which waits for another in the run.
//
// A one-off run, a backup and a removal are waves of their own, so the
// point where new code starts serving stays where the plan prints it.
// Keep steps change nothing and stay in wave 0.
func assignWaves(actions []Action, desired []engine.ServiceSpec) {
	dependsOn := map[string][]string{}
	for _, spec := range desired {
		dependsOn[spec.Name] = spec.DependsOn
	}
	var todo []int
	for i, a := range actions {
		if a.Kind != ActionKeep {
			todo = append(todo, i)
		}
	}
	for wave := 1; len(todo) > 0; wave++ {
		n := waveLength(actions, todo, dependsOn)
		for _, i := range todo[:n] {
			actions[i].Wave = wave
		}
		todo = todo[n:]
	}
}

// waveLength is how many of the steps todo (indices into actions, keeps
// left out) form the next wave.
func waveLength(actions []Action, todo []int, dependsOn map[string][]string) int {
	first := actions[todo[0]]
	if first.Kind == ActionRecreate && first.StartFirst {
		n := 1
		for n < len(todo) && actions[todo[n]].Kind == ActionRecreate && actions[todo[n]].StartFirst && actions[todo[n]].Service == first.Service {
			n++
		}
		return n
	}
	if !concurrent(first) {
		return 1
	}
	inWave := map[string]bool{}
	n := 0
	for _, i := range todo {
		a := actions[i]
		if !concurrent(a) || slices.ContainsFunc(dependsOn[a.Service], func(dep string) bool { return inWave[dep] }) {
			break
		}
		inWave[a.Service] = true
		n++
	}
	return n
}

func concurrent(a Action) bool {
	return a.Kind == ActionCreate || (a.Kind == ActionRecreate && !a.StartFirst)
}
