package orchestrator

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	stackhcl "github.com/obcd/obcd/hcl"
	"github.com/obcd/obcd/orchestrator/agent"
	"github.com/obcd/obcd/orchestrator/lock"
	"github.com/obcd/obcd/orchestrator/probe"
	"github.com/obcd/obcd/orchestrator/state"
	"github.com/obcd/obcd/templates"
)

// Phases of a deploy. A failure is joined with its phase, so callers
// decide with errors.Is what happened and what to undo.
var (
	ErrRender   = errors.New("render")
	ErrImages   = errors.New("images")
	ErrConverge = errors.New("converge")
	ErrMigrate  = errors.New("migrate")
	ErrVerify   = errors.New("verify")
	ErrRefused  = errors.New("release failed before")
	ErrGate     = errors.New("validation failed")
	// ErrCancelled: the operator answered no to the plan.
	ErrCancelled = errors.New("cancelled")
	// ErrStalePlan: a saved plan no longer matches what it was made from.
	ErrStalePlan = errors.New("the saved plan is out of date")
	// ErrRolledBack: the release failed after changes began and the
	// previous release runs again (outcome rolled-back).
	ErrRolledBack = errors.New("rolled back")
	// ErrRollbackFailed: the release failed after changes began and the
	// previous release could not be proven either (outcome rollback-failed).
	ErrRollbackFailed = errors.New("rollback failed")
)

// Event is one line of progress. The engine emits; cmd renders.
type Event struct {
	Time      time.Time `json:"time"`
	Phase     string    `json:"phase"`
	Service   string    `json:"service,omitempty"`
	Container string    `json:"container,omitempty"`
	Message   string    `json:"message"`
	// Plan is set on the event that announces a plan, before it runs.
	Plan *Plan `json:"plan,omitempty"`
	// Release and Outcome are set on the last event of a deploy or
	// rollback: how it ended, as recorded.
	Release string        `json:"release,omitempty"`
	Outcome state.Outcome `json:"outcome,omitempty"`
}

// Deployer changes one environment: deploy, rollback and down, each under
// the environment's lock.
type Deployer struct {
	Engine ContainerEngine
	// Docker, when set, adds the container-health probe to verification.
	Docker  probe.ContainerAPI
	Store   state.Store
	Locker  lock.Locker
	Stack   *stackhcl.Stack
	Secrets templates.SecretSource
	Events  func(Event)
	// Gate checks the stack before a deploy plans, inside the lock; an
	// error stops the deploy. nil runs no gate.
	Gate func(*stackhcl.Stack) error
	// Verify is how long post-deploy probes may take to pass.
	Verify time.Duration
	// Watch is how long a deploy keeps watching the release after the
	// switch before it calls it stable; 0 watches nothing.
	Watch time.Duration
	// Keep is how many of the newest releases retention keeps after a
	// successful deploy (see Prune); 0 prunes nothing.
	Keep int
	// Overlap is how long a new start-first replica and the one it
	// replaces serve side by side before the old one leaves the alias:
	// longer than a proxy in front (nginx) keeps the addresses it resolved,
	// so that when the old one goes, the proxy already knows the new one
	// and retries there. Negative means none.
	Overlap time.Duration
	// HealthTimeout bounds waiting for one new container to be healthy.
	HealthTimeout time.Duration
	// Probes builds the verification probes; nil uses the stack's.
	Probes func(*stackhcl.Stack) (probe.Plan, error)
	// Agent, when set, runs the probes of services that declare no
	// address from inside the environment's network; Down removes its
	// containers. nil: those probes are skipped.
	Agent *agent.Agent
	// Swarm is the swarm's manager, for an environment with engine =
	// "swarm": Deploy, Rollback and Down act on its services, not on
	// Engine's containers.
	Swarm SwarmEngine

	events sync.Mutex // one event at a time, from concurrent steps
	held   *lock.Held // the lock of the operation running, if any
}

func (d *Deployer) emit(phase, service, container, format string, args ...any) {
	d.emitEvent(Event{Phase: phase, Service: service, Container: container, Message: fmt.Sprintf(format, args...)})
}

func (d *Deployer) emitEvent(e Event) {
	if d.Events == nil {
		return
	}
	d.events.Lock()
	defer d.events.Unlock()
	e.Time = time.Now()
	d.Events(e)
}

// emitPlan announces the plan about to run.
func (d *Deployer) emitPlan(plan Plan) {
	d.emitEvent(Event{Phase: "plan", Message: plan.Summary(), Plan: &plan})
}

func (d *Deployer) defaults() {
	if d.Verify == 0 {
		d.Verify = 60 * time.Second
	}
	if d.HealthTimeout == 0 {
		d.HealthTimeout = 90 * time.Second
	}
	if d.Overlap == 0 {
		d.Overlap = templates.NginxResolveTTL + time.Second
	}
}

// locked runs fn holding the environment's lock for op. fn's context
// ends when the lock is lost (broken by obcd unlock, or its session gone),
// with the loss as its cause, and the executor checks the lock before each
// change, so an operation that lost its lock stops.
func (d *Deployer) locked(ctx context.Context, op string, wait time.Duration, fn func(context.Context) error) error {
	if d.Locker == nil {
		return fmt.Errorf("%s %s: no lock for the environment", op, d.Stack.Environment)
	}
	held, err := d.Locker.Acquire(ctx, op, wait)
	if err != nil {
		return err
	}
	lockCtx, cancel := context.WithCancelCause(ctx)
	go func() {
		select {
		case <-held.Lost():
			cancel(held.Err())
		case <-lockCtx.Done():
		}
	}()
	d.held = held
	err = fn(lockCtx)
	d.held = nil
	cancel(nil)
	if releaseErr := held.Release(); releaseErr != nil && !errors.Is(err, lock.ErrLockLost) {
		d.emit("lock", "", "", "releasing the lock: %v", releaseErr)
	}
	return err
}

// checkLock says whether the lock of the operation is still held; it is
// asked before each change.
func (d *Deployer) checkLock() error {
	if d.held == nil {
		return nil
	}
	if err := d.held.Check(); err != nil {
		return errors.Join(err, ErrConverge)
	}
	return nil
}

// lockLost is err with the lock's loss named when the loss ended ctx.
func lockLost(ctx context.Context, err error) error {
	if cause := context.Cause(ctx); errors.Is(cause, lock.ErrLockLost) && !errors.Is(err, lock.ErrLockLost) {
		return errors.Join(cause, err)
	}
	return err
}

// DeployOptions are the choices of one deploy.
type DeployOptions struct {
	Force    bool          // deploy a release whose configuration failed before
	LockWait time.Duration // wait this long for another operation's lock
	// Confirm is asked, with the plan, before anything changes; false
	// cancels (ErrCancelled). nil applies without asking.
	Confirm func(Plan) bool
	// Saved, when set, is applied instead of a new plan, once it is shown
	// to match the stack, the secrets and the engine as they are now.
	Saved *SavedPlan
}

// DeployResult is the outcome of a deploy or rollback, for the report:
// Release.Outcome is how it ended, as recorded.
type DeployResult struct {
	Release state.Release
	Plan    Plan
	Failed  []probe.Result // failing probes, when verification failed
	// Report is what failed, its last results, container state and log
	// tail, and after a failed rollback what runs now and what to do.
	Report string
}

// Deploy takes the lock, runs the gate, plans (or checks a saved plan),
// asks, applies the plan, and proves the result with probes; the release
// becomes stable. If anything fails after changes began, it rolls back to
// the stable release by itself.
func (d *Deployer) Deploy(ctx context.Context, opts DeployOptions) (DeployResult, error) {
	d.defaults()
	var result DeployResult
	err := d.locked(ctx, "deploy", opts.LockWait, func(ctx context.Context) (err error) {
		if d.OnSwarm() {
			result, err = d.deploySwarmLocked(ctx, opts)
		} else {
			result, err = d.deployLocked(ctx, opts)
		}
		return err
	})
	return result, err
}

func (d *Deployer) deployLocked(ctx context.Context, opts DeployOptions) (DeployResult, error) {
	if d.Gate != nil {
		if err := d.Gate(d.Stack); err != nil {
			return DeployResult{}, errors.Join(err, ErrGate)
		}
	}
	if err := d.markInterrupted(ctx); err != nil {
		return DeployResult{}, err
	}
	planned, err := d.planOrCheck(ctx, opts.Saved)
	if err != nil {
		return DeployResult{}, err
	}
	result := DeployResult{Plan: planned.Plan, Release: planned.Release}
	if !planned.Plan.HasWork() {
		d.emit("plan", "", "", "nothing to change")
		return result, nil
	}
	if err := d.refuseFailed(ctx, planned.Release, opts.Force); err != nil {
		return result, err
	}
	d.emitPlan(planned.Plan)
	if opts.Confirm != nil && !opts.Confirm(planned.Plan) {
		return result, ErrCancelled
	}
	result, err = d.apply(ctx, planned)
	d.emitOutcome(result.Release, err)
	return result, err
}

// emitOutcome ends a deploy's or rollback's events with how it ended.
func (d *Deployer) emitOutcome(rel state.Release, err error) {
	message := fmt.Sprintf("release %s %s", rel.ID, rel.Outcome)
	if err != nil {
		message += ": " + firstLine(err.Error())
	}
	d.emitEvent(Event{Phase: "result", Message: message, Release: rel.ID, Outcome: rel.Outcome})
}

// planOrCheck is a new plan, or the saved one once it is shown current.
func (d *Deployer) planOrCheck(ctx context.Context, saved *SavedPlan) (*Planned, error) {
	if saved == nil {
		return d.Plan(ctx)
	}
	return d.checkSaved(ctx, saved)
}

// DownOptions are the choices of obcd down.
type DownOptions struct {
	Volumes  bool // also remove the named volumes: the environment's data
	LockWait time.Duration
}

// Down removes the environment's containers and network, and its volumes
// only when asked, under the lock. Release history is kept.
func (d *Deployer) Down(ctx context.Context, opts DownOptions) error {
	return d.locked(ctx, "down", opts.LockWait, func(ctx context.Context) error {
		project := templates.ProjectName(d.Stack)
		if d.Agent != nil {
			d.Agent.Close()
			if _, err := agent.RemoveAll(ctx, d.Agent.API, project); err != nil {
				return err
			}
		}
		if d.OnSwarm() {
			if opts.Volumes {
				d.emit("down", "", "", "the services' volumes stay on the nodes that ran them: a swarm has no volume of its own to remove; remove them on each node with docker volume rm")
			}
			return d.Swarm.RemoveProject(ctx, project)
		}
		return d.Engine.RemoveProject(ctx, project, opts.Volumes)
	})
}
