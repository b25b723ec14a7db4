// Package orchestrator owns what happens to an environment: it plans a
// release against one snapshot of the engine, applies exactly that plan,
// proves it with probes, and records it or rolls back (see docs/architecture.md).
package orchestrator
