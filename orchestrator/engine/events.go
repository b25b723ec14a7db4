package engine

import (
	"cmp"
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/moby/moby/api/types/events"
	"github.com/moby/moby/client"
)

// Failure is one of a project's long-running containers exiting or
// turning unhealthy, as the engine's event stream reports it.
type Failure struct {
	Container string    `json:"container"`
	Service   string    `json:"service"`
	Release   string    `json:"release"`
	Reason    string    `json:"reason"` // "exited with code 1", "turned unhealthy"
	Time      time.Time `json:"time"`
}

func (f Failure) String() string {
	return fmt.Sprintf("container %s (%s, release %s) %s at %s", f.Container, f.Service, f.Release, f.Reason, f.Time.Format(time.TimeOnly))
}

// WatchFailures streams, from since until ctx ends, every exit of the
// project's long-running containers and every turn to unhealthy, from
// the engine's event stream: no polling. One-offs are left out. The error
// channel carries an error if the stream breaks before ctx ends; both
// channels are closed when it ends.
func (e *Engine) WatchFailures(ctx context.Context, project string, since time.Time) (<-chan Failure, <-chan error) {
	stream := e.API.Events(ctx, client.EventsListOptions{
		Since: strconv.FormatFloat(float64(since.UnixNano())/1e9, 'f', 9, 64),
		Filters: make(client.Filters).Add("type", string(events.ContainerEventType)).
			Add("label", LabelProject+"="+project).Add("event", string(events.ActionDie), "health_status"),
	})
	failures, errs := make(chan Failure), make(chan error, 1)
	go func() {
		defer close(failures)
		defer close(errs)
		for {
			select {
			case message, ok := <-stream.Messages:
				if !ok {
					return
				}
				if failure, ok := failureOf(message); ok {
					select {
					case failures <- failure:
					case <-ctx.Done():
						return
					}
				}
			case err, ok := <-stream.Err:
				if ok && err != nil && ctx.Err() == nil {
					errs <- fmt.Errorf("event stream of project %s: %w", project, err)
				}
				return
			}
		}
	}()
	return failures, errs
}

// failureOf reads a die or health_status event of a long-running
// container; anything else is no failure.
func failureOf(message events.Message) (Failure, bool) {
	labels := message.Actor.Attributes
	if labels[LabelOneOff] == "True" {
		return Failure{}, false
	}
	failure := Failure{Container: labels["name"], Service: labels[LabelService], Release: labels[LabelRelease],
		Time: time.Unix(0, message.TimeNano)}
	switch {
	case message.Action == events.ActionDie:
		failure.Reason = "exited with code " + cmp.Or(labels["exitCode"], "?")
	case strings.HasPrefix(string(message.Action), "health_status") && strings.HasSuffix(string(message.Action), "unhealthy"):
		failure.Reason = "turned unhealthy"
	default:
		return Failure{}, false
	}
	return failure, true
}
