package main

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/moby/moby/client"

	stackhcl "github.com/obcd/obcd/hcl"
	"github.com/obcd/obcd/orchestrator"
	"github.com/obcd/obcd/orchestrator/agent"
	"github.com/obcd/obcd/orchestrator/engine"
	"github.com/obcd/obcd/orchestrator/lock"
	"github.com/obcd/obcd/orchestrator/secrets"
	"github.com/obcd/obcd/orchestrator/state"
	"github.com/obcd/obcd/orchestrator/swarm"
	"github.com/obcd/obcd/templates"
)

// environment is one environment of the stack, opened once per command:
// the stack, loaded once with its inputs, and its secrets; its release
// store, lock and Docker client are opened when first asked for. Close it
// when the command ends.
type environment struct {
	name    string
	global  *globalOptions
	stack   *stackhcl.Stack
	secrets *secrets.Store

	store  state.Store
	locker lock.Locker
	docker *client.Client
	agent  *agent.Agent
}

// openEnvironment loads the stack for env with inputs, and its secrets.
func (o *globalOptions) openEnvironment(env string, inputs stackInputs) (*environment, error) {
	stack, err := o.loadStackWith(env, inputs)
	if err != nil {
		return nil, err
	}
	store, err := o.secrets(env)
	if err != nil {
		return nil, err
	}
	return &environment{name: env, global: o, stack: stack, secrets: store}, nil
}

// open is openEnvironment with the command line's inputs.
func (o *globalOptions) open(env string) (*environment, error) {
	inputs, err := o.inputs()
	if err != nil {
		return nil, err
	}
	return o.openEnvironment(env, inputs)
}

// state opens where the stack keeps releases and the lock: the local
// state directory, or the Postgres database of a state block.
func (e *environment) state(ctx context.Context) (state.Store, lock.Locker, error) {
	if e.store != nil {
		return e.store, e.locker, nil
	}
	if e.stack.State.Backend != "postgres" {
		dir := filepath.Join(e.global.resolvedStateDir(), e.name)
		e.store, e.locker = state.OpenLocalStore(dir), lock.NewFileLocker(dir)
		return e.store, e.locker, nil
	}
	dsn, err := e.secrets.Value(e.stack.State.DSN)
	if err != nil {
		return nil, nil, err
	}
	store, err := state.OpenPostgresStore(ctx, dsn, e.name)
	if err != nil {
		return nil, nil, fmt.Errorf("state database (secret %s): %w", e.stack.State.DSN, err)
	}
	e.store, e.locker = store, lock.NewPostgresLocker(dsn, e.name)
	return e.store, e.locker, nil
}

// dockerClient is the client of the environment's Docker engine; making
// it does no I/O.
func (e *environment) dockerClient() (*client.Client, error) {
	if e.docker != nil {
		return e.docker, nil
	}
	docker, err := engine.Dial(e.stack.DockerHost, e.stack.DockerCertPath)
	if err != nil {
		return nil, fmt.Errorf("docker engine %s: %w", e.stack.DockerHost, err)
	}
	e.docker = docker
	return docker, nil
}

// deployer wires the engine, the state store, the lock and the secrets.
func (e *environment) deployer(ctx context.Context, events func(orchestrator.Event)) (*orchestrator.Deployer, error) {
	store, locker, err := e.state(ctx)
	if err != nil {
		return nil, err
	}
	docker, err := e.dockerClient()
	if err != nil {
		return nil, err
	}
	d := &orchestrator.Deployer{
		Engine: &engine.Engine{API: docker}, Docker: docker, Agent: e.probeAgent(docker),
		Store: store, Locker: locker, Stack: e.stack, Secrets: e.secrets, Events: events,
	}
	if e.stack.Engine == stackhcl.EngineSwarm {
		// The manager sees only its own node's containers: the swarm's
		// task states stand for the container-health probe.
		d.Docker = nil
		d.Swarm = &swarm.Engine{API: docker, Auth: func(ref string) string {
			auth, err := engine.RegistryAuth(ref)
			if err != nil {
				fmt.Fprintf(e.global.stderr, "obcd: %v; the swarm pulls %s without credentials\n", err, ref)
			}
			return auth
		}}
	}
	return d, nil
}

// openDeployer opens env with the command line's inputs and wires its
// deployer; close the environment when the command ends.
func (o *globalOptions) openDeployer(env string, events func(orchestrator.Event)) (*environment, *orchestrator.Deployer, error) {
	inputs, err := o.inputs()
	if err != nil {
		return nil, nil, err
	}
	return o.openDeployerWith(env, inputs, events)
}

// openDeployerWith is openDeployer with given inputs (deploy --image,
// a saved plan's).
func (o *globalOptions) openDeployerWith(env string, inputs stackInputs, events func(orchestrator.Event)) (*environment, *orchestrator.Deployer, error) {
	environment, err := o.openEnvironment(env, inputs)
	if err != nil {
		return nil, nil, err
	}
	d, err := environment.deployer(context.Background(), events)
	if err != nil {
		environment.close()
		return nil, nil, err
	}
	return environment, d, nil
}

// probeAgent is the environment's in-network agent, made once, on the
// environment's engine; it starts its container when first asked to run
// probes, and close removes it.
func (e *environment) probeAgent(docker *client.Client) *agent.Agent {
	if e.agent == nil {
		e.agent = &agent.Agent{API: docker, Project: templates.ProjectName(e.stack), Version: version,
			Notes: func(note string) { fmt.Fprintf(e.global.stderr, "obcd: %s\n", note) }}
	}
	return e.agent
}

// close closes what the environment opened.
func (e *environment) close() {
	if e.agent != nil {
		e.agent.Close()
	}
	if pg, ok := e.store.(*state.PostgresStore); ok {
		_ = pg.Close(context.Background())
	}
	if e.docker != nil {
		_ = e.docker.Close()
	}
}
